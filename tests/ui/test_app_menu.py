"""The menu bar (roles Qt uses to build the macOS application menu), Settings, About, Help, and the log file."""

from __future__ import annotations

import json
import logging
import sys

from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QDialogButtonBox

import macapp
from macapp.core import paths
from macapp.core.settings import Settings
from macapp.ui.app import LOG_NAME, start_file_log


def test_menu_actions_carry_mac_roles_and_shortcuts(qtbot, window_factory):
    window = window_factory()
    menu = window.app_menu
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Help"]
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
