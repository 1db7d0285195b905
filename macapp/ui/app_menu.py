"""Orchard's menu bar, laid out the way a Mac app's is.

About Orchard, Settings… and Quit Orchard carry Qt's menu roles, so on macOS Qt moves them into
the application menu (with ⌘, and ⌘Q); elsewhere they stay in File and Help. View switches pages
(Ctrl+1..5, ⌘1..5 on a Mac); Help opens the logs folder and copies the diagnostic report that
``macapp doctor --json`` prints, gathered in a Worker.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication

from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.ui.main_window import MainWindow

PREFERENCES_FALLBACK = "Ctrl+,"  # what Settings uses where the platform has no standard key (Linux, Windows)


def standard_shortcuts(key: QKeySequence.StandardKey, fallback: str) -> list[QKeySequence]:
    """The platform's key sequences for ``key``, or ``fallback`` where it defines none."""
    return QKeySequence.keyBindings(key) or [QKeySequence(fallback)]


def diagnostic_report() -> dict[str, Any]:
    """Worker function: what ``macapp doctor --json`` prints (version, machine, budget, paths), minus the speed test."""
    from macapp.core.diagnostics import report

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
        self.add_model_action = self._action("Add Model…", self._add_model, "Ctrl+O")
        self.add_folder_action = self._action("Add Folder of Models…", self._add_folder)
        self.settings_action = self._action("Settings…", self.open_settings, role=QAction.MenuRole.PreferencesRole)
        self.settings_action.setShortcuts(
            standard_shortcuts(QKeySequence.StandardKey.Preferences, PREFERENCES_FALLBACK)
        )
        self.quit_action = self._action("Quit Orchard", self._quit, role=QAction.MenuRole.QuitRole)
        self.quit_action.setShortcuts(standard_shortcuts(QKeySequence.StandardKey.Quit, "Ctrl+Q"))
        file_menu.addActions([self.add_model_action, self.add_folder_action])
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view_menu = bar.addMenu("&View")
        self.page_group = QActionGroup(self)
        self.page_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.page_actions: dict[str, QAction] = {}
        for i, name in enumerate(window.page_names()):
            action = self._action(name, lambda _checked=False, n=name: window.show_page(n), f"Ctrl+{i + 1}")
            action.setCheckable(True)
            self.page_group.addAction(action)
            view_menu.addAction(action)
            self.page_actions[name] = action
        window.sidebar.currentRowChanged.connect(self._sync_page)
        self._sync_page(window.sidebar.currentRow())

        help_menu = bar.addMenu("&Help")
        self.welcome_action = self._action("Welcome to Orchard", window.show_welcome)
        self.logs_action = self._action("Open Logs Folder", self.open_logs_folder)
        self.report_action = self._action("Copy Diagnostic Report", self.copy_report)
        self.report_action.setToolTip("Copy this Mac's memory budget, backends and folders, to paste into an issue")
        self.about_action = self._action("About Orchard", self.open_about, role=QAction.MenuRole.AboutRole)
        help_menu.addAction(self.welcome_action)
        help_menu.addSeparator()
        help_menu.addActions([self.logs_action, self.report_action])
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)
        self.menus = {"File": file_menu, "View": view_menu, "Help": help_menu}

    def _action(self, text: str, slot, shortcut: str = "", role: QAction.MenuRole | None = None) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setMenuRole(role if role is not None else QAction.MenuRole.NoRole)
        action.triggered.connect(slot)
        return action

    def _sync_page(self, row: int) -> None:
        names = self.window.page_names()
        for i, name in enumerate(names):
            self.page_actions[name].setChecked(i == row)

    # --- File ------------------------------------------------------------------------------------
    def _add_model(self) -> None:
        self.window.show_page("Models")
        self.window.models_page.add_model_button.click()

    def _add_folder(self) -> None:
        self.window.show_page("Models")
        self.window.models_page.add_folder_button.click()

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
