"""Orchard's menu bar, laid out the way a Mac app's is, with a key for everything in it.

About Orchard, Settings… and Quit Orchard carry Qt's menu roles, so on macOS Qt moves them into
the application menu; elsewhere they stay in File and Help. Every action is in a menu (so Qt shows
its key there) and is a window shortcut: it works whatever has the focus in the window, the chat
composer included, and not while a dialog is in front. Qt reports ⌘ as Ctrl, so "Ctrl+N" is ⌘N on
a Mac. Where the platform defines a standard key (Preferences, New, Open, Find, Close, Quit) that
one is used, else the usual Ctrl key:

    File   New Chat ⌘N · Add Model… ⌘O · Add Folder of Models… ⇧⌘O · Settings… ⌘, · Close Window ⌘W · Quit ⌘Q
    View   the pages in sidebar order, ⌘1–⌘5
    Chat   Search Chats… ⌘F · Stop Answer Esc (enabled only while an answer streams, so Esc
           keeps its usual meaning everywhere else)
    Help   Welcome, logs folder, diagnostic report (gathered in a Worker), About: no standard key

No two actions share a key (``tests/ui/test_app_menu.py`` walks the menus).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication

from macapp.core.hardware import machine_noun
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.ui.main_window import MainWindow

PREFERENCES_FALLBACK = "Ctrl+,"  # what Settings uses where the platform has no standard key (Linux, Windows)


def standard_shortcuts(key: QKeySequence.StandardKey, fallback: str) -> list[QKeySequence]:
    """The platform's key sequences for ``key``, or ``fallback`` where it defines none. Where the platform binds
    ``fallback`` too it comes first, so the menu shows the usual key (Close is Ctrl+F4, Ctrl+W on Linux: Ctrl+W)."""
    keys = QKeySequence.keyBindings(key)
    if not keys:
        return [QKeySequence(fallback)]
    usual = [k for k in keys if fallback and k == QKeySequence(fallback)]
    return usual + [k for k in keys if k not in usual]


def diagnostic_report() -> dict[str, Any]:
    """Worker function: what ``macapp doctor --json`` prints (version, machine, budget, paths), minus the speed test."""
    from macapp.core.doctor.diagnostics import report

    return report()


class AppMenu(QObject):
    """The window's menu bar: File, View, Help (and, on macOS, the application menu Qt builds from roles)."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.settings_dialog = None  # the open SettingsDialog, if any
        self.about_dialog = None
        self.report_worker: Worker | None = None
        bar = window.menuBar()

        file_menu = bar.addMenu("&File")
        self.new_chat_action = self._action("New Chat", self.new_chat, QKeySequence.StandardKey.New, "Ctrl+N")
        self.add_model_action = self._action("Add Model…", self._add_model, QKeySequence.StandardKey.Open, "Ctrl+O")
        self.add_folder_action = self._action("Add Folder of Models…", self._add_folder, fallback="Ctrl+Shift+O")
        self.settings_action = self._action(
            "Settings…",
            self.open_settings,
            QKeySequence.StandardKey.Preferences,
            PREFERENCES_FALLBACK,
            role=QAction.MenuRole.PreferencesRole,
        )
        self.close_action = self._action("Close Window", window.close, QKeySequence.StandardKey.Close, "Ctrl+W")
        self.quit_action = self._action(
            "Quit Orchard", self._quit, QKeySequence.StandardKey.Quit, "Ctrl+Q", role=QAction.MenuRole.QuitRole
        )
        file_menu.addAction(self.new_chat_action)
        file_menu.addSeparator()
        file_menu.addActions([self.add_model_action, self.add_folder_action])
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addActions([self.close_action, self.quit_action])

        view_menu = bar.addMenu("&View")
        self.page_group = QActionGroup(self)
        self.page_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.page_actions: dict[str, QAction] = {}
        for i, name in enumerate(window.page_names()):
            action = self._action(name, lambda _checked=False, n=name: self.show_page(n), fallback=f"Ctrl+{i + 1}")
            action.setCheckable(True)
            self.page_group.addAction(action)
            view_menu.addAction(action)
            self.page_actions[name] = action
        window.sidebar.currentRowChanged.connect(self._sync_page)
        self._sync_page(window.sidebar.currentRow())

        chat_menu = bar.addMenu("&Chat")
        self.search_action = self._action("Search Chats…", self.search_chats, QKeySequence.StandardKey.Find, "Ctrl+F")
        self.stop_action = self._action("Stop Answer", window.chat_page.stop, fallback="Esc")
        self.stop_action.setEnabled(window.chat_page.busy)
        window.chat_page.busyChanged.connect(self.stop_action.setEnabled)
        chat_menu.addActions([self.search_action, self.stop_action])

        help_menu = bar.addMenu("&Help")
        self.welcome_action = self._action("Welcome to Orchard", window.show_welcome)
        self.logs_action = self._action("Open Logs Folder", self.open_logs_folder)
        self.report_action = self._action("Copy Diagnostic Report", self.copy_report)
        self.report_action.setToolTip(
            f"Copy {machine_noun()}'s memory budget, backends and folders, to paste into an issue"
        )
        self.about_action = self._action("About Orchard", self.open_about, role=QAction.MenuRole.AboutRole)
        help_menu.addAction(self.welcome_action)
        help_menu.addSeparator()
        help_menu.addActions([self.logs_action, self.report_action])
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)
        self.menus = {"File": file_menu, "View": view_menu, "Chat": chat_menu, "Help": help_menu}

    def _action(
        self,
        text: str,
        slot,
        standard: QKeySequence.StandardKey | None = None,
        fallback: str = "",
        role: QAction.MenuRole | None = None,
    ) -> QAction:
        """An action of the window: the platform's ``standard`` keys (else ``fallback``), live wherever the focus is
        in the window (a window shortcut, so not while a dialog is in front)."""
        action = QAction(text, self.window)
        if standard is not None:
            action.setShortcuts(standard_shortcuts(standard, fallback))
        elif fallback:
            action.setShortcut(QKeySequence(fallback))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setMenuRole(role if role is not None else QAction.MenuRole.NoRole)
        action.triggered.connect(slot)
        return action

    def show_page(self, name: str) -> None:
        self.window.show_page(name)
        self._sync_page(self.window.sidebar.currentRow())  # the page on screen again: its item stays checked

    def _sync_page(self, row: int) -> None:
        names = self.window.page_names()
        for i, name in enumerate(names):
            self.page_actions[name].setChecked(i == row)

    # --- File ------------------------------------------------------------------------------------
    def new_chat(self) -> None:
        """The Chat page with a new conversation (an answer streaming in another one stops, its text kept)."""
        self.window.show_page("Chat")
        self.window.chat_page.new_chat()

    def search_chats(self) -> None:
        """The Chat page with the cursor in its conversation search box."""
        self.window.show_page("Chat")
        self.window.chat_page.sidebar.focus_search()

    def _add_model(self) -> None:
        self.window.show_page("Models")
        self.window.models_page.choose_models()

    def _add_folder(self) -> None:
        self.window.show_page("Models")
        self.window.models_page.choose_folder()

    def _quit(self) -> None:
        self.window.close()  # saves the geometry, stops work, unloads the model
        QApplication.quit()

    def open_settings(self):
        """Show the Settings dialog (one at a time); saving applies it to the window."""
        from macapp.core.settings import Settings
        from macapp.ui.dialogs.settings import SettingsDialog

        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            return self.settings_dialog
        self.settings_dialog = dialog = SettingsDialog(Settings.load(), self.window)
        dialog.saved.connect(self.window.apply_settings)
        dialog.open()
        return dialog

    # --- Help ------------------------------------------------------------------------------------
    def open_about(self):
        from macapp.ui.dialogs.about import AboutDialog

        if self.about_dialog is None:
            self.about_dialog = AboutDialog(self.window)
        self.about_dialog.open()
        return self.about_dialog

    def open_logs_folder(self) -> bool:
        from macapp.core import paths

        folder = paths.logs_dir()
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            return True
        self.window.show_toast(f"Could not open the logs folder: {folder}")
        return False

    def copy_report(self) -> Worker:
        """Gather the diagnostic report in a Worker; the clipboard gets it as pretty JSON."""
        self.report_action.setEnabled(False)
        worker = self.report_worker = Worker(diagnostic_report)
        worker.signals.returned.connect(self._report_ready)
        worker.signals.errored.connect(lambda exc: self.window.show_toast(f"No report: {error_text(exc)}"))
        worker.signals.finished.connect(lambda: self.report_action.setEnabled(True))
        return worker.start()

    def _report_ready(self, report: dict[str, Any]) -> None:
        QGuiApplication.clipboard().setText(json.dumps(report, indent=2))
        self.window.show_toast("Diagnostic report copied. Paste it into an issue.")
