"""The SQLite half of the document index: collections, files, chunk texts and BM25 keyword search (FTS5).

One database, ``index/chunks.sqlite3`` (WAL), is the source of truth for what a collection holds; chromadb
holds only the vectors (see ``index.py``). Keeping the texts here makes every bookkeeping change one SQLite
transaction, lets a collection be re-embedded without the PDFs, and gives keyword search for free.

A file is written as ``pending`` (with its writer process) and becomes ``ready`` in one update once all its
vectors are stored: queries only ever see ready files, so an interrupted ingest is never half-visible.
Removing marks the file ``removing`` first, for the same reason.

Keyword search: FTS5 with ``porter unicode61 remove_diacritics 2`` (case, accents and English suffixes are
ignored), ranked by ``bm25()``. A question becomes an OR of its quoted words, so punctuation or FTS syntax
typed by a user can never break the query. IDF is computed over every collection, which only shifts weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from macapp.core.database import open_database, write_transaction
from macapp.core.docs.types import Chunk, OcrLine, PageText

# Append-only: never edit a shipped script, add a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE collections (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        vector_key TEXT NOT NULL UNIQUE,  -- the chromadb collection holding this collection's vectors
        embedder TEXT NOT NULL, dim INTEGER NOT NULL,
        next_key TEXT, next_writer TEXT,  -- a re-index being built (swapped in when complete)
        created_at TEXT NOT NULL
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        file_hash TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
        pages INTEGER NOT NULL, chunks INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'removing')),
        writer TEXT,  -- "pid:start time" of the process a pending/removing row belongs to
        added_at TEXT NOT NULL,
        UNIQUE (collection_id, file_hash)
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- also the vector's id in chromadb: never reused
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL, page_start INTEGER NOT NULL, page_end INTEGER NOT NULL,
        heading TEXT, text TEXT NOT NULL,
        UNIQUE (file_id, idx)
    );
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        heading, text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, coalesce(new.heading, ''), new.text);
    END;
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, heading, text)
            VALUES ('delete', old.id, coalesce(old.heading, ''), old.text);
    END;
    """,
    # Where each page after the first begins in a chunk's text ("812,1650"): a hit names its exact page.
    # NULL for chunks indexed before: their hits name the span's first page until the file is added again.
    """
    ALTER TABLE chunks ADD COLUMN page_breaks TEXT;
    """,
    # How each page's text was obtained (its text layer, OCR, or none found), and an OCR'd page's line boxes
    # (JSON [[text, left, top, right, bottom, confidence], ...], points from the top-left) for highlighting.
    # Files indexed before have no rows here: their pages count as text-layer pages.
    """
    CREATE TABLE pages (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        page INTEGER NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('text', 'ocr', 'none')),
        lines TEXT,
        PRIMARY KEY (file_id, page)
    );
    """,
]

_WORD = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    {  # English function words (NLTK's list, less contractions)
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "get",
        "got",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "s",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    }
)


@dataclass(frozen=True)
class CollectionRow:
    id: int
    name: str
    vector_key: str
    embedder: str
    dim: int
    next_key: str | None
    next_writer: str | None
    created_at: str


@dataclass(frozen=True)
class FileRow:
    id: int
    collection_id: int
    file_hash: str
    name: str
    path: str
    pages: int
    chunks: int
    status: str
    writer: str | None
    added_at: str


@dataclass(frozen=True)
class ChunkRow:
    id: int
    file_id: int
    index: int
    page_start: int
    page_end: int
    heading: str | None
    text: str
    file: str
    file_hash: str
    path: str
    page_breaks: tuple[int, ...] | None = None  # None: indexed before pages were recorded (see MIGRATIONS)


_CHUNK_COLUMNS = (
    "c.id, c.file_id, c.idx, c.page_start, c.page_end, c.heading, c.text, f.name, f.file_hash, f.path, "
    "c.page_breaks FROM chunks c JOIN files f ON f.id = c.file_id"
)


def _chunk_row(row: tuple) -> ChunkRow:
    chunk_id, file_id, index, page_start, page_end, heading, text, file, file_hash, path, breaks = row
    return ChunkRow(
        chunk_id,
        file_id,
        index,
        page_start,
        page_end,
        heading,
        text,
        file,
        file_hash,
        path,
        tuple(int(b) for b in breaks.split(",") if b) if breaks is not None else None,
    )


def _lines_json(lines: Sequence[OcrLine]) -> str:
    return json.dumps([[line.text, *line.box, line.confidence] for line in lines], ensure_ascii=False)


def breaks_text(breaks: Sequence[int]) -> str:
    return ",".join(str(b) for b in breaks)


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def this_writer() -> str:
    """This process as a pending row's writer: pid and start time (so a reused pid is not mistaken for it)."""
    import psutil

    return f"{os.getpid()}:{psutil.Process().create_time():.2f}"


def writer_alive(writer: str | None) -> bool:
    if not writer:
        return False
    import psutil

    try:
        pid, started = writer.split(":")
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 1.0
    except (ValueError, psutil.Error):
        return False


def query_terms(question: str) -> list[str]:
    """The distinct words of ``question``, lower-cased, stop words dropped unless nothing else is left."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(question)))
    return ([w for w in words if w not in _STOP_WORDS] or words)[:64]


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def match_expression(question: str) -> str | None:
    """``question`` as a safe FTS5 query: its terms (``query_terms``), each quoted, joined by OR. None when it
    has no words."""
    return " OR ".join(_quoted(t) for t in query_terms(question)) or None


class ChunkStore:
    """The index's SQLite database. One connection, shared by threads under a lock; every call is short."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self._conn = _open(path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    def _all(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------ collections

    def collections(self) -> list[CollectionRow]:
        return [CollectionRow(*r) for r in self._all(f"SELECT {_COLLECTION} FROM collections ORDER BY name")]

    def collection(self, name: str) -> CollectionRow | None:
        rows = self._all(f"SELECT {_COLLECTION} FROM collections WHERE name = ?", (name,))
        return CollectionRow(*rows[0]) if rows else None

    def add_collection(self, name: str, vector_key: str, embedder: str, dim: int) -> CollectionRow:
        with self.transaction() as db:
            try:
                db.execute(
                    "INSERT INTO collections (name, vector_key, embedder, dim, created_at) VALUES (?, ?, ?, ?, ?)",
                    (name, vector_key, embedder, dim, now_text()),
                )
            except sqlite3.IntegrityError:
                pass  # another process created it meanwhile: use theirs
        row = self.collection(name)
        assert row is not None
        return row

    # ------------------------------------------------------------ files

    def files(self, collection_id: int | None = None, status: str | None = "ready") -> list[FileRow]:
        where: list[str] = []
        args: list[Any] = []
        if collection_id is not None:
            where.append("collection_id = ?")
            args.append(collection_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {_FILE} FROM files" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [FileRow(*r) for r in self._all(sql, args)]

    def file_by_hash(self, collection_id: int, file_hash: str) -> FileRow | None:
        rows = self._all(
            f"SELECT {_FILE} FROM files WHERE collection_id = ? AND file_hash = ?", (collection_id, file_hash)
        )
        return FileRow(*rows[0]) if rows else None

    def unready_hashes(self, collection_id: int) -> list[str]:
        """Hashes of files whose vectors may be in the store but must not be found (being added or removed)."""
        return [
            r[0]
            for r in self._all(
                "SELECT file_hash FROM files WHERE collection_id = ? AND status != 'ready'", (collection_id,)
            )
        ]

    def add_pending_file(
        self,
        collection_id: int,
        file_hash: str,
        name: str,
        path: str,
        pages: int,
        chunks: Sequence[Chunk],
        page_texts: Sequence[PageText] = (),
    ) -> tuple[int, list[int]]:
        """Write a file and its chunks as ``pending`` in one transaction; its id and its chunks' ids, in order.
        ``page_texts`` records how each page's text was obtained, with an OCR'd page's line boxes."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO files (collection_id, file_hash, name, path, pages, chunks, status, writer,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (collection_id, file_hash, name, path, pages, len(chunks), this_writer(), now_text()),
            )
            file_id = cur.lastrowid
            assert file_id is not None, "set by the INSERT above"
            db.executemany(
                "INSERT INTO chunks (file_id, idx, page_start, page_end, heading, text, page_breaks)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (file_id, c.index, c.page_start, c.page_end, c.heading, c.text, breaks_text(c.page_breaks))
                    for c in chunks
                ],
            )
            db.executemany(
                "INSERT INTO pages (file_id, page, source, lines) VALUES (?, ?, ?, ?)",
                [(file_id, p.page, p.source, _lines_json(p.lines) if p.lines else None) for p in page_texts],
            )
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE file_id = ? ORDER BY idx", (file_id,))]
        return file_id, ids

    def ocr_page_counts(self, collection_id: int) -> dict[int, int]:
        """Per file id of the collection, how many of its pages were read by OCR (files with none are left out)."""
        return dict(
            self._all(
                "SELECT p.file_id, count(*) FROM pages p JOIN files f ON f.id = p.file_id"
                " WHERE f.collection_id = ? AND p.source = 'ocr' GROUP BY p.file_id",
                (collection_id,),
            )
        )

    def page_lines(self, path: str, page: int) -> tuple[OcrLine, ...] | None:
        """The OCR line boxes of ``page`` of the ready file last indexed from ``path``; None when that page was not
        OCR'd (or no such file is indexed)."""
        rows = self._all(
            "SELECT p.lines FROM pages p JOIN files f ON f.id = p.file_id WHERE f.path = ? AND"
            " p.page = ? AND p.source = 'ocr' AND f.status = 'ready' ORDER BY f.id DESC LIMIT 1",
            (path, page),
        )
        if not rows or not rows[0][0]:
            return None
        return tuple(
            OcrLine(text, (left, top, right, bottom), confidence)
            for text, left, top, right, bottom, confidence in json.loads(rows[0][0])
        )

    def publish_file(self, file_id: int, replaces: Sequence[int] = ()) -> None:
        """Make a pending file visible and, in the same transaction, hide the files it replaces."""
        with self.transaction() as db:
            db.execute("UPDATE files SET status = 'ready', writer = NULL WHERE id = ?", (file_id,))
            db.executemany(
                "UPDATE files SET status = 'removing', writer = ? WHERE id = ?",
                [(this_writer(), old) for old in replaces],
            )

    def mark_removing(self, file_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE files SET status = 'removing', writer = ? WHERE id = ?", (this_writer(), file_id))

    def delete_file(self, file_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # ------------------------------------------------------------ re-index bookkeeping

    def begin_reindex(self, collection_id: int, next_key: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE collections SET next_key = ?, next_writer = ? WHERE id = ?",
                (next_key, this_writer(), collection_id),
            )

    def finish_reindex(self, collection_id: int, embedder: str, dim: int) -> None:
        """Swap the re-built vectors in: the collection now reads ``next_key`` with the new embedder."""
        with self.transaction() as db:
            db.execute(
                "UPDATE collections SET vector_key = next_key, embedder = ?, dim = ?, next_key = NULL,"
                " next_writer = NULL WHERE id = ? AND next_key IS NOT NULL",
                (embedder, dim, collection_id),
            )

    def abandon_reindex(self, collection_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE collections SET next_key = NULL, next_writer = NULL WHERE id = ?", (collection_id,))

    def delete_collection(self, collection_id: int) -> None:
        with self.transaction() as db:
            db.execute(
                "DELETE FROM chunks WHERE file_id IN (SELECT id FROM files WHERE collection_id = ?)", (collection_id,)
            )
            db.execute("DELETE FROM files WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

    # ------------------------------------------------------------ chunks and search

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks of ready files among ``ids``."""
        found: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for r in self._all(f"SELECT {_CHUNK_COLUMNS} WHERE c.id IN ({marks}) AND f.status = 'ready'", part):
                found[r[0]] = _chunk_row(r)
        return found

    def chunk_range(self, file_id: int, first: int, last: int) -> list[ChunkRow]:
        return [
            _chunk_row(r)
            for r in self._all(
                f"SELECT {_CHUNK_COLUMNS} WHERE c.file_id = ? AND c.idx BETWEEN ? AND ? ORDER BY c.idx",
                (file_id, first, last),
            )
        ]

    def file_chunks(self, file_id: int) -> list[ChunkRow]:
        return [
            _chunk_row(r) for r in self._all(f"SELECT {_CHUNK_COLUMNS} WHERE c.file_id = ? ORDER BY c.idx", (file_id,))
        ]

    def search(self, collection_id: int, question: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score — higher is better) of the best keyword matches in ready files."""
        terms = query_terms(question)
        if not terms:
            return []
        rows = self._all(
            "SELECT c.id, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
            " JOIN files f ON f.id = c.file_id"
            " WHERE chunks_fts MATCH ? AND f.collection_id = ? AND f.status = 'ready'"
            " ORDER BY bm25(chunks_fts) LIMIT ?",
            (" OR ".join(_quoted(t) for t in terms), collection_id, limit),
        )
        return [(r[0], float(r[1])) for r in rows]

    def coverage(self, question: str, ids: Sequence[int]) -> dict[int, float]:
        """Per chunk id, the IDF-weighted share of ``question``'s terms it contains (IDF over the whole index, like
        bm25()): a chunk sharing one common word with a long question holds little of it, so hybrid search
        weighs its keyword vote by this."""
        terms = query_terms(question)
        if not ids or not terms:
            return dict.fromkeys(ids, 0.0)
        total = self._all("SELECT count(*) FROM chunks")[0][0]
        marks = ",".join("?" * len(ids))
        held: dict[int, float] = dict.fromkeys(ids, 0.0)
        weights = 0.0
        for term in terms:
            found = self._all(
                f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})", (_quoted(term), *ids)
            )
            df = self._all("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (_quoted(term),))[0][0]
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            weights += idf
            for (rowid,) in found:
                held[rowid] += idf
        return {i: (w / weights if weights else 0.0) for i, w in held.items()}


_COLLECTION = "id, name, vector_key, embedder, dim, next_key, next_writer, created_at"
_FILE = "id, collection_id, file_hash, name, path, pages, chunks, status, writer, added_at"


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open_database(path, MIGRATIONS, "the document index")
