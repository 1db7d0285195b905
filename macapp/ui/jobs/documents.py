"""What the document views run off the GUI thread: adding PDFs and images, re-indexing, removing, listing, loading
the embedding model (and saving the user's choice of one), and rendering a cited page with its passage boxes.

Everything that writes the index runs in ``Worker``s on the one-thread indexing pool
(``indexing_pool()``), shared by the Chat and Documents pages: two batches never embed at once and a
remove waits for the add before it, while the engine thread and the global pool (scans, downloads)
carry on. Reads (listing, rendering) are short and run elsewhere. Core modules are imported inside
the functions, so chromadb and llama.cpp load only when documents are used.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from macapp.core.progress import CancelToken
from macapp.ui.worker import named_pool

if TYPE_CHECKING:
    from PySide6.QtCore import QThreadPool

    from macapp.core.docs.ingest import CollectionInfo, FileInfo, FileOutcome, IngestProgress
    from macapp.core.docs.render import TextRect

INDEXING = "indexing"


def indexing_pool() -> QThreadPool:
    """The one thread that writes the document index."""
    return named_pool(INDEXING)


def add_pdfs(
    collection: str, paths: Sequence[str], token: CancelToken
) -> Generator[IngestProgress, None, list[FileOutcome]]:
    """Add ``paths`` to ``collection`` (created if new) with the app's embedder; one ``FileOutcome`` per path."""
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.ingest import add_files

    return (yield from add_files(collection, list(paths), load_embedder(), token))


def reindex_collection(
    collection: str, token: CancelToken, if_needed: bool = False
) -> Generator[IngestProgress, None, int | None]:
    """Re-embed every passage of ``collection`` with the app's embedder; returns how many. ``if_needed``: only
    when the collection was built with another embedder (else None), so re-indexes queued twice cost once."""
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.index import DocumentIndex
    from macapp.core.docs.ingest import reindex

    embedder = load_embedder()
    if if_needed:
        with DocumentIndex() as index:
            if index.collection(collection).embedder == embedder.name:
                return None
    return (yield from reindex(collection, embedder, token))


@dataclass(frozen=True)
class EmbedderChoice:
    """The embedding model that makes new vectors, loaded; ``path`` "" is the bundled one."""

    path: str
    file: str
    name: str  # what a collection records: the model's name and its file's hash
    dim: int

    @property
    def bundled(self) -> bool:
        return not self.path


def current_embedder() -> EmbedderChoice:
    """The embedder in settings (else the bundled one); a missing or broken file raises its ``UserError``."""
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.settings import Settings

    path = Settings.load().embedder_path
    return _choice(path, load_embedder(path or None))


def use_embedder(path: str) -> EmbedderChoice:
    """Load the GGUF at ``path`` ("" = the bundled one) and, only once it has loaded as an embedder, save it in
    settings: a file that is no embedding model raises its ``UserError`` and changes nothing."""
    from macapp.core.docs.embedder import bundled_embedder_path, load_embedder
    from macapp.core.errors import UserError
    from macapp.core.settings import update_settings

    bundled = bundled_embedder_path()
    if path and Path(path).expanduser().resolve() == bundled.resolve():
        path = ""  # the bundled file picked by hand: stay with whatever the app bundles
    if not path and not bundled.is_file():
        raise UserError("The bundled embedding model is not built", hint="run `make setup` in the project folder")
    choice = _choice(path, load_embedder(path or str(bundled)))
    update_settings(lambda settings: setattr(settings, "embedder_path", path))
    return choice


def _choice(path: str, embedder) -> EmbedderChoice:
    return EmbedderChoice(path, embedder.path.name, embedder.name, embedder.dim)


def read_collections() -> list[CollectionInfo]:
    from macapp.core.docs.ingest import list_collections

    return list_collections()


@dataclass(frozen=True)
class Listing:
    """The collections, and the title of the chat each chat-made one belongs to (keyed by casefolded name)."""

    collections: list[CollectionInfo]
    chat_titles: dict[str, str]

    def chat_title(self, collection: str) -> str | None:
        return self.chat_titles.get(collection.casefold())


def read_listing() -> Listing:
    """The collections with their chats' titles (a chat history that can't be read just leaves them out)."""
    import logging
    import sqlite3

    from macapp.core.chat.store import ChatStore
    from macapp.core.errors import UserError

    titles: dict[str, str] = {}
    try:
        with ChatStore() as store:
            titles = store.collection_titles()
    except (OSError, sqlite3.Error, UserError):
        logging.getLogger(__name__).warning("chat history unreadable: collections listed by name", exc_info=True)
    return Listing(read_collections(), titles)


def collection_file_count(collection: str) -> int:
    """How many files ``collection`` holds (0 if it is gone): one short SQLite read, fine on the GUI thread."""
    from macapp.core.docs.index import DocumentIndex

    with DocumentIndex() as index:
        row = index.chunks.collection(collection)
        return len(index.chunks.files(row.id)) if row is not None else 0


def remove_pdf(collection: str, file_hash: str) -> FileInfo:
    from macapp.core.docs.ingest import remove_file

    return remove_file(collection, file_hash)


def delete_collection(collection: str) -> str:
    from macapp.core.docs.ingest import delete_collection as delete

    delete(collection)
    return collection


def free_collection_name(base: str, taken: Sequence[str] | None = None) -> str:
    """``base``, or ``base-2``, ``base-3``… when a collection already has that name (names match without case).

    ``taken`` defaults to the index's names: one short SQLite read, cheap enough for the GUI thread.
    """
    if taken is None:
        from macapp.core.docs.index import DocumentIndex

        with DocumentIndex() as index:
            taken = [row.name for row in index.chunks.collections()]
    names = {name.casefold() for name in taken}
    name, n = base, 1
    while name.casefold() in names:
        n += 1
        name = f"{base}-{n}"
    return name


@dataclass(frozen=True)
class RenderedPage:
    """One page as a PNG at ``scale`` × 72 dpi, with the cited passage's boxes (PDF points from the top-left)."""

    path: str
    page: int  # 1-based, within 1..pages
    pages: int
    scale: float
    png: bytes
    rects: tuple[TextRect, ...]


def render_cited_page(path: str, page: int, scale: float, text: str = "") -> RenderedPage:
    """Render ``page`` of ``path`` (a PDF or an image; clamped to the document) and find ``text`` on it (none: no
    boxes): in the text layer, or on a page read by OCR in the line boxes the index stored for it."""
    from macapp.core.docs.index import DocumentIndex
    from macapp.core.docs.scan import document_page_count, page_highlights, render_document_page

    pages = document_page_count(path)
    page = max(1, min(page, pages))
    png = render_document_page(path, page, scale)
    rects: tuple[TextRect, ...] = ()
    if text.strip():
        with DocumentIndex() as index:
            lines = index.chunks.page_lines(str(Path(path).resolve()), page)
        rects = tuple(page_highlights(path, page, text, lines))
    return RenderedPage(path, page, pages, scale, png, rects)
