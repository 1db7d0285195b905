"""The menu bar (roles Qt uses to build the macOS application menu), Settings, About, Help, and the log file."""

from __future__ import annotations

import json
import logging
import sys

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QWidget

import macapp
from macapp.core import paths
from macapp.core.chat.store import ChatStore
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings
from macapp.ui.app import LOG_NAME, start_file_log


def test_menu_actions_carry_mac_roles_and_shortcuts(qtbot, window_factory):
    window = window_factory()
    menu = window.app_menu
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Chat", "&Help"]
    assert (menu.about_action.text(), menu.about_action.menuRole()) == ("About Orchard", QAction.MenuRole.AboutRole)
    assert menu.settings_action.menuRole() == QAction.MenuRole.PreferencesRole
    assert menu.quit_action.menuRole() == QAction.MenuRole.QuitRole and menu.quit_action.text() == "Quit Orchard"
    preferences = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
    if sys.platform == "darwin":
        assert menu.settings_action.shortcut() == preferences[0]  # ⌘,
    else:
        assert not preferences and menu.settings_action.shortcut() == QKeySequence("Ctrl+,")
    quit_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)  # none on the offscreen platform
    assert menu.quit_action.shortcut() == (quit_keys[0] if quit_keys else QKeySequence("Ctrl+Q"))
    in_menus = [a for m in menu.menus.values() for a in m.actions() if not a.isSeparator()]
    moved = {a for a in in_menus if a.menuRole() != QAction.MenuRole.NoRole}  # no text heuristics either
    assert moved == {menu.about_action, menu.settings_action, menu.quit_action}


def test_view_menu_switches_pages_with_ctrl_numbers(qtbot, window_factory):
    window = window_factory()
    actions = window.app_menu.page_actions
    assert list(actions) == window.page_names()
    for i, (name, action) in enumerate(actions.items()):
        assert action.shortcut() == QKeySequence(f"Ctrl+{i + 1}")
        action.trigger()
        assert window.pages.currentWidget().isVisible() and window.sidebar.currentItem().text() == name
        assert [a.isChecked() for a in actions.values()] == [n == name for n in actions]
    window.sidebar.setCurrentRow(1)  # the sidebar and the menu agree
    assert actions["Discover"].isChecked() and not actions["Tuning"].isChecked()
    assert window.pages.currentWidget() is window.discover_page


NO_STANDARD_KEY = {"Welcome to Orchard", "Open Logs Folder", "Copy Diagnostic Report", "About Orchard"}


def menu_actions(window) -> list[QAction]:
    """Every action in the menu bar's menus (and their submenus), separators left out."""
    found: list[QAction] = []

    def walk(menu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu())
            elif not action.isSeparator():
                found.append(action)

    for top in window.menuBar().actions():
        walk(top.menu())
    return found


def active(qtbot, window):
    """Shortcuts reach a window only while it is the active one (offscreen too)."""
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5_000)
    return window


def focus(qtbot, window, page: str, field: QWidget) -> QWidget:
    window.show_page(page)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=5_000)
    return field


def press(qtbot, field: QWidget, key: str | QKeySequence) -> None:
    combo = QKeySequence(key)[0]
    qtbot.keyClick(field, combo.key(), combo.keyboardModifiers())


class ShortcutCatcher(QObject):
    """Takes the Shortcut events the actions get: a key reaches its action, which does nothing."""

    def __init__(self, actions: list[QAction]):
        super().__init__()
        self.caught: list[tuple[QAction, QKeySequence, bool]] = []
        for action in actions:
            action.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Shortcut:
            self.caught.append((watched, event.key(), event.isAmbiguous()))
            return True
        return False


def test_every_menu_action_has_its_own_keys(qtbot, window_factory):
    window = window_factory()
    menu = window.app_menu
    actions = menu_actions(window)
    keys = [seq.toString(QKeySequence.SequenceFormat.PortableText) for a in actions for seq in a.shortcuts()]
    assert keys and len(keys) == len(set(keys)), keys  # no two actions share a key
    assert {a.text() for a in actions if not a.shortcuts()} == NO_STANDARD_KEY
    assert {a.shortcutContext() for a in actions} == {Qt.ShortcutContext.WindowShortcut}
    wanted = {
        menu.new_chat_action: "Ctrl+N",
        menu.add_model_action: "Ctrl+O",
        menu.add_folder_action: "Ctrl+Shift+O",
        menu.close_action: "Ctrl+W",
        menu.search_action: "Ctrl+F",
        menu.stop_action: "Esc",
    }
    for action, key in wanted.items():
        assert QKeySequence(key) in action.shortcuts(), action.text()
    close_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Close)  # Ctrl+F4 first off a Mac
    assert menu.close_action.shortcut() == QKeySequence("Ctrl+W")  # the menu shows the usual one
    assert set(menu.close_action.shortcuts()) == set(close_keys or [QKeySequence("Ctrl+W")])
    assert [a.shortcut() for a in menu.page_actions.values()] == [QKeySequence(f"Ctrl+{i}") for i in range(1, 6)]
    assert not menu.stop_action.isEnabled()  # Esc is the Stop key only while an answer streams


def test_each_key_reaches_its_action_from_a_text_field_on_any_page(qtbot, window_factory):
    window = active(qtbot, window_factory())
    actions = [a for a in menu_actions(window) if a.shortcuts()]
    window.app_menu.stop_action.setEnabled(True)  # as while an answer streams (a real one: below)
    catcher = ShortcutCatcher(actions)
    fields = {
        "Discover": window.discover_page.search_box,
        "Chat": window.chat_page.composer,  # the composer takes Ctrl+Enter, but none of these
        "Tuning": window.tuning_page.data_edit,
    }
    for page, field in fields.items():
        for action in actions:
            for seq in action.shortcuts():
                focus(qtbot, window, page, field)
                press(qtbot, field, seq)
                assert catcher.caught == [(action, seq, False)], (page, action.text(), seq.toString())
                catcher.caught.clear()
        assert not field.toPlainText() if page == "Chat" else not field.text()  # nothing was typed
    window.app_menu.stop_action.setEnabled(False)
    press(qtbot, focus(qtbot, window, "Chat", window.chat_page.composer), "Esc")
    assert catcher.caught == []  # no answer streams: Esc is left to the widgets


def test_keys_switch_pages_start_and_search_chats_and_add_models(qtbot, window_factory, model_dir, monkeypatch):
    window = active(qtbot, window_factory())
    chat = window.chat_page
    search = window.discover_page.search_box
    for i, page in enumerate(
        [window.models_page, window.discover_page, chat, window.documents_page, window.tuning_page]
    ):
        press(qtbot, focus(qtbot, window, "Discover", search), f"Ctrl+{i + 1}")
        assert window.pages.currentWidget() is page
        assert [a.isChecked() for a in window.app_menu.page_actions.values()] == [n == i for n in range(5)]

    press(qtbot, focus(qtbot, window, "Tuning", window.tuning_page.data_edit), "Ctrl+F")
    assert window.pages.currentWidget() is chat and chat.sidebar.search_box.hasFocus()
    qtbot.keyClicks(chat.sidebar.search_box, "apples")
    press(qtbot, focus(qtbot, window, "Tuning", window.tuning_page.base_edit), "Ctrl+F")
    assert chat.sidebar.search_box.hasFocus() and chat.sidebar.search_box.selectedText() == "apples"

    qtbot.keyClicks(focus(qtbot, window, "Chat", chat.composer), "draft")
    press(qtbot, focus(qtbot, window, "Discover", search), "Ctrl+N")
    assert window.pages.currentWidget() is chat and chat.cid is None and chat.composer.hasFocus()

    gguf = str(model_dir / "tiny-mha-f32.gguf")
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (asked.append("files"), ([gguf], ""))[1])
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda *a, **k: (asked.append("folder"), str(model_dir))[1]
    )
    models = window.models_page
    press(qtbot, focus(qtbot, window, "Chat", chat.composer), "Ctrl+O")
    qtbot.waitUntil(lambda: models.table_model.rowCount() == 1, timeout=15_000)
    assert window.pages.currentWidget() is models and asked == ["files"]
    with qtbot.waitSignal(models.scanFinished, timeout=15_000):  # the folder is watched and the library rescans
        press(qtbot, focus(qtbot, window, "Discover", search), "Ctrl+Shift+O")
    assert asked == ["files", "folder"] and models.table_model.rowCount() == 3

    press(qtbot, focus(qtbot, window, "Chat", chat.composer), "Ctrl+,")
    dialog = window.app_menu.settings_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=5_000)
    press(qtbot, dialog.focusWidget() or dialog, "Ctrl+3")  # the window's keys wait while a dialog is in front
    assert window.pages.currentWidget() is chat
    press(qtbot, dialog.focusWidget() or dialog, "Esc")  # and Esc is the dialog's
    assert not dialog.isVisible() and window.isVisible()

    active(qtbot, window)
    press(qtbot, focus(qtbot, window, "Chat", chat.composer), "Ctrl+W")
    assert not window.isVisible()


def test_esc_stops_a_streaming_answer_from_any_page_and_only_then(qtbot, window_factory, tmp_path):
    Settings(welcome_done=True, default_ctx=2048).save()
    add_model_file(write_tiny_gguf(tmp_path / "tiny-chat.gguf", ctx=4096))
    window = active(qtbot, window_factory())
    chat, stop = window.chat_page, window.app_menu.stop_action
    qtbot.waitUntil(lambda: chat.header.picker.count() == 1, timeout=10_000)
    with qtbot.waitSignal(chat.modelLoaded, timeout=15_000):
        chat.load_model()
    qtbot.waitUntil(lambda: not chat.loading, timeout=5_000)
    chat.drawer.numbers["max_tokens"].setValue(3000)  # still running when Esc comes
    chat.send_message("go on and on")
    assert chat.busy and stop.isEnabled()
    qtbot.waitUntil(lambda: chat.transcript.stream is not None and bool(chat.transcript.stream.text()), timeout=10_000)

    dialog = window.app_menu.open_settings()  # Esc in a dialog closes the dialog, the answer goes on
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=5_000)
    press(qtbot, dialog.focusWidget() or dialog, "Esc")
    assert not dialog.isVisible() and chat.busy

    active(qtbot, window)
    with qtbot.waitSignal(chat.turnFinished, timeout=10_000) as blocker:
        press(qtbot, focus(qtbot, window, "Discover", window.discover_page.search_box), "Esc")
    qtbot.waitUntil(lambda: not chat.busy, timeout=5_000)
    turn = blocker.args[0]
    assert turn.result.finish_reason == "cancelled" and 0 < turn.result.completion_tokens < 3000
    assert not stop.isEnabled() and window.pages.currentWidget() is window.discover_page
    with ChatStore() as store:
        assert store.get_message(turn.message.id).status == "cancelled"


def test_settings_dialog_saves_and_the_values_reload(qtbot, window_factory, model_dir):
    Settings(welcome_done=True, window_geometry="kept").save()
    window = window_factory()
    assert window.models_page.table_model.rowCount() == 0
    dialog = window.app_menu.open_settings()
    assert dialog.isVisible() and dialog.lm_studio_box.isChecked()
    assert dialog.ctx_box.currentData() == 8192 and dialog.kv_box.currentData() == "f16"
    dialog.folders.add(str(model_dir))
    dialog.ctx_box.setCurrentIndex(dialog.ctx_box.findData(16384))
    dialog.kv_box.setCurrentIndex(dialog.kv_box.findData("q8_0"))
    dialog.lm_studio_box.setChecked(False)
    with qtbot.waitSignal(window.models_page.scanFinished, timeout=15_000):  # the library rescans
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert not dialog.isVisible()

    saved = Settings.load()
    assert (saved.model_dirs, saved.default_ctx, saved.kv_type, saved.include_lm_studio) == (
        [str(model_dir)],
        16384,
        "q8_0",
        False,
    )
    assert saved.welcome_done and saved.window_geometry == "kept"  # fields it does not edit stay
    entries = window.models_page.table_model.entries()
    assert len(entries) == 3  # the folder's models were found
    runtime = window.models_page.runtime_for(entries[0])
    assert runtime.kv_type == "q8_0" and runtime.n_ctx == min(16384, entries[0].facts.context_length)

    again = window.app_menu.open_settings()  # reopened: the saved values
    assert again.folders.paths() == [str(model_dir)] and again.ctx_box.currentData() == 16384
    assert again.kv_box.currentData() == "q8_0" and not again.lm_studio_box.isChecked()
    again.folders.list.item(0).setSelected(True)
    again.folders.remove_selected()
    again.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert Settings.load().model_dirs == [str(model_dir)]  # Cancel writes nothing


def test_about_shows_the_version_backends_folders_and_licence(qtbot, window_factory):
    window = window_factory()
    dialog = window.app_menu.open_about()
    assert dialog.isVisible() and dialog.windowTitle() == "About Orchard"
    assert dialog.version_label.text() == f"Version {macapp.__version__}"
    assert dialog.rows["Licence"] == "Apache-2.0"
    assert dialog.rows["Data folder"] == str(paths.data_dir()) and dialog.rows["Logs folder"] == str(paths.logs_dir())
    assert dialog.rows["llama-cpp-python"] and dialog.rows["llama-cpp-python"] != "not installed"


def test_copy_diagnostic_report_puts_the_doctor_json_on_the_clipboard(qtbot, window_factory):
    window = window_factory()
    QGuiApplication.clipboard().setText("")
    worker = window.app_menu.copy_report()
    assert not window.app_menu.report_action.isEnabled()  # one at a time
    with qtbot.waitSignal(worker.signals.finished, timeout=15_000):
        pass
    qtbot.waitUntil(lambda: bool(QGuiApplication.clipboard().text()), timeout=5_000)
    report = json.loads(QGuiApplication.clipboard().text())
    assert report["orchard"]["version"] == macapp.__version__ and "speed_test" not in report
    assert report["budget_bytes"] > 0 and report["chip"] and "llama-cpp-python" in report["backends"]
    assert report["paths"]["logs"] == str(paths.logs_dir())
    assert window.toast.isVisible() and "copied" in window.toast.text()
    assert window.app_menu.report_action.isEnabled()


def test_file_log_rotates_in_the_logs_folder_and_keeps_stderr_quiet(isolated_home):
    root = logging.getLogger()
    stderr = logging.StreamHandler(sys.stderr)
    level, hook = root.level, sys.excepthook
    root.addHandler(stderr)
    root.setLevel(logging.WARNING)  # as ``macapp`` sets it without --verbose
    handler = start_file_log()
    try:
        assert handler is not None and handler.baseFilename == str(paths.logs_dir() / LOG_NAME)
        assert str(paths.logs_dir()).startswith(str(isolated_home))
        assert handler.maxBytes > 0 and handler.backupCount > 0
        logging.getLogger("macapp.test").info("a line for the log file")
        handler.flush()
        text = (paths.logs_dir() / LOG_NAME).read_text(encoding="utf-8")
        assert "a line for the log file" in text and "Orchard" in text
        assert stderr.level == logging.WARNING  # the terminal does not get the INFO lines
    finally:
        root.removeHandler(handler)
        root.removeHandler(stderr)
        handler.close()
        root.setLevel(level)
        sys.excepthook = hook
