"""The document index on disk: chunk texts and bookkeeping in SQLite (``keyword.ChunkStore``), vectors in chromadb.

Layout under ``paths.index_dir()``: ``chunks.sqlite3`` and ``chroma/`` (a chromadb ``PersistentClient``,
telemetry off). chromadb never embeds anything itself: every collection is created without an embedding
function (its default would download a model) and is given our vectors.

Each user collection ("Papers", "Tax 2024", any text) maps to a chromadb collection with a safe generated
name (``docs-<slug>-<random>``) whose metadata records the embedder's name and dimension; the vector ids are
the SQLite chunk ids, and each vector's metadata is its chunk's file, file_hash, page_start, page_end,
page_breaks (where each later page begins in its text, "812,1650"), index and heading. Vectors of two
embedders never share a chromadb collection: a re-index builds a new one and swaps it in (see
``ingest.reindex``).

Crash safety: the first time a process touches the vectors it sweeps what dead processes left behind —
files still ``pending``/``removing`` (their vectors and rows are deleted) and half-built re-index
collections — so an interrupted ingest ends rolled back, never half-visible. The sweep also removes the
HNSW folders chromadb 1.5 leaves on disk when a collection is deleted.

Shared vectors: with ``chroma_url`` (or ``$MACAPP_CHROMA_URL``, e.g. ``http://nas.local:8000``) the vectors live
on a Chroma server (``chromadb.HttpClient``, what ``chroma run`` serves) instead of ``chroma/``; everything else
is the same code. Chunk texts and keywords stay in the local SQLite. Other machines keep their own
collections on that server, so the sweep there only drops collections this index names (abandoned re-index
targets), never ones it does not know.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from macapp.core import paths
from macapp.core.docs.keyword import ChunkRow, ChunkStore, CollectionRow, breaks_text, writer_alive
from macapp.core.docs.names import embedder_names
from macapp.core.docs.types import Chunk, EmbeddingModel
from macapp.core.errors import UserError

log = logging.getLogger(__name__)

KEY_PREFIX = "docs-"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_NAME = 100
CHROMA_URL_ENV = "MACAPP_CHROMA_URL"


class EmbedderMismatch(UserError):
    """The collection's vectors come from another embedder than the one asked to search it."""

    def __init__(self, message: str, hint: str | None = None, *, indexed_with: str = "", asked_with: str = ""):
        super().__init__(message, hint)
        self.indexed_with = indexed_with  # embedder ids, as the index records them
        self.asked_with = asked_with


def check_collection_name(name: str) -> str:
    """``name`` tidied (spaces trimmed, NFC) or a ``UserError`` saying what is wrong with it."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise UserError("A collection needs a name.")
    if len(name) > MAX_NAME:
        raise UserError(f"That collection name is too long ({len(name)} characters; at most {MAX_NAME}).")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise UserError("A collection name can't contain control characters.")
    return name


def vector_key(name: str) -> str:
    """A fresh chromadb collection name for ``name``: ``docs-<ascii slug>-<random hex>`` (3-63 safe characters)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40].strip("-")
    return f"{KEY_PREFIX}{slug + '-' if slug else ''}{secrets.token_hex(4)}"


def _http_client(url: str, settings):
    """A client of the Chroma server at ``url`` (``http(s)://host[:port]``; Chroma's port 8000 by default)."""
    import chromadb

    parts = urlsplit(url if "://" in url else f"http://{url}")
    ssl = parts.scheme == "https"
    try:
        return chromadb.HttpClient(
            host=parts.hostname or "localhost", port=parts.port or (443 if ssl else 8000), ssl=ssl, settings=settings
        )
    except Exception as e:  # chromadb raises ValueError("Could not connect to a Chroma server...")
        raise UserError(
            f"Cannot reach the Chroma server at {url}",
            hint=f"is `chroma run` going there? (set by ${CHROMA_URL_ENV} or chroma_url)",
        ) from e


class VectorStore:
    """chromadb behind the few calls the index needs. Thread-safe as chromadb's client is.

    ``url`` None: an embedded ``PersistentClient`` in ``path``; else the Chroma server there (``shared``).
    """

    def __init__(self, path: Path, url: str | None = None):
        import chromadb
        from chromadb.config import Settings

        self.path = path
        self.shared = bool(url)  # a server other indexes may keep collections on too
        settings = Settings(anonymized_telemetry=False)
        self._client = (
            _http_client(url, settings) if url else chromadb.PersistentClient(path=str(path), settings=settings)
        )
        self._collections: dict[str, object] = {}
        self._lock = threading.Lock()

    def create(self, key: str, name: str, embedder: str, dim: int) -> None:
        collection = self._client.create_collection(
            key,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"orchard_name": name, "embedder": embedder, "dim": dim},
            get_or_create=True,
        )
        with self._lock:
            self._collections[key] = collection

    def _get(self, key: str):
        with self._lock:
            collection = self._collections.get(key)
        if collection is None:
            try:
                collection = self._client.get_collection(key, embedding_function=None)
            except Exception as e:  # chromadb raises NotFoundError (ValueError before 1.0)
                raise UserError(
                    f"The vectors of a collection are missing ({key})",
                    hint="delete the collection and add its files again",
                ) from e
            with self._lock:
                self._collections[key] = collection
        return collection

    def add(self, key: str, ids: Sequence[int], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        self._get(key).upsert(ids=[str(i) for i in ids], embeddings=vectors, metadatas=list(metadatas))

    def delete_file(self, key: str, file_hash: str) -> None:
        self._get(key).delete(where={"file_hash": file_hash})

    def query(
        self, key: str, vector: np.ndarray, n: int, exclude_hashes: Sequence[str] = ()
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the ``n`` nearest vectors, best first."""
        where = {"file_hash": {"$nin": list(exclude_hashes)}} if exclude_hashes else None
        result = self._get(key).query(
            query_embeddings=np.asarray(vector, dtype=np.float32)[None, :],
            n_results=n,
            where=where,
            include=["distances"],
        )
        return [(int(i), 1.0 - float(d)) for i, d in zip(result["ids"][0], result["distances"][0])]

    def count(self, key: str) -> int:
        return self._get(key).count()

    def drop(self, key: str) -> None:
        with self._lock:
            self._collections.pop(key, None)
        from chromadb.errors import NotFoundError

        try:
            self._client.delete_collection(key)
        except NotFoundError:  # already gone
            log.debug("chromadb collection %s was already gone", key)

    def names(self) -> list[str]:
        return [c.name for c in self._client.list_collections()]

    def prune_folders(self, min_age_s: float = 60.0) -> None:
        """Delete the HNSW folders chromadb 1.5 leaves behind when it deletes a collection: those named like a
        segment id that its catalog no longer lists (and old enough not to be a collection being created)."""
        try:
            with closing(sqlite3.connect(f"file:{self.path / 'chroma.sqlite3'}?mode=ro", uri=True)) as db:
                live = {row[0] for row in db.execute("SELECT id FROM segments")}
        except sqlite3.Error as e:  # another chromadb layout: leave its files alone
            log.debug("not pruning %s: %s", self.path, e)
            return
        for folder in self.path.iterdir():
            if (
                folder.is_dir()
                and _UUID.fullmatch(folder.name)
                and folder.name not in live
                and time.time() - folder.stat().st_mtime > min_age_s
            ):
                log.info("removing %s, left behind by a deleted vector collection", folder)
                shutil.rmtree(folder, ignore_errors=True)


class DocumentIndex:
    """The index under ``root`` (default ``paths.index_dir()``): ``chunks`` (SQLite) and ``vectors`` (chromadb,
    opened on first use, which also sweeps up after crashed writers). ``chroma_url`` (default
    ``$MACAPP_CHROMA_URL``) puts the vectors on a Chroma server instead of ``root/chroma``."""

    def __init__(self, root: Path | None = None, chroma_url: str | None = None):
        self.root = Path(root) if root is not None else paths.index_dir()
        self.chroma_url = chroma_url if chroma_url is not None else os.environ.get(CHROMA_URL_ENV) or None
        self.root.mkdir(parents=True, exist_ok=True)
        self.chunks = ChunkStore(self.root / "chunks.sqlite3")
        self._vectors: VectorStore | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.chunks.close()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def vectors(self) -> VectorStore:
        with self._lock:
            if self._vectors is None:
                self._vectors = VectorStore(self.root / "chroma", self.chroma_url)
                self._sweep(self._vectors)
            return self._vectors

    # ------------------------------------------------------------ collections

    def collection(self, name: str) -> CollectionRow:
        """The collection called ``name`` (case-insensitive), or a ``UserError``."""
        row = self.chunks.collection(check_collection_name(name))
        if row is None:
            raise UserError(
                f"There is no document collection named {name!r}.",
                hint="see `macapp docs list`; `macapp docs add` creates one",
            )
        return row

    def ensure_collection(self, name: str, embedder: EmbeddingModel) -> CollectionRow:
        """The collection called ``name``, created (empty, for ``embedder``) if it doesn't exist."""
        name = check_collection_name(name)
        row = self.chunks.collection(name)
        if row is not None:
            return row
        # The row first: a sweep in another process only drops vector collections no row names.
        row = self.chunks.add_collection(name, vector_key(name), embedder.name, embedder.dim)
        self.vectors.create(row.vector_key, row.name, row.embedder, row.dim)  # get-or-create: a racing twin is fine
        return row

    def check_embedder(self, row: CollectionRow, embedder: EmbeddingModel) -> None:
        if row.embedder != embedder.name:
            indexed, asked = embedder_names(row.embedder, embedder.name)
            raise EmbedderMismatch(
                f"The collection {row.name!r} was indexed with {indexed}, not {asked}.",
                hint=f"re-index it with `macapp docs reindex {row.name!r}` (vectors of two models never mix)",
                indexed_with=row.embedder,
                asked_with=embedder.name,
            )

    # ------------------------------------------------------------ removing

    def drop_file(self, row: CollectionRow, file_id: int, file_hash: str) -> None:
        """Delete a file already hidden (``pending`` or ``removing``): vectors first, then its rows."""
        self.vectors.delete_file(row.vector_key, file_hash)
        if row.next_key:
            try:
                self.vectors.delete_file(row.next_key, file_hash)
            except UserError:
                pass
        self.chunks.delete_file(file_id)

    def drop_collection(self, row: CollectionRow) -> None:
        self.chunks.delete_collection(row.id)
        for key in (row.vector_key, row.next_key):
            if key:
                self.vectors.drop(key)

    def _sweep(self, vectors: VectorStore) -> None:
        """Roll back what crashed writers left: hidden files of dead processes, orphaned chromadb collections."""
        collections = {row.id: row for row in self.chunks.collections()}
        for file in self.chunks.files(status=None):
            if file.status != "ready" and not writer_alive(file.writer) and file.collection_id in collections:
                log.info(
                    "rolling back %s (%s) left %s by a process that ended", file.name, file.file_hash[:12], file.status
                )
                row = collections[file.collection_id]
                vectors.delete_file(row.vector_key, file.file_hash)
                self.chunks.delete_file(file.id)
        live = set()
        for row in collections.values():
            live.add(row.vector_key)
            if row.next_key and writer_alive(row.next_writer):
                live.add(row.next_key)
            elif row.next_key:
                self.chunks.abandon_reindex(row.id)
                if vectors.shared:  # below, only an embedded store drops what no row names
                    vectors.drop(row.next_key)
        if vectors.shared:
            return
        for key in vectors.names():
            if key.startswith(KEY_PREFIX) and key not in live:
                log.info("dropping orphaned vector collection %s", key)
                vectors.drop(key)
        vectors.prune_folders()


def chunk_metadata(chunk: Chunk | ChunkRow) -> dict:
    """What chromadb keeps beside a vector (None is not storable: no heading is '')."""
    return {
        "file": chunk.file,
        "file_hash": chunk.file_hash,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "page_breaks": breaks_text(chunk.page_breaks or ()),
        "index": chunk.index,
        "heading": chunk.heading or "",
    }
