"""The Models page: the local library, what each model needs, and adding models.

The library scan and the hardware probe run in a Worker after the window has painted; files
dropped on the page (or picked with "Add model…") are added in a Worker too, one row at a time.
A file that cannot be used gets a row that says why; nothing here opens a popup on its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QSortFilterProxyModel, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from macapp.core.errors import UserError
from macapp.core.units import format_bytes
from macapp.ui.models.details import ModelDetails
from macapp.ui.models.jobs import LibraryScan, Rejected, add_model_files, scan_library
from macapp.ui.models.table import (
    SORT_ROLE,
    Column,
    ElideDelegate,
    LibraryTableModel,
    LibraryTableView,
    MemoryDelegate,
)
from macapp.ui.widgets.choices import KV_TYPES
from macapp.ui.widgets.notice import Notice
from macapp.ui.widgets.page_header import PageHeader
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.hardware import Hardware
    from macapp.core.models.estimate import MemoryEstimate, RuntimeSettings
    from macapp.core.models.library import LibraryEntry
    from macapp.core.settings import Settings

log = logging.getLogger(__name__)
EMPTY_TEXT = (  # as the empty chat says: where models come from, the Discover page included
    "No models yet.\nDrop .gguf files here, use Add model… or Add folder…, or download one on the Discover page."
)


class ModelsPage(QWidget):
    """Table of local models, details of the selected one, and the ways to add models."""

    hardwareDetected = Signal(object)  # Hardware
    scanFinished = Signal()
    chatRequested = Signal(str)  # a model's path: the window opens Chat with it loaded

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._settings = settings
        self._hardware: Hardware | None = None
        self._runtime: dict[str, RuntimeSettings] = {}
        self._scan_signals: object = None
        self._scanning = False
        self._adds_running = 0
        self._rejected: list[Rejected] = []
        self._added_while_scanning: list[LibraryEntry] = []

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 18, 24, 18)
        root.setSpacing(12)
        root.addWidget(self._build_header())
        self.notice = Notice()
        root.addWidget(self.notice)

        self.table_model = LibraryTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = self._build_table()
        self.empty_label = QLabel("Scanning your models…")
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)  # a narrow window wraps the hint rather than cutting it
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.empty_label)
        self.list_stack.addWidget(self.table)

        self.details = ModelDetails()
        self.details.show_placeholder("Select a model to see what it needs.")
        self.details.runtimeChanged.connect(self._on_runtime_changed)
        self.details_scroll = details_scroll = QScrollArea()
        details_scroll.setObjectName("detailsScroll")
        details_scroll.setWidget(self.details)
        details_scroll.setWidgetResizable(True)
        details_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        details_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # it reflows instead
        details_scroll.hide()  # until there is a model to show

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.list_stack)
        splitter.addWidget(details_scroll)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 360])
        root.addWidget(splitter, 1)

        self.drop_overlay = QLabel("Drop .gguf files to add them", self)
        self.drop_overlay.setObjectName("dropOverlay")
        self.drop_overlay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_overlay.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.drop_overlay.hide()

    def _build_header(self) -> PageHeader:
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("Scan a folder (and its subfolders) for .gguf models")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.add_model_button = QPushButton("Add model…")
        self.add_model_button.setObjectName("primary")
        self.add_model_button.setToolTip("Add .gguf files — or drop them anywhere on this page")
        self.add_model_button.clicked.connect(self.choose_models)
        header = PageHeader("Models", "Scanning…", [self.add_folder_button, self.add_model_button])
        self.status_label = header.status
        return header

    def _build_table(self) -> LibraryTableView:
        table = LibraryTableView()
        table.setModel(self.proxy)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setSortingEnabled(True)
        table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # keep the library's order until asked
        table.setWordWrap(False)
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(30)
        table.setItemDelegateForColumn(Column.MEMORY, MemoryDelegate(table))
        head = table.horizontalHeader()
        head.setHighlightSections(False)
        head.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        head.setMinimumSectionSize(48)
        table.size_columns()
        table.setItemDelegateForColumn(Column.NAME, ElideDelegate(Qt.TextElideMode.ElideMiddle, table))
        table.setItemDelegateForColumn(Column.STATUS, ElideDelegate(Qt.TextElideMode.ElideRight, table))
        table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._row_menu)
        table.doubleClicked.connect(lambda index: self.chat_with(self._entry_at(index)))
        return table

    # --- scanning ------------------------------------------------------------------------------
    @property
    def scanning(self) -> bool:
        return self._scanning

    @property
    def hardware(self) -> Hardware | None:
        return self._hardware

    def start_scan(self) -> Worker:
        """Re-read the library (and probe the machine the first time) in a worker."""
        self._scanning = True
        self._added_while_scanning = []
        self.status_label.setText("Scanning…")
        if self.table_model.rowCount() == 0:
            self.empty_label.setText("Scanning your models…")
            self.list_stack.setCurrentWidget(self.empty_label)
        worker = Worker(scan_library, self._hardware is None)
        self._scan_signals = worker.signals  # only the newest scan's answer counts
        worker.signals.returned.connect(self._on_scanned)
        worker.signals.errored.connect(self._on_scan_failed)
        return worker.start()

    def _on_scanned(self, scan: LibraryScan) -> None:
        if self.sender() is not self._scan_signals:
            return
        self._scanning = False
        if scan.hardware is not None:
            self.apply_hardware(scan.hardware)
        current = self.details.entry
        entries = list(scan.entries)
        self.table_model.set_entries(entries, {e.id: self._estimate(e) for e in entries})
        for entry in self._added_while_scanning:
            self.table_model.upsert(entry, self._estimate(entry))
        self._update_status()
        self._select(current.path if current else None)
        self.scanFinished.emit()

    def _on_scan_failed(self, exc: BaseException) -> None:
        if self.sender() is not self._scan_signals:
            return
        self._scanning = False
        self.notice.show_message(f"Could not read the model library. {error_text(exc)}")
        self._update_status()
        self.scanFinished.emit()

    def apply_hardware(self, hardware: Hardware) -> None:
        """Estimate every model against this machine's budget (the probe's answer, or a test's)."""
        self._hardware = hardware
        backend = "metal" if hardware.gpu == "metal" else "cpu"
        self._runtime = {k: replace(r, backend=backend) for k, r in self._runtime.items()}
        for entry in self.table_model.entries():
            self.table_model.set_estimate(entry.id, self._estimate(entry))
        shown = self.details.entry
        if shown is not None:
            self.details.set_budget(self.budget, self.runtime_for(shown))
        self._update_status()
        self.hardwareDetected.emit(hardware)

    def _update_status(self) -> None:
        if self._scanning:
            return  # the scan's answer will update the status
        entries = self.table_model.entries()
        n = len(entries)
        bad = sum(1 for e in entries if e.error)
        parts = [f"{n} model{'s' if n != 1 else ''}"]
        if bad:
            parts.append(f"{bad} unusable")
        if self._hardware is not None:
            parts.append(f"budget {format_bytes(self._hardware.budget_bytes)}")
        self.status_label.setText(" · ".join(parts))
        self._show_table(bool(n))
        if not n:
            self.empty_label.setText(EMPTY_TEXT)
            self.details.show_placeholder("Select a model to see what it needs.")

    def _show_table(self, show: bool) -> None:
        self.list_stack.setCurrentWidget(self.table if show else self.empty_label)
        self.details_scroll.setVisible(show)

    # --- estimates -----------------------------------------------------------------------------
    @property
    def budget(self) -> int | None:
        return self._hardware.budget_bytes if self._hardware else None

    def reset_runtimes(self) -> None:
        """Forget each model's context and KV choice: the next estimates start from the (new) defaults."""
        self._runtime.clear()

    def runtime_for(self, entry: LibraryEntry) -> RuntimeSettings | None:
        """The context length and KV type this entry is estimated with (None for unusable files)."""
        if entry.facts is None:
            return None
        if entry.id not in self._runtime:
            from macapp.core.models.estimate import RuntimeSettings

            kv = self._settings.kv_type if self._settings.kv_type in KV_TYPES else "f16"
            backend = "metal" if self._hardware is not None and self._hardware.gpu == "metal" else "cpu"
            n_ctx = max(1, min(self._settings.default_ctx, entry.facts.context_length))
            self._runtime[entry.id] = RuntimeSettings(n_ctx=n_ctx, kv_type=kv, backend=backend)
        return self._runtime[entry.id]

    def _estimate(self, entry: LibraryEntry) -> MemoryEstimate | None:
        runtime = self.runtime_for(entry)
        if runtime is None:
            return None
        from macapp.core.models.estimate import estimate_memory

        try:
            return estimate_memory(entry.facts, runtime, self.budget)
        except (ValueError, ZeroDivisionError, IndexError):  # odd header values: show the row without it
            log.exception("cannot estimate %s", entry.path)
            return None

    def _on_runtime_changed(self, entry_id: str, runtime: RuntimeSettings, estimate: MemoryEstimate) -> None:
        self._runtime[entry_id] = runtime
        self.table_model.set_estimate(entry_id, estimate)

    # --- selection -----------------------------------------------------------------------------
    def _on_current_changed(self, current, _previous) -> None:
        if not current.isValid():
            return
        entry = self.table_model.entry(self.proxy.mapToSource(current).row())
        self.details.show_entry(entry, self.runtime_for(entry), self.budget)

    # --- a row's actions: chat, show in the file manager, remove ---------------------------------------
    def _entry_at(self, index) -> LibraryEntry | None:
        return self.table_model.entry(self.proxy.mapToSource(index).row()) if index.isValid() else None

    def row_actions(self, entry: LibraryEntry, parent: QWidget) -> list[QAction]:
        """What a right-click on ``entry``'s row offers (double-click chats)."""
        chat = QAction("Chat with this model", parent)
        chat.setEnabled(entry.facts is not None)  # a file that is not a usable GGUF can't be loaded
        chat.triggered.connect(lambda: self.chat_with(entry))
        show = QAction("Show in folder", parent)
        show.triggered.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(entry.path).parent))))
        remove = QAction("Remove from library", parent)
        remove.setToolTip("Forget a file you added (it stays on disk)")
        remove.triggered.connect(lambda: self.remove_from_library(entry))
        return [chat, show, remove]

    def _row_menu(self, pos) -> None:
        entry = self._entry_at(self.table.indexAt(pos))
        if entry is None:
            return
        menu = QMenu(self.table)
        menu.addActions(self.row_actions(entry, menu))
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def chat_with(self, entry: LibraryEntry | None) -> None:
        if entry is not None and entry.facts is not None:
            self.chatRequested.emit(entry.path)

    def remove_from_library(self, entry: LibraryEntry) -> None:
        """Forget a file added by hand (nothing is deleted); a model found in a watched folder, the Hugging Face
        cache or LM Studio's folder can't be forgotten alone, and the notice says what to do instead."""
        from macapp.core.models.library_sources import forget

        try:
            gone = forget(entry.path)
        except UserError as exc:
            self.notice.show_message(error_text(exc))
            return
        self.notice.show_message(f"Removed {Path(gone.path).name} from the library; the file stays on disk.")
        self.start_scan()

    def select_row(self, source_row: int) -> None:
        index = self.proxy.mapFromSource(self.table_model.index(source_row, 0))
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)

    def _select(self, path: str | None) -> None:
        if self.table_model.rowCount() == 0:
            return
        row = self.table_model.row_of_path(path) if path else None
        if row is None:  # the first usable model in view order, else the first row
            rows = [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]
            row = next((r for r in rows if self.table_model.entry(r).facts is not None), rows[0])
        self.select_row(row)

    # --- adding --------------------------------------------------------------------------------
    def add_files(self, paths: list[str]) -> Worker:
        """Add model files in a worker; rows appear as each header is read."""
        if not self._adds_running:
            self.notice.hide()  # a new batch: the last batch's message is old news
        self._adds_running += 1
        worker = Worker(add_model_files, [str(p) for p in paths])
        worker.signals.yielded.connect(self._on_added)
        worker.signals.errored.connect(self._on_add_failed)
        worker.signals.finished.connect(self._after_adding)
        return worker.start()

    def _on_added(self, item: LibraryEntry | Rejected) -> None:
        if isinstance(item, Rejected):
            self._rejected.append(item)
            return
        if self._scanning:
            self._added_while_scanning.append(item)
        row = self.table_model.upsert(item, self._estimate(item))
        self._show_table(True)
        self.select_row(row)

    def _on_add_failed(self, exc: BaseException) -> None:
        self.notice.show_message(error_text(exc))

    def _after_adding(self) -> None:
        self._adds_running -= 1
        self._update_status()
        if self._adds_running:
            return  # one notice for overlapping drops
        rejected, self._rejected = self._rejected, []
        if len(rejected) == 1:
            self.notice.show_message(f"Not added: {rejected[0].message}.")
        elif rejected:
            names = ", ".join(Path(r.path).name for r in rejected[:5]) + (" …" if len(rejected) > 5 else "")
            self.notice.show_message(f"{len(rejected)} files were not added (Orchard adds .gguf model files): {names}")

    def add_folder(self, folder: str) -> Worker | None:
        """Watch ``folder`` (``core.models.library_sources``, as ``macapp models add`` does) and rescan."""
        from macapp.core.errors import UserError
        from macapp.core.models.library_sources import add_model_folder
        from macapp.core.settings import Settings

        try:
            add_model_folder(folder)
        except UserError as exc:  # gone since it was chosen
            self.notice.show_message(f"Not added: {exc}.")
            return None
        self._settings.model_dirs = list(Settings.load().model_dirs)
        return self.start_scan()

    def choose_models(self) -> None:
        """Ask for .gguf files and add them (Add model…, File > Add Model… ⌘O)."""
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add models", str(Path.home()), "GGUF models (*.gguf);;All files (*)"
        )
        if paths:
            self.add_files(paths)

    def choose_folder(self) -> None:
        """Ask for a folder of models and watch it (Add folder…, File > Add Folder of Models… ⇧⌘O)."""
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of models", str(Path.home()))
        if folder:
            self.add_folder(folder)

    # --- drag and drop -------------------------------------------------------------------------
    @staticmethod
    def _local_files(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._local_files(event):
            event.acceptProposedAction()
            self.drop_overlay.setGeometry(self.rect().adjusted(8, 8, -8, -8))
            self.drop_overlay.raise_()
            self.drop_overlay.show()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._local_files(event):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self.drop_overlay.hide()

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_overlay.hide()
        files = self._local_files(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_files(files)  # only queues a worker: the drag source gets its answer at once
