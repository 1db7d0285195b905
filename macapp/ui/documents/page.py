"""The Documents page: collections on the left, the selected one's files on the right (pages, chunks,
when added), with Add PDFs…, Remove file, Re-index and Delete collection.

Listing is one short read in a ``Worker`` on the global pool (newest answer wins); everything that
writes the index (add, remove, re-index, delete) runs on the indexing pool behind whatever the Chat
page is adding, with its progress in an ``IngestPanel``. The list is read again when the page is
shown and after each change. PDFs dropped on the page go to the selected collection ("Documents"
when there is none yet). Collections made by dropping PDFs on a chat (``chat-<id>``) are listed too, by what
they hold and whose they are ("2 PDFs in chat “Trip”"); embedding models by their names. Exact names and ids
are in the tooltips.

The "Embedding model" row (``EmbedderChooser``) names the model that makes the vectors and lets the user
choose another; the files of the selected collection are a ``FilesTable``. When the embedder changes, every
collection built with another one is re-indexed, one after another on the indexing pool; until it is, it is
marked "needs re-index" (vectors of two models never mix, so it can't be searched).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from macapp.core.docs.names import collection_title, embedder_name, embedder_names, is_chat_collection
from macapp.core.docs.types import DOCUMENT_SUFFIXES
from macapp.core.errors import UserError
from macapp.core.units import plural
from macapp.ui.documents.embedder_chooser import EmbedderChooser
from macapp.ui.documents.files_table import FilesTable, added_text, collection_summary
from macapp.ui.jobs.documents import (
    EmbedderChoice,
    Listing,
    delete_collection,
    free_collection_name,
    indexing_pool,
    read_listing,
    remove_pdf,
)
from macapp.ui.widgets.drops import dropped_files, is_document
from macapp.ui.widgets.ingest_panel import IngestPanel
from macapp.ui.widgets.notice import Notice
from macapp.ui.widgets.page_header import PageHeader
from macapp.ui.worker import Latest, Worker, error_text

if TYPE_CHECKING:
    from macapp.core.docs.ingest import CollectionInfo, FileInfo

log = logging.getLogger(__name__)
DEFAULT_COLLECTION = "Documents"
NAME_ROLE = Qt.ItemDataRole.UserRole
EMPTY_TEXT = (
    "No documents yet.\nDrop PDFs here or use Add PDFs…, then ask about them in a chat.\n"
    "PDFs dropped on a conversation get a collection of their own, listed here too."
)


FILE_FILTER = "PDFs and images (" + " ".join(f"*{s}" for s in DOCUMENT_SUFFIXES) + ")"


class DocumentsPage(QWidget):
    """Collections and their files; adding, removing, re-indexing and deleting."""

    collectionDeleted = Signal(str)
    refreshed = Signal()  # the lists show the index as it is now
    embedderShown = Signal(object)  # the EmbedderChoice the Embedding model row shows

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.collections: list[CollectionInfo] = []
        self._listing = Listing([], {})
        self._selected: str | None = None
        self._listings = Latest()  # a newer refresh makes an older listing stale

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 18, 24, 18)
        root.setSpacing(12)
        root.addWidget(self._build_header())
        self.embedder_row = EmbedderChooser()
        root.addWidget(self.embedder_row)
        self.notice = Notice()
        root.addWidget(self.notice)
        self.embedder_row.shown.connect(self._on_embedder_shown)
        self.embedder_row.chosen.connect(self._on_embedder_chosen)
        self.embedder_row.failed.connect(self.notice.show_message)

        self.collection_list = QListWidget()
        self.collection_list.setObjectName("collectionList")
        self.collection_list.setMinimumWidth(200)  # "12 files · 340 pages · …": the rest is elided, in the tooltip
        self.collection_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.collection_list.currentItemChanged.connect(self._on_collection_changed)
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.collection_list)
        splitter.addWidget(self._build_details())
        splitter.setStretchFactor(0, 1)  # a narrower window narrows the list too, or the files' names shrink to "be…"
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([260, 700])
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(splitter)
        root.addWidget(self.stack, 1)
        self.panel = IngestPanel()
        self.panel.place = self.place
        self.panel.batchFinished.connect(lambda *_: self.refresh())
        self.panel.busyChanged.connect(lambda _busy: (self._update_buttons(), self._update_marks()))
        root.addWidget(self.panel)

        self.drop_overlay = QLabel("Drop PDFs to add them", self)
        self.drop_overlay.setObjectName("dropOverlay")
        self.drop_overlay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_overlay.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.drop_overlay.hide()
        self._update_buttons()

    def _build_header(self) -> PageHeader:
        self.new_button = QPushButton("New collection…")
        self.new_button.setToolTip("Start an empty collection with a name of your choice")
        self.new_button.clicked.connect(self._new_collection)
        self.add_button = QPushButton("Add PDFs…")
        self.add_button.setObjectName("primary")
        self.add_button.setToolTip("Add PDFs to the selected collection — or drop them anywhere on this page")
        self.add_button.clicked.connect(self._choose_files)
        header = PageHeader("Documents", buttons=[self.new_button, self.add_button])
        self.status_label = header.status
        return header

    def _build_details(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(12, 0, 0, 0)
        lay.setSpacing(8)
        self.collection_title = QLabel("")
        self.collection_title.setObjectName("detailsTitle")
        self.collection_meta = QLabel("")
        self.collection_meta.setObjectName("muted")
        self.collection_meta.setWordWrap(True)
        self.files_table = table = FilesTable()
        table.itemSelectionChanged.connect(self._update_buttons)
        self.stale_box = QFrame()
        self.stale_box.setObjectName("staleNotice")
        self.stale_box.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        stale = QHBoxLayout(self.stale_box)
        stale.setContentsMargins(12, 6, 6, 6)
        self.stale_label = QLabel("")
        self.stale_label.setWordWrap(True)
        self.stale_button = QPushButton("Re-index now")
        self.stale_button.setObjectName("primary")
        self.stale_button.clicked.connect(self.reindex_selected)
        stale.addWidget(self.stale_label, 1)
        stale.addWidget(self.stale_button)
        self.stale_box.hide()
        buttons = QHBoxLayout()
        self.remove_button = QPushButton("Remove file")
        self.remove_button.setToolTip("Take the selected file out of the collection (the PDF itself stays)")
        self.remove_button.clicked.connect(self.remove_selected_file)
        self.reindex_button = QPushButton("Re-index")
        self.reindex_button.setToolTip("Embed every passage again (after the embedding model changed)")
        self.reindex_button.clicked.connect(self.reindex_selected)
        self.delete_button = QPushButton("Delete collection…")
        self.delete_button.setToolTip("Delete the collection and its index (the PDFs themselves stay)")
        self.delete_button.clicked.connect(lambda: self.delete_selected())
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(self.reindex_button)
        buttons.addWidget(self.delete_button)
        lay.addWidget(self.collection_title)
        lay.addWidget(self.collection_meta)
        lay.addWidget(self.stale_box)
        lay.addWidget(table, 1)
        lay.addLayout(buttons)
        return box

    # --- reading the index ---------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()
        if not self.embedder_row.choosing:
            self.load_embedder_info()

    def refresh(self) -> Worker:
        """Read the collections again (in a worker); ``refreshed`` when they are on screen."""
        ticket = self._listings.ticket()
        worker = Worker(read_listing)
        worker.signals.returned.connect(self._listings.only_if_current(ticket, self._on_listed))
        worker.signals.errored.connect(self._listings.only_if_current(ticket, self._on_list_failed))
        return worker.start()

    def _on_listed(self, listing: Listing) -> None:
        infos = listing.collections
        self._listing = listing
        self.collections = list(infos)
        lst = self.collection_list
        lst.blockSignals(True)
        lst.clear()
        for info in infos:
            item = QListWidgetItem(self._item_text(info))
            item.setData(NAME_ROLE, info.name)
            item.setToolTip(f"Collection “{info.name}”\n{collection_summary(info)}\nEmbedded with {info.embedder}")
            lst.addItem(item)
        lst.blockSignals(False)
        names = [i.name for i in infos]
        keep = self._selected if self._selected in names else (names[0] if names else None)
        self.select_collection(keep)
        total = sum(len(i.files) for i in infos)
        self.status_label.setText(f"{plural(len(infos), 'collection')} · {plural(total, 'file')}" if infos else "")
        self.stack.setCurrentIndex(1 if infos else 0)
        self.refreshed.emit()

    def _on_list_failed(self, exc: BaseException) -> None:
        self.notice.show_message(f"Could not read the document index. {error_text(exc)}")

    # --- the embedding model -------------------------------------------------------------------
    @property
    def embedder(self) -> EmbedderChoice | None:
        """The embedder new vectors are made with (None until loaded, or when it can't be)."""
        return self.embedder_row.choice

    def load_embedder_info(self) -> Worker:
        """Load the embedder in settings (in a worker) to show its file and dimension and mark the
        collections built with another one."""
        return self.embedder_row.load()

    def choose_embedder(self, path: str) -> Worker:
        """Embed with the GGUF at ``path`` ("" = the bundled model): it is loaded first (a file that is no
        embedding model changes nothing), then saved, then every collection made with another embedder is
        re-indexed."""
        return self.embedder_row.choose(path)

    def _on_embedder_shown(self, choice: EmbedderChoice | None) -> None:
        self._update_marks()
        self._update_buttons()
        if choice is not None:
            self.embedderShown.emit(choice)

    def _on_embedder_chosen(self, choice: EmbedderChoice) -> None:
        stale = [c.name for c in self.collections if c.embedder != choice.name]
        for name in stale:  # queued one after another on the indexing pool; skipped if done meanwhile
            self.panel.reindex(name, if_needed=True)
        text = f"Documents are now embedded with {'the bundled model' if choice.bundled else choice.file}."
        if stale:
            are = "is" if len(stale) == 1 else "are"
            text += f" {plural(len(stale), 'collection')} made with another model {are} re-indexed; progress below."
        self.notice.show_message(text)
        self._update_marks()

    def embedder_state(self, info: CollectionInfo) -> str:
        """ "reindexing" (queued or running), "stale" (built with another embedder than the current one) or ""."""
        if info.name in self.panel.reindexing():
            return "reindexing"
        if self.embedder is not None and info.embedder != self.embedder.name:
            return "stale"
        return ""

    def _item_text(self, info: CollectionInfo) -> str:
        mark = {"stale": "\nNeeds re-index", "reindexing": "\nRe-indexing…"}.get(self.embedder_state(info), "")
        return f"{self.title_of(info)}\n{collection_summary(info)}{mark}"

    def title_of(self, info: CollectionInfo) -> str:
        """What the list calls a collection: its name, or for a chat's, its PDFs and chat."""
        return collection_title(info.name, len(info.files), self._listing.chat_title(info.name))

    def place(self, collection: str) -> str:
        """A collection in a sentence: ``“Papers”``, or a chat's as ``chat “Trip”``."""
        title = self._listing.chat_title(collection)
        if title is not None:
            return f"chat “{title}”"
        return "a chat's PDFs" if is_chat_collection(collection) else f"“{collection}”"

    def _update_marks(self) -> None:
        """Say again which collections need (or are getting) a re-index."""
        lst = self.collection_list
        for row in range(lst.count()):
            info = self.collection(lst.item(row).data(NAME_ROLE))
            if info is not None:
                lst.item(row).setText(self._item_text(info))
        self._show_stale(self.selected)

    def _show_stale(self, info: CollectionInfo | None) -> None:
        state = self.embedder_state(info) if info is not None else ""
        self.stale_box.setVisible(bool(state))
        if state == "reindexing":
            self.stale_label.setText("Re-indexing with the current embedding model…")
        elif state == "stale":
            indexed, current = embedder_names(info.embedder, self.embedder.name if self.embedder else "")
            self.stale_label.setText(
                f"Indexed with {indexed}, not the current embedding model ({current}): "
                "it can't be searched until it is re-indexed."
            )
            self.stale_label.setToolTip(f"Indexed with {info.embedder}")
        self.stale_button.setVisible(state == "stale")

    # --- selection -----------------------------------------------------------------------------
    def collection(self, name: str | None) -> CollectionInfo | None:
        return next((c for c in self.collections if name is not None and c.name == name), None)

    @property
    def selected(self) -> CollectionInfo | None:
        return self.collection(self._selected)

    def select_collection(self, name: str | None) -> None:
        lst = self.collection_list
        for row in range(lst.count()):
            if lst.item(row).data(NAME_ROLE) == name:
                lst.setCurrentRow(row)
                break
        else:
            lst.setCurrentRow(-1)
        self._show_collection(self.collection(name))

    def _on_collection_changed(self, item: QListWidgetItem | None, _previous) -> None:
        self._show_collection(self.collection(item.data(NAME_ROLE)) if item is not None else None)

    def _show_collection(self, info: CollectionInfo | None) -> None:
        self._selected = info.name if info is not None else None
        if info is None:
            self.collection_title.setText("")
            self.collection_meta.setText("")
        else:
            self.collection_title.setText(self.title_of(info))
            self.collection_title.setToolTip(f"Collection “{info.name}”")
            self.collection_meta.setText(
                f"{collection_summary(info)} · embedded with {embedder_name(info.embedder)}"
                f" · created {added_text(info.created_at)}"
            )
            self.collection_meta.setToolTip(f"Embedded with {info.embedder}")
        self.files_table.show_files(info.files if info is not None else [])
        self._show_stale(info)
        self._update_buttons()

    def selected_file(self) -> FileInfo | None:
        info, file_hash = self.selected, self.files_table.selected_hash()
        if info is None or file_hash is None:
            return None
        return next((f for f in info.files if f.file_hash == file_hash), None)

    def _update_buttons(self) -> None:
        has = self.selected is not None
        self.remove_button.setEnabled(has and self.selected_file() is not None)
        self.reindex_button.setEnabled(has and bool(self.selected.files))
        self.delete_button.setEnabled(has)

    # --- changing the index --------------------------------------------------------------------
    def add_files(self, paths: list[str], collection: str | None = None) -> Worker | None:
        """Add the PDFs among ``paths`` to ``collection`` (default: the selected one, else "Documents")."""
        pdfs = [p for p in paths if is_document(p)]
        others = [Path(p).name for p in paths if not is_document(p)]
        if others:
            self.notice.show_message(
                "Only PDFs and images (PNG, JPEG, HEIC) can be added; left out: "
                + ", ".join(others[:4])
                + (" …" if len(others) > 4 else "")
            )
        else:
            self.notice.hide()
        if not pdfs:
            return None
        name = collection or self._selected
        if name is None:
            name = free_collection_name(DEFAULT_COLLECTION, [c.name for c in self.collections])
        self._selected = name  # shown once the list is read again
        return self.panel.add(name, pdfs)

    def remove_selected_file(self) -> Worker | None:
        info, file = self.selected, self.selected_file()
        if info is None or file is None:
            return None
        return self._write(
            remove_pdf, info.name, file.file_hash, done=f"Removed {file.file} from {self.place(info.name)}."
        )

    def reindex_selected(self) -> Worker | None:
        info = self.selected
        if info is None:
            return None
        worker = self.panel.reindex(info.name)
        self._update_marks()
        return worker

    def delete_selected(self, confirm: bool = True) -> Worker | None:
        info = self.selected
        if info is None:
            return None
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete collection",
                f"Delete {self.place(info.name)} and its index ({collection_summary(info)})?\n\n"
                "The PDFs themselves stay where they are; chats that used the collection stop citing it.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return None
        return self._write(
            delete_collection,
            info.name,
            done=f"Deleted {self.place(info.name)}.",
            then=lambda name: self.collectionDeleted.emit(name),
        )

    def _write(self, fn, *args, done: str, then=None) -> Worker:
        """Run a remove or delete on the indexing pool (after any add in progress), then list again."""
        worker = Worker(fn, *args, pool=indexing_pool())
        worker.signals.returned.connect(lambda _r: self.notice.show_message(done))
        if then is not None:
            worker.signals.returned.connect(then)
        worker.signals.errored.connect(lambda exc: self.notice.show_message(error_text(exc)))
        worker.signals.finished.connect(self.refresh)
        self.status_label.setText("Updating…")
        return worker.start()

    def _new_collection(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection", "Name of the collection:")
        if not ok:
            return
        try:
            from macapp.core.docs.index import check_collection_name

            name = check_collection_name(name)
        except UserError as exc:
            self.notice.show_message(error_text(exc))
            return
        if any(c.name.casefold() == name.casefold() for c in self.collections):
            self.select_collection(next(c.name for c in self.collections if c.name.casefold() == name.casefold()))
            return
        self._selected = name
        self.panel.add(name, [])  # creates it empty; the list shows it when done

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add PDFs or images", str(Path.home()), FILE_FILTER)
        if paths:
            self.add_files(paths)

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(is_document(p) for p in dropped_files(event)):
            event.acceptProposedAction()
            target = self._selected or DEFAULT_COLLECTION
            self.drop_overlay.setText(f"Drop PDFs to add them to {self.place(target)}")
            self.drop_overlay.setGeometry(self.rect().adjusted(8, 8, -8, -8))
            self.drop_overlay.raise_()
            self.drop_overlay.show()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if any(is_document(p) for p in dropped_files(event)):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self.drop_overlay.hide()

    def dropEvent(self, event) -> None:
        self.drop_overlay.hide()
        files = dropped_files(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_files(files)
