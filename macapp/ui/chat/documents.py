"""Documents in a chat: PDFs dropped anywhere on the Chat page join the conversation's collection, and
the citation chips of its answers open the page viewer.

A conversation without a collection gets one named ``chat-<conversation id>`` (``-2``, ``-3``… when a
collection of that name already exists: names match without case, and conversation ids can come back
after a delete). On screen it is what it holds, "2 PDFs in this chat" (``docs.names``); the name is in
the tooltip. The name is saved on the conversation when its first file is in the index, so a
question asked while the first PDF is still being read is answered without documents rather than
refused; from then on every ``ChatSession`` built for the conversation (one per answer) grounds its
answers in the collection. The adding itself runs on the indexing pool (``ingest_panel``).

A collection built with another embedding model than the one chosen now can't be searched
(``EmbedderMismatch``): the page says so in its notice, with a button that re-indexes it here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QLabel

from macapp.core.docs.names import chat_collection_base, chat_documents
from macapp.core.errors import UserError
from macapp.ui.jobs.documents import collection_file_count, free_collection_name
from macapp.ui.widgets.drops import dropped_files, is_document
from macapp.ui.widgets.ingest_panel import IngestPanel
from macapp.ui.widgets.page_viewer import PageViewer
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.chat.store import Conversation
    from macapp.core.docs.ingest import FileOutcome
    from macapp.core.docs.retrieve import Passage
    from macapp.ui.chat.page import ChatPage

log = logging.getLogger(__name__)


def passages_note(passages: list[Passage], collection: str | None) -> str:
    """What a grounded answer works from: ``Using 4 passages from 2 of this chat's PDFs``."""
    where = "this chat's PDFs" if collection else "the documents"
    if not passages:
        return f"Nothing in {where} is about this"
    files = {p.file for p in passages}
    noun = "passage" if len(passages) == 1 else "passages"
    source = f"{len(files)} of {where}" if len(files) > 1 else where
    return f"Using {len(passages)} {noun} from {source}"


def attached_line(files: int | None) -> str:
    """The line under a chat with documents: ``1 PDF in this chat: answers use it and cite its pages. …``
    (``None``: the index could not be read, so the count is unknown)."""
    if files == 1:
        return f"{chat_documents(1)}: answers use it and cite its pages. Drop more PDFs to add them."
    held = chat_documents(files) if files is not None else "PDFs in this chat"
    return f"{held}: answers use them and cite their pages. Drop more PDFs to add them."


class ChatDocuments(QObject):
    """The Chat page's documents: the drop target, the attachments strip, the page viewer."""

    attached = Signal(int, str)  # conversation id, collection: its answers now use the documents

    def __init__(self, page: ChatPage):
        super().__init__(page)
        self.page = page
        page.setAcceptDrops(True)
        page.installEventFilter(self)  # drags anywhere on the page (children that take no files pass them up)
        self.panel = IngestPanel()
        self.panel.place = lambda _collection: "this chat"
        self.panel.fileFinished.connect(self._on_file)
        self.panel.batchFinished.connect(self._on_batch)
        self.label = QLabel("")
        self.label.setObjectName("docsLine")
        self.label.setWordWrap(True)
        self.label.hide()
        self.overlay = QLabel("Drop PDFs or images to ask about them in this chat", page)
        self.overlay.setObjectName("dropOverlay")
        self.overlay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.overlay.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.overlay.hide()
        self.viewer: PageViewer | None = None
        self._shown: int | None = None  # the conversation on screen
        self._chosen: dict[int, str] = {}  # conversation id -> its new collection, until the first file is in
        self._owner: dict[str, int] = {}  # collection (casefolded) -> the conversation that adds to it

    # --- the conversation on screen ------------------------------------------------------------
    def show_conversation(self, conv: Conversation | None) -> None:
        """A conversation is on screen: say which documents it uses; another one's finished rows go."""
        cid = conv.id if conv is not None else None
        if cid != self._shown:
            self._shown = cid
            self.panel.clear()
        self._show_collection(conv)

    def _show_collection(self, conv: Conversation | None) -> None:
        name = conv.collection if conv is not None else None
        if name:
            try:
                files = collection_file_count(name)
            except (UserError, OSError) as exc:  # an unreadable index: the chat itself still works
                log.warning("could not count the files of %s: %s", name, exc)
                files = None
            self.label.setText(attached_line(files))
            self.label.setToolTip(f"Kept in the collection “{name}” on the Documents page")
        self.label.setVisible(bool(name))

    def _on_batch(self, collection: str, _outcomes: list) -> None:
        """PDFs were added to (or removed from) a collection: the line under the chat counts them again."""
        store = self.page.store
        if self.page.closed or store is None or self.page.cid is None:
            return
        from macapp.core.chat.store import NotFoundError

        try:
            conv = store.get_conversation(self.page.cid)
        except NotFoundError:
            return
        if conv.collection and conv.collection.casefold() == collection.casefold():
            self._show_collection(conv)

    def forget_collection(self, name: str) -> None:
        """``name`` was deleted: conversations that used it go back to plain chat."""
        store = self.page.store
        if store is None:
            return
        for conv in store.list_conversations():
            if conv.collection and conv.collection.casefold() == name.casefold():
                store.update_conversation(conv.id, collection=None)
        self._chosen = {cid: n for cid, n in self._chosen.items() if n.casefold() != name.casefold()}
        if self.page.cid is not None:
            self._show_collection(store.get_conversation(self.page.cid))

    # --- dropping ------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.page:
            kind = event.type()
            if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
                self.drag_enter(event, entering=kind == QEvent.Type.DragEnter)
                return True
            if kind == QEvent.Type.DragLeave:
                self.drag_leave()
                return True
            if kind == QEvent.Type.Drop:
                self.drop(event)
                return True
        return super().eventFilter(watched, event)

    def drag_enter(self, event: QDragEnterEvent | QDragMoveEvent, entering: bool = True) -> None:
        if any(is_document(p) for p in dropped_files(event)):
            event.acceptProposedAction()
            if entering:
                self.overlay.setGeometry(self.page.rect().adjusted(12, 12, -12, -12))
                self.overlay.raise_()
                self.overlay.show()
        else:
            event.ignore()

    def drag_leave(self) -> None:
        self.overlay.hide()

    def drop(self, event: QDropEvent) -> None:
        self.overlay.hide()
        files = dropped_files(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add(files)  # only queues a worker: the drag source gets its answer at once

    def add(self, paths: list[str]) -> Worker | None:
        """Add the PDFs among ``paths`` to the conversation on screen (created if there is none yet)."""
        page = self.page
        pdfs = [p for p in paths if is_document(p)]
        others = [Path(p).name for p in paths if not is_document(p)]
        if others:
            listed = ", ".join(others[:4]) + (" …" if len(others) > 4 else "")
            page.notice.show_message(
                f"Only PDFs and images (PNG, JPEG, HEIC) can be added to a chat; left out: {listed}."
            )
        if not pdfs:
            return None
        if page.store is None:
            page.notice.show_message("The chat history could not be opened, so documents can't be attached.")
            return None
        try:
            cid = page.ensure_conversation()
            name = page.store.get_conversation(cid).collection or self._chosen.get(cid)
            if name is None:
                name = self._chosen[cid] = free_collection_name(chat_collection_base(cid))
        except (UserError, OSError) as exc:
            page.notice.show_message(error_text(exc))
            return None
        self._owner[name.casefold()] = cid
        self._shown = cid  # the rows belong to the conversation on screen
        log.info("adding %d PDF(s) to %s for conversation %d", len(pdfs), name, cid)
        return self.panel.add(name, pdfs)

    def _on_file(self, collection: str, outcome: FileOutcome) -> None:
        cid = self._owner.get(collection.casefold())
        if not outcome.ok or cid is None or self._chosen.get(cid) != collection or self.page.store is None:
            return
        if self.page.closed:
            return  # the window is closing (the store may be closed already)
        del self._chosen[cid]
        from macapp.core.chat.store import NotFoundError

        try:
            conv = self.page.store.update_conversation(cid, collection=collection)
        except NotFoundError:
            return  # the conversation was deleted meanwhile; the collection stays on the Documents page
        if cid == self.page.cid:
            self._show_collection(conv)
        self.attached.emit(cid, collection)

    def reindex(self, collection: str) -> Worker:
        """Re-embed ``collection`` with the current embedding model (if it isn't already), progress above
        the composer."""
        return self.panel.reindex(collection, if_needed=True)

    def explain_failure(self, exc: BaseException, cid: int | None) -> bool:
        """When an answer in conversation ``cid`` failed because its documents were indexed with another
        embedding model than the one chosen now, say so in the page's notice with a Re-index button; True if so."""
        from macapp.core.docs.index import EmbedderMismatch

        if not isinstance(exc, EmbedderMismatch) or cid is None or self.page.store is None:
            return False
        collection = self.page.store.get_conversation(cid).collection
        if not collection:
            return False
        from macapp.core.docs.names import embedder_names

        indexed, current = embedder_names(exc.indexed_with, exc.asked_with)
        self.page.notice.show_message(
            f"The PDFs in this chat were indexed with {indexed}, not the embedding model "
            f"chosen now ({current}). Re-index them to search them, then ask again.",
            "Re-index",
            lambda: self.reindex(collection),
        )
        return True

    # --- citations -----------------------------------------------------------------------------
    def open_citation(self, citation: dict) -> PageViewer:
        """Show the cited page (one viewer window, reused)."""
        if self.viewer is None:
            self.viewer = PageViewer(self.page.window())
        self.viewer.show_citation(citation)
        return self.viewer

    def shutdown(self) -> None:
        self.panel.cancel()
        if self.viewer is not None:
            self.viewer.shutdown()
