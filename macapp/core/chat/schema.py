"""The chat history's SQLite schema: append-only migrations and opening a database safely.

A file that is not SQLite, another program's database, or a history written by a newer Orchard
is refused with a ``UserError`` and left untouched.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from macapp.core.errors import UserError

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_MOVE_ASIDE = "move the file aside and Orchard will start a new one; the file was not changed"

# Append-only: never edit a shipped script, add a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY, title TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        model TEXT, adapter TEXT, system_prompt TEXT NOT NULL DEFAULT '', settings_json TEXT NOT NULL DEFAULT '{}',
        head_id INTEGER  -- leaf of the branch on screen
    );
    CREATE INDEX conversations_updated ON conversations(updated_at);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
        role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '', model TEXT, adapter TEXT,
        settings_json TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'done', finish_reason TEXT,
        prompt_tokens INTEGER, completion_tokens INTEGER, tokens_per_s REAL,
        writer_pid INTEGER,  -- process appending to a 'streaming' row
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    CREATE INDEX messages_parent ON messages(parent_id);
    CREATE INDEX messages_siblings ON messages(conversation_id, parent_id, role, id);
    CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
    CREATE TABLE message_chunks (  -- text streamed into a message, folded into its content when it ends
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        text TEXT NOT NULL
    );
    CREATE INDEX message_chunks_message ON message_chunks(message_id);

    -- Rows still streaming are indexed when they finish (or are marked interrupted).
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status != 'streaming' BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.status != 'streaming' BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
    WHEN old.status != 'streaming' OR new.status != 'streaming' BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
        INSERT INTO messages_fts(rowid, content) SELECT new.id, new.content WHERE new.status != 'streaming';
    END;

    CREATE VIRTUAL TABLE conversations_fts USING fts5(
        title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
    END;
    CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
    END;
    CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
    END;
    """,
    # 2: the documents attached to a conversation, and the sources an answer cites
    """
    ALTER TABLE conversations ADD COLUMN collection TEXT;
    ALTER TABLE messages ADD COLUMN citations_json TEXT NOT NULL DEFAULT '[]';
    """,
]


def open_database(path: Path, on_open: Callable[[sqlite3.Connection], None] | None = None) -> sqlite3.Connection:
    """Connect, set pragmas, run pending migrations, then ``on_open(conn)`` in the same transaction."""
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_is_sqlite(path)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal" and str(path) != ":memory:":
            log.warning("%s: journal mode is not WAL", path)
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a crash or kill of the app, not power loss
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")  # two processes opening a new file at once must not both migrate
        try:
            _migrate(conn, path)
            if on_open is not None:
                on_open(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise UserError(f"Cannot open the chat history {path}: {e}", hint=_MOVE_ASIDE) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _check_is_sqlite(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserError(f"Cannot read the chat history {path}: {e.strerror}") from e
    if head and head != _SQLITE_MAGIC:
        raise UserError(f"{path} is not a SQLite database, so it cannot hold the chat history", hint=_MOVE_ASIDE)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_migrations" not in tables:
        raise UserError(f"{path} is a SQLite database but not Orchard's chat history", hint=_MOVE_ASIDE)
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    newest = max(applied, default=0)
    if newest > len(MIGRATIONS):
        raise UserError(f"The chat history {path} was written by a newer Orchard (schema version {newest}; "
                        f"this version knows up to {len(MIGRATIONS)})", hint="update Orchard to open it")
    for version, script in enumerate(MIGRATIONS, start=1):
        if version not in applied:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now_text()))
            log.info("chat history %s: applied migration %d", path, version)


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements (``executescript`` would commit the open transaction)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:60]}")


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
