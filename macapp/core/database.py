"""Orchard's SQLite files (chat history, document index): WAL, append-only migrations, safe opening.

Migrations are lists of SQL scripts; ``schema_migrations`` records which ran. They run inside one
``BEGIN IMMEDIATE`` (two processes opening a new file at once must not both migrate), split into
statements because ``executescript`` would commit.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from macapp.core.errors import UserError

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
MOVE_ASIDE = "move the file aside and Orchard will start a new one; the file was not changed"


def open_database(
    path: Path, migrations: list[str], what: str, on_open: Callable[[sqlite3.Connection], None] | None = None
) -> sqlite3.Connection:
    """Connect (WAL), run pending ``migrations``, then ``on_open(conn)`` in the same transaction.

    ``what`` names the database for messages ("the chat history"). A file that is not SQLite,
    another program's database, or one written by a newer Orchard is refused and left untouched.
    """
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_is_sqlite(path, what)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal" and str(path) != ":memory:":
            log.warning("%s: journal mode is not WAL", path)
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a crash or kill of the app, not power loss
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")  # two processes opening a new file at once must not both migrate
        try:
            _migrate(conn, path, migrations, what)
            if on_open is not None:
                on_open(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise UserError(f"Cannot open {what} {path}: {e}", hint=MOVE_ASIDE) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _check_is_sqlite(path: Path, what: str) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserError(f"Cannot read {what} {path}: {e.strerror}") from e
    if head and head != _SQLITE_MAGIC:
        raise UserError(f"{path} is not a SQLite database, so it cannot hold {what}", hint=MOVE_ASIDE)


def _migrate(conn: sqlite3.Connection, path: Path, migrations: list[str], what: str) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_migrations" not in tables:
        raise UserError(f"{path} is a SQLite database but not Orchard's {what.removeprefix('the ')}", hint=MOVE_ASIDE)
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    newest = max(applied, default=0)
    if newest > len(migrations):
        raise UserError(
            f"{what[0].upper()}{what[1:]} {path} was written by a newer Orchard (schema version {newest}; "
            f"this version knows up to {len(migrations)})",
            hint="update Orchard to open it",
        )
    for version, script in enumerate(migrations, start=1):
        if version not in applied:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now_text()))
            log.info("%s %s: applied migration %d", what, path, version)


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


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, lock) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under ``lock`` (the store's one connection), rolled back on any error."""
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
