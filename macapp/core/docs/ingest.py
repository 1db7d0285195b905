"""Adding PDFs to a collection, removing them, listing and re-indexing collections.

Per file (a PDF, or an image as one page): sha256 → skip if the collection already holds those bytes → read
the pages (text layer, OCR where a page has none: ``scan.read_document``) → chunk → write the
chunks as a *pending* file (SQLite, one transaction) → embed in batches, storing each batch's vectors →
publish (one update makes the file visible). A cancel is noticed at every page, every token count of the
chunker and inside every embedding call, so it lands well within a second at any stage. A failure, a cancel
or a crash before publishing rolls the file back (here, or by the next process that opens the vectors), so a
query never sees half a file.
Re-adding the same path with new content replaces the old version at publish time.

Embedder change: ``add_files`` with an embedder other than the collection's first re-indexes the whole
collection from its stored chunk texts (no PDFs needed), then adds; a query with a mismatched embedder is
refused (``index.EmbedderMismatch``) rather than mixing vectors of two models.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from macapp.core.digest import file_sha256
from macapp.core.docs.chunking import chunk_pages, embedding_text
from macapp.core.docs.index import DocumentIndex, check_collection_name, chunk_metadata, vector_key
from macapp.core.docs.keyword import ChunkRow, CollectionRow, writer_alive
from macapp.core.docs.ocr import OcrEngine
from macapp.core.docs.pdf import PdfError, bug_report
from macapp.core.docs.scan import read_document
from macapp.core.docs.types import Chunk, EmbeddingModel
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress

log = logging.getLogger(__name__)

BATCH = 64  # chunks per embed call and per vector write (as many as a raw embedding run: no throughput lost)
EXTRACT_SHARE = 0.15  # of a file's progress bar: extraction is quick next to embedding
OCR_SHARE = 0.8  # ...but OCR (seconds a page) is slow next to it: a file with OCR'd pages gives it this much


@dataclass(frozen=True)
class FileOutcome:
    """How adding one file went: ``status`` added | updated (replaced an older version of the same path) |
    skipped (already indexed, or being added by another process) | failed (``kind``: a ``PdfError`` kind or
    ``error``)."""

    path: Path
    file: str
    status: str
    file_hash: str | None = None
    pages: int = 0
    chunks: int = 0
    ocr_pages: int = 0  # pages whose text was read by OCR
    kind: str | None = None
    message: str = ""
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict:
        return asdict(self) | {"path": str(self.path)}


@dataclass(frozen=True)
class IngestProgress(Progress):
    """``done`` counts files (fractional within one) of ``total``; the step finishing a file has its ``outcome``.
    Stages: hash, extract, chunk, embed, file (a file finished), reindex (``done``/``total`` count chunks).
    ``page`` of ``pages``: how far the stage is through the file's pages (``pages`` 0 until they are counted).
    Stage ``ocr``: reading pages without a text layer, ``eta_seconds`` the time it still needs (None: not known)."""

    file: str = ""
    outcome: FileOutcome | None = None
    page: int = 0
    pages: int = 0
    eta_seconds: float | None = None


@dataclass(frozen=True)
class FileInfo:
    file: str
    path: str
    file_hash: str
    pages: int
    chunks: int
    added_at: str
    ocr_pages: int = 0  # pages whose text was read by OCR


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedder: str
    dim: int
    created_at: str
    files: tuple[FileInfo, ...]

    @property
    def pages(self) -> int:
        return sum(f.pages for f in self.files)

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files)

    @property
    def ocr_pages(self) -> int:
        return sum(f.ocr_pages for f in self.files)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "embedder": self.embedder,
            "dim": self.dim,
            "created_at": self.created_at,
            "pages": self.pages,
            "ocr_pages": self.ocr_pages,
            "chunks": self.chunks,
            "files": [asdict(f) for f in self.files],
        }


def add_files(
    collection: str,
    paths: Iterable[str | Path],
    embedder: EmbeddingModel,
    cancel: CancelToken | None = None,
    *,
    index: DocumentIndex | None = None,
    ocr: OcrEngine | None = None,
) -> Generator[IngestProgress, None, list[FileOutcome]]:
    """Add PDFs and images to ``collection`` (created if new); one bad file never stops the batch.

    Args:
        collection: the collection's name (any text; case-insensitive).
        paths: PDF or image (PNG, JPEG, HEIC where readable) files.
        embedder: makes the vectors; a collection indexed with another one is re-indexed first.
        cancel: cancelling rolls back the file in progress (files already finished stay) and raises ``Cancelled``.
        index: the index to write (default: the one in the data dir).
        ocr: reads pages without a text layer (default: this platform's engine, loaded when first needed).
    Yields:
        ``IngestProgress`` per step.
    Returns:
        One ``FileOutcome`` per path, in order.
    """
    files = [Path(p) for p in paths]
    own = index is None
    index = index or DocumentIndex()
    created = False  # a collection this call made is taken away again if it ends up holding nothing
    try:
        created = index.chunks.collection(check_collection_name(collection)) is None
        row = index.ensure_collection(collection, embedder)
        if row.embedder != embedder.name:
            log.info(
                "collection %s: embedder changed from %s to %s; re-indexing", row.name, row.embedder, embedder.name
            )
            yield from reindex(row.name, embedder, cancel, index=index)
            row = index.collection(row.name)
        outcomes: list[FileOutcome] = []
        for number, path in enumerate(files):
            try:
                outcome = yield from _add_one(index, row, path, embedder, cancel, number, len(files), ocr)
            except Cancelled:
                raise
            except UserError as e:  # e.g. the embedder failed on this file's text
                outcome = FileOutcome(path, path.name, "failed", kind="error", message=e.message, hint=e.hint)
            except Exception:  # a bug, but one file's bug must not sink the batch; its details go to the log
                log.exception("adding %s to %s failed", path, row.name)
                outcome = FileOutcome(path, path.name, "failed", kind="error", **bug_report(path.name, "added"))
            outcomes.append(outcome)
            yield IngestProgress(
                "file", number + 1, len(files), outcome.message or path.name, file=path.name, outcome=outcome
            )
        return outcomes
    finally:
        try:
            if created:  # every file failed, or the first was cancelled: no empty collection is left behind
                _drop_if_empty(index, collection)
        finally:
            if own:
                index.close()


def _drop_if_empty(index: DocumentIndex, collection: str) -> None:
    try:
        row = index.collection(collection)
        if not index.chunks.files(row.id, status=None):
            index.drop_collection(row)
    except (UserError, sqlite3.Error) as e:  # the batch's own outcome or error matters more than this tidy-up
        log.warning("could not remove the empty collection %s: %s", collection, e)


def _add_one(
    index: DocumentIndex,
    row: CollectionRow,
    path: Path,
    embedder: EmbeddingModel,
    cancel: CancelToken | None,
    number: int,
    total: int,
    ocr: OcrEngine | None = None,
) -> Generator[IngestProgress, None, FileOutcome]:
    name = path.name

    def step(
        stage: str, fraction: float, message: str, page: int = 0, pages: int = 0, eta: float | None = None
    ) -> IngestProgress:
        return IngestProgress(
            stage, number + fraction, total, message, file=name, page=page, pages=pages, eta_seconds=eta
        )

    def failed(e: PdfError) -> FileOutcome:
        return FileOutcome(path, name, "failed", kind=e.kind, message=e.message, hint=e.hint)

    yield step("hash", 0.0, f"{name}: reading")
    try:
        file_hash = file_sha256(path, cancel)
    except OSError as e:
        return failed(PdfError("unreadable", f"{name} can't be opened: {e.strerror or e}"))
    existing = index.chunks.file_by_hash(row.id, file_hash)
    if existing is not None:
        if existing.status == "ready":
            return FileOutcome(
                path,
                name,
                "skipped",
                file_hash,
                existing.pages,
                existing.chunks,
                message=f"{name} is already in {row.name}",
            )
        if writer_alive(existing.writer):
            return FileOutcome(
                path,
                name,
                "skipped",
                file_hash,
                message=f"{name} is being added or removed by another task",
                hint="try again when it has finished",
            )
        index.drop_file(row, existing.id, existing.file_hash)  # left behind by a run that crashed
    read_share = EXTRACT_SHARE
    try:
        inner = read_document(path, cancel, ocr=ocr)
        while True:
            try:
                progress = next(inner)
            except StopIteration as stop:
                pages = stop.value
                break
            fraction = progress.done / progress.total if progress.total else 0.0
            if progress.stage == "ocr":
                read_share = OCR_SHARE
                yield step(
                    "ocr",
                    EXTRACT_SHARE + (OCR_SHARE - EXTRACT_SHARE) * fraction,
                    progress.message,
                    progress.page,
                    progress.pages,
                    progress.eta_seconds,
                )
            else:
                yield step(
                    "extract", EXTRACT_SHARE * fraction, progress.message, int(progress.done), int(progress.total or 0)
                )
    except PdfError as e:
        return failed(e)
    ocr_pages = sum(p.source == "ocr" for p in pages)
    yield step("chunk", read_share, f"{name}: splitting {len(pages)} pages into passages", 0, len(pages))
    chunks = chunk_pages(
        pages, name, file_hash, _checking(cancel, embedder.count_tokens), embedder.max_tokens, cancel=cancel
    )
    if not chunks:
        return failed(
            PdfError(
                "no_text",
                f"{name} has no text to index: its pages hold only page numbers, running headers or images.",
                "if it holds text, scan it again sharper (300 dpi, straight)",
            )
        )
    resolved = str(path.resolve())
    older = [f for f in index.chunks.files(row.id) if f.path == resolved]  # this path's previous version
    file_id, ids = index.chunks.add_pending_file(row.id, file_hash, name, resolved, len(pages), chunks, pages)
    try:
        yield from _store_vectors(
            index,
            row.vector_key,
            chunks,
            ids,
            embedder,
            cancel,
            lambda done: step(
                "embed",
                read_share + (1 - read_share) * done / len(chunks),
                f"{name}: {done} of {len(chunks)} passages",
                chunks[done - 1].page_end if done else 0,
                len(pages),
            ),
        )
        if cancel:
            cancel.raise_if_cancelled()
        index.chunks.publish_file(file_id, [f.id for f in older])
    except BaseException:  # cancel, error, GeneratorExit, Ctrl-C: nothing of this file stays
        try:
            index.drop_file(row, file_id, file_hash)
        except Exception:  # the error being handled matters more; the half-written file is finished later
            log.exception("rolling back %s failed; the next open of the index finishes it", name)
        raise
    for old in older:
        index.drop_file(row, old.id, old.file_hash)
    return FileOutcome(path, name, "updated" if older else "added", file_hash, len(pages), len(chunks), ocr_pages)


def _checking(cancel: CancelToken | None, count_tokens: Callable[[str], int]) -> Callable[[str], int]:
    """``count_tokens`` that first checks ``cancel``: the chunker calls it for every piece it weighs."""
    if cancel is None:
        return count_tokens

    def count(text: str) -> int:
        cancel.raise_if_cancelled()
        return count_tokens(text)

    return count


def _store_vectors(
    index: DocumentIndex,
    key: str,
    chunks: Sequence[Chunk | ChunkRow],
    ids: Sequence[int],
    embedder: EmbeddingModel,
    cancel: CancelToken | None,
    progress: Callable[[int], IngestProgress],
) -> Generator[IngestProgress, None, None]:
    """Embed ``chunks`` ``BATCH`` at a time and store their vectors under ``ids``, yielding ``progress(chunks done)``
    per batch. A cancel needs no smaller batches: the embedder aborts inside llama.cpp."""
    for start in range(0, len(chunks), BATCH):
        if cancel:
            cancel.raise_if_cancelled()
        batch = chunks[start : start + BATCH]
        vectors = embedder.embed([embedding_text(c) for c in batch], cancel=cancel)
        index.vectors.add(key, ids[start : start + BATCH], vectors, [chunk_metadata(c) for c in batch])
        yield progress(start + len(batch))


def reindex(
    collection: str, embedder: EmbeddingModel, cancel: CancelToken | None = None, *, index: DocumentIndex | None = None
) -> Generator[IngestProgress, None, int]:
    """Re-embed every chunk of ``collection`` with ``embedder`` into new vectors, swapped in when complete.

    The old vectors serve queries until the swap; a cancel or crash leaves them in place. Returns the number
    of chunks embedded.
    """
    own = index is None
    index = index or DocumentIndex()
    try:
        row = index.collection(collection)
        key = vector_key(row.name)
        index.chunks.begin_reindex(row.id, key)  # recorded before it exists: a sweep elsewhere leaves it alone
        try:
            index.vectors.create(key, row.name, embedder.name, embedder.dim)
            files = index.chunks.files(row.id)
            total = sum(f.chunks for f in files)
            done = 0
            yield IngestProgress("reindex", 0, total, f"{row.name}: re-indexing {total} passages")

            def step(base: int, name: str) -> Callable[[int], IngestProgress]:
                return lambda n: IngestProgress("reindex", base + n, total, f"{name}: re-indexing", file=name)

            for file in files:
                rows = index.chunks.file_chunks(file.id)
                yield from _store_vectors(
                    index,
                    key,
                    rows,
                    [c.id for c in rows],
                    embedder,
                    cancel,
                    step(done, file.name),
                )
                done += len(rows)
            index.chunks.finish_reindex(row.id, embedder.name, embedder.dim)
        except BaseException:
            index.chunks.abandon_reindex(row.id)
            index.vectors.drop(key)
            raise
        index.vectors.drop(row.vector_key)
        return done
    finally:
        if own:
            index.close()


def remove_file(collection: str, file_or_hash: str, *, index: DocumentIndex | None = None) -> FileInfo:
    """Remove one file (its display name, path, sha256 or a 12+ character prefix of it) and all its chunks."""
    own = index is None
    index = index or DocumentIndex()
    try:
        row = index.collection(collection)
        files = index.chunks.files(row.id)
        wanted = file_or_hash.strip()
        resolved = str(Path(wanted).expanduser().resolve())
        tests = (
            lambda f: f.file_hash == wanted.lower(),
            lambda f: len(wanted) >= 12 and f.file_hash.startswith(wanted.lower()),
            lambda f: f.path == resolved,
            lambda f: f.name == wanted,
            lambda f: f.name.casefold() == wanted.casefold(),
        )
        matches = next((m for test in tests if (m := [f for f in files if test(f)])), [])
        if not matches:
            raise UserError(f"{wanted!r} is not in the collection {row.name!r}.", hint="see `macapp docs list`")
        if len(matches) > 1:
            raise UserError(
                f"{len(matches)} files in {row.name!r} are called {wanted!r}.",
                hint="name one by its sha256: " + ", ".join(f.file_hash[:12] for f in matches),
            )
        file = matches[0]
        index.chunks.mark_removing(file.id)  # hidden from queries from here on
        index.drop_file(row, file.id, file.file_hash)
        return FileInfo(file.name, file.path, file.file_hash, file.pages, file.chunks, file.added_at)
    finally:
        if own:
            index.close()


def list_collections(*, index: DocumentIndex | None = None) -> list[CollectionInfo]:
    """Every collection with its (fully indexed) files, by name."""
    own = index is None
    index = index or DocumentIndex()
    try:
        collections = []
        for row in index.chunks.collections():
            ocr = index.chunks.ocr_page_counts(row.id)
            collections.append(
                CollectionInfo(
                    row.name,
                    row.embedder,
                    row.dim,
                    row.created_at,
                    tuple(
                        FileInfo(f.name, f.path, f.file_hash, f.pages, f.chunks, f.added_at, ocr.get(f.id, 0))
                        for f in index.chunks.files(row.id)
                    ),
                )
            )
        return collections
    finally:
        if own:
            index.close()


def delete_collection(collection: str, *, index: DocumentIndex | None = None) -> None:
    """Delete ``collection`` with all its files, chunks and vectors."""
    own = index is None
    index = index or DocumentIndex()
    try:
        index.drop_collection(index.collection(collection))
    finally:
        if own:
            index.close()
