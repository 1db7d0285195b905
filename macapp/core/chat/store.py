"""Chat history in SQLite (WAL): conversations, a tree of messages, full-text search.

Messages form a tree: regenerating adds an assistant sibling, editing adds a sibling with the new
text, so earlier versions stay. A conversation's ``head_id`` is the leaf of the branch on screen;
its thread is the walk from the head up to the root.

Streaming: every ``append_text`` commits one small row to ``message_chunks`` (constant cost; an
``UPDATE content = content || ?`` rewrites the whole text per token, ~300 µs at 100 KB), so a crash
or ``kill -9`` loses nothing already written. Finishing folds the chunks into ``content``. Rows
whose writer process died are folded and marked 'interrupted' the next time a store opens.

Threads: one connection (``check_same_thread=False``) guarded by a lock. Every call is short
(an append is ~15 µs), so the GUI reading while a worker appends barely waits; other processes
use their own connections and WAL lets them read while this one writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from macapp.core import paths
from macapp.core.chat.records import (
    SELECT_CONVERSATION,
    SELECT_MESSAGE,
    Conversation,
    Message,
    SavedToolStep,
    SearchHit,
    conversation_from_row,
    dict_from_json,
    dict_to_json,
    message_from_row,
    parse_time,
)
from macapp.core.chat.schema import now_text as _now
from macapp.core.chat.schema import open_database
from macapp.core.database import write_transaction
from macapp.core.errors import UserError

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
FINISHED = ("done", "interrupted", "cancelled", "error")  # 'streaming' is the only unfinished status
SNIPPET_TOKENS = 12


class NotFoundError(UserError, LookupError):
    """A conversation or message id that is not in the store."""


class _Head:
    def __repr__(self) -> str:
        return "HEAD"


HEAD: Any = _Head()  # default parent: the conversation's current head
_UNSET: Any = object()

_SEARCH = f"""
SELECT c.id, c.title, m.id, m.role, snippet(messages_fts, 0, '[', ']', '…', {SNIPPET_TOKENS}), m.created_at
FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id
WHERE messages_fts MATCH :q
UNION ALL
SELECT c.id, c.title, NULL, NULL, snippet(conversations_fts, 0, '[', ']', '…', {SNIPPET_TOKENS}), c.updated_at
FROM conversations_fts JOIN conversations c ON c.id = conversations_fts.rowid
WHERE conversations_fts MATCH :q
ORDER BY 6 DESC LIMIT :limit"""
_APPEND = (
    "INSERT INTO message_chunks (message_id, text) SELECT id, ? FROM messages WHERE id = ? AND status = 'streaming'"
)


def default_title(first_user_text: str, limit: int = 60) -> str:
    """A title from the first user message: its first line, cut to ``limit`` chars on a word boundary."""
    line = next((x for x in first_user_text.splitlines() if x.strip()), "")
    line = " ".join(line.split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[: limit - 1]
    if " " in cut and line[limit - 1] != " ":
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-") + "…"


class ChatStore:
    """Conversations and messages in one SQLite file (default ``paths.chats_db()``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else paths.chats_db()
        self._lock = threading.RLock()
        self._streaming: set[int] = set()  # messages this store began and has not finished
        self._conn = open_database(self.path, _interrupt_orphans)
        self._closed = False

    def close(self) -> None:
        """Close; messages this store left streaming become 'interrupted'."""
        with self._lock:
            if self._closed:
                return
            if self._streaming:
                with self._write() as db:
                    for mid in self._streaming:
                        _finish_row(db, mid, "interrupted")
                self._streaming.clear()
            self._conn.close()  # later calls raise sqlite3.ProgrammingError
            self._closed = True

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations --------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "New chat",
        model: str | None = None,
        adapter: str | None = None,
        system_prompt: str = "",
        settings: dict[str, Any] | None = None,
    ) -> Conversation:
        now = _now()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, created_at, updated_at, model, adapter, system_prompt,"
                " settings_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_clean_title(title), now, now, model, adapter, system_prompt, dict_to_json(settings)),
            )
            return self.get_conversation(_new_id(cur))

    def get_conversation(self, conversation_id: int) -> Conversation:
        with self._lock:
            row = self._conn.execute(f"{SELECT_CONVERSATION} WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No conversation with id {conversation_id}")
        return conversation_from_row(row)

    def list_conversations(self, limit: int | None = None) -> list[Conversation]:
        """Most recently updated first."""
        with self._lock:
            rows = self._conn.execute(
                f"{SELECT_CONVERSATION} ORDER BY updated_at DESC, id DESC LIMIT ?", (-1 if limit is None else limit,)
            ).fetchall()
        return [conversation_from_row(r) for r in rows]

    def collection_titles(self) -> dict[str, str]:
        """The title of the conversation whose PDFs each collection holds, by casefolded collection name."""
        titles: dict[str, str] = {}
        for conv in self.list_conversations():
            if conv.collection:
                titles.setdefault(conv.collection.casefold(), conv.title)
        return titles

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        return self.update_conversation(conversation_id, title=title)

    def update_conversation(
        self,
        conversation_id: int,
        *,
        title: str = _UNSET,
        model: str | None = _UNSET,
        adapter: str | None = _UNSET,
        system_prompt: str = _UNSET,
        settings: dict[str, Any] | None = _UNSET,
        collection: str | None = _UNSET,
    ) -> Conversation:
        """Change only the fields given (None clears model, adapter or collection). ``updated_at`` moves only
        with messages."""
        given: dict[str, Any] = {
            "title": title,
            "model": model,
            "adapter": adapter,
            "system_prompt": system_prompt,
            "settings_json": settings,
            "collection": collection,
        }
        given = {k: v for k, v in given.items() if v is not _UNSET}
        if "title" in given:
            given["title"] = _clean_title(given["title"])
        if "settings_json" in given:
            given["settings_json"] = dict_to_json(given["settings_json"])
        with self._write() as db:
            if given:
                sets = ", ".join(f"{k} = ?" for k in given)
                db.execute(f"UPDATE conversations SET {sets} WHERE id = ?", (*given.values(), conversation_id))
            return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: int) -> bool:
        """Delete a conversation with its messages (and their search entries). False if it did not exist."""
        with self._write() as db:
            return db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    # -- messages -------------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        parent_id: int | None = HEAD,
        *,
        model: str | None = None,
        adapter: str | None = None,
        settings: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        tokens_per_s: float | None = None,
    ) -> Message:
        """A finished message under ``parent_id`` (the head by default, None for a root); it becomes the head."""
        return self._insert(
            conversation_id,
            role,
            content,
            parent_id,
            "done",
            model,
            adapter,
            settings,
            finish_reason,
            prompt_tokens,
            completion_tokens,
            tokens_per_s,
        )

    def begin_message(
        self,
        conversation_id: int,
        role: str = "assistant",
        parent_id: int | None = HEAD,
        *,
        model: str | None = None,
        adapter: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Message:
        """An empty 'streaming' message that becomes the head; ``append_text`` fills it, ``finish_message`` ends it.

        To regenerate an answer, pass the old answer's ``parent_id``: the new one becomes its sibling.
        """
        with self._lock:
            msg = self._insert(conversation_id, role, "", parent_id, "streaming", model, adapter, settings)
            self._streaming.add(msg.id)
        return msg

    def append_text(self, message_id: int, delta: str) -> None:
        """Append to a streaming message and commit, so a crash keeps it: one prepared INSERT, constant cost."""
        if not delta:
            return
        with self._lock:
            if self._conn.execute(_APPEND, (delta, message_id)).rowcount != 1:
                raise ValueError(f"message {message_id} does not exist or is not streaming")

    def finish_message(
        self,
        message_id: int,
        status: str = "done",
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        tokens_per_s: float | None = None,
        citations: list[dict[str, Any]] | None = None,
    ) -> Message:
        """End a streaming message with a final status (done, interrupted, cancelled, error) and its counts."""
        if status not in FINISHED:
            raise ValueError(f"status must be one of {FINISHED}, not {status!r}")
        with self._write() as db:
            if not _finish_row(db, message_id, status, finish_reason, prompt_tokens, completion_tokens, tokens_per_s):
                raise ValueError(f"message {message_id} does not exist or is not streaming")
            if citations:
                db.execute(
                    "UPDATE messages SET citations_json = ? WHERE id = ?",
                    (json.dumps(citations, ensure_ascii=False), message_id),
                )
            self._streaming.discard(message_id)
            return self.get_message(message_id)

    def set_content(self, message_id: int, text: str) -> Message:
        """Replace a message's text in place (no new version; ``edit_message`` makes one)."""
        with self._write() as db:
            db.execute("UPDATE messages SET content = ?, updated_at = ? WHERE id = ?", (text, _now(), message_id))
            db.execute("DELETE FROM message_chunks WHERE message_id = ?", (message_id,))
            return self.get_message(message_id)

    def get_message(self, message_id: int) -> Message:
        found = self._messages(f"{SELECT_MESSAGE} WHERE m.id = ?", (message_id,))
        if not found:
            raise NotFoundError(f"No message with id {message_id}")
        return found[0]

    def thread(self, conversation_id: int) -> list[Message]:
        """The branch on screen: root first, head last."""
        return self._messages(
            "WITH RECURSIVE up(id, depth) AS ("
            " SELECT head_id, 0 FROM conversations WHERE id = ? AND head_id IS NOT NULL"
            " UNION ALL SELECT p.parent_id, up.depth + 1 FROM messages p JOIN up ON p.id = up.id"
            f" WHERE p.parent_id IS NOT NULL) {SELECT_MESSAGE} JOIN up ON m.id = up.id ORDER BY up.depth DESC",
            (conversation_id,),
        )

    def versions(self, message_id: int) -> list[Message]:
        """A message and its siblings with the same role (its other versions), oldest first."""
        return self._messages(
            f"{SELECT_MESSAGE} JOIN messages x ON x.id = ? AND m.conversation_id = x.conversation_id"
            " AND m.parent_id IS x.parent_id AND m.role = x.role ORDER BY m.id",
            (message_id,),
        )

    def select_version(self, message_id: int) -> list[Message]:
        """Show the branch through this message: the head becomes its newest leaf. Returns the new thread."""
        with self._write() as db:
            conversation_id = self.get_message(message_id).conversation_id
            head = message_id
            while child := db.execute("SELECT max(id) FROM messages WHERE parent_id = ?", (head,)).fetchone()[0]:
                head = child
            db.execute("UPDATE conversations SET head_id = ? WHERE id = ?", (head, conversation_id))
            return self.thread(conversation_id)

    def edit_message(self, message_id: int, new_content: str) -> Message:
        """A new version of the message (a sibling with the new text) that becomes the head; the old branch stays."""
        old = self.get_message(message_id)
        return self._insert(
            old.conversation_id, old.role, new_content, old.parent_id, "done", old.model, old.adapter, old.settings
        )

    # -- agent steps ----------------------------------------------------------------------------

    def add_tool_step(
        self,
        message_id: int,
        position: int,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        status: str,
        *,
        effect: str = "",
        approval: str = "",
        result: str = "",
        duration_s: float = 0.0,
    ) -> SavedToolStep:
        """Save one tool call of the agent writing ``message_id`` (committed at once, so a crash keeps it)."""
        with self._write() as db:
            self.get_message(message_id)
            cur = db.execute(
                "INSERT INTO tool_steps (message_id, position, call_id, tool, arguments_json, effect, status, approval,"
                " result, duration_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    position,
                    call_id,
                    tool,
                    json.dumps(arguments, ensure_ascii=False),
                    effect,
                    status,
                    approval,
                    result,
                    duration_s,
                    _now(),
                ),
            )
            return self._tool_steps("WHERE id = ?", (cur.lastrowid,))[0]

    def tool_steps(self, message_id: int) -> list[SavedToolStep]:
        """The tool calls made while writing ``message_id``, in order."""
        return self._tool_steps("WHERE message_id = ? ORDER BY position, id", (message_id,))

    def _tool_steps(self, where: str, args: tuple) -> list[SavedToolStep]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT message_id, position, call_id, tool, arguments_json, effect, status, approval, result,"
                f" duration_s, created_at FROM tool_steps {where}",
                args,
            ).fetchall()
        return [
            SavedToolStep(r[0], r[1], r[2], r[3], dict_from_json(r[4]), r[5], r[6], r[7], r[8], r[9], parse_time(r[10]))
            for r in rows
        ]

    # -- search ---------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages and titles holding all words of ``query`` (the last as a prefix), newest first.

        The query is plain words: quotes, AND/OR/NOT and brackets mean nothing and never raise.
        """
        match = fts_query(query)
        if match is None:
            return []
        with self._lock:
            rows = self._conn.execute(_SEARCH, {"q": match, "limit": limit}).fetchall()
        return [SearchHit(r[0], r[1], r[2], r[3], r[4], parse_time(r[5])) for r in rows]

    # -- internals ------------------------------------------------------------------------------

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    def _messages(self, sql: str, args: tuple) -> list[Message]:
        """Rows of ``SELECT_MESSAGE``; a streaming message's text includes its chunks (read in one snapshot)."""
        with self._lock:
            own = not self._conn.in_transaction
            if own:
                self._conn.execute("BEGIN")
            try:
                found = [message_from_row(r) for r in self._conn.execute(sql, args).fetchall()]
                for msg in found:
                    if msg.status == "streaming":
                        msg.content += _chunk_text(self._conn, msg.id)
            finally:
                if own:
                    self._conn.execute("COMMIT")
        return found

    def _insert(
        self,
        conversation_id: int,
        role: str,
        content: str,
        parent_id: int | None,
        status: str,
        model: str | None,
        adapter: str | None,
        settings: dict[str, Any] | None,
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        tokens_per_s: float | None = None,
    ) -> Message:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        now = _now()
        with self._write() as db:
            conv = self.get_conversation(conversation_id)
            if parent_id is HEAD:
                parent_id = conv.head_id
            elif parent_id is not None:
                row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (parent_id,)).fetchone()
                if row is None or row[0] != conversation_id:
                    raise ValueError(f"message {parent_id} is not in conversation {conversation_id}")
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, model, adapter, settings_json,"
                " status, finish_reason, prompt_tokens, completion_tokens, tokens_per_s, writer_pid, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    parent_id,
                    role,
                    content,
                    model,
                    adapter,
                    dict_to_json(settings),
                    status,
                    finish_reason,
                    prompt_tokens,
                    completion_tokens,
                    tokens_per_s,
                    os.getpid() if status == "streaming" else None,
                    now,
                    now,
                ),
            )
            message_id = _new_id(cur)
            db.execute(
                "UPDATE conversations SET head_id = ?, updated_at = ? WHERE id = ?",
                (message_id, now, conversation_id),
            )
            return self.get_message(message_id)


def fts_query(text: str) -> str | None:
    """An FTS5 query matching all words of ``text`` (each quoted, the last as a prefix); None if it has none."""
    words = [w for w in text.split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) + "*"


def _chunk_text(db: sqlite3.Connection, message_id: int) -> str:
    return "".join(
        r[0] for r in db.execute("SELECT text FROM message_chunks WHERE message_id = ? ORDER BY id", (message_id,))
    )


def _finish_row(
    db: sqlite3.Connection,
    message_id: int,
    status: str,
    finish_reason: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    tokens_per_s: float | None = None,
) -> bool:
    """Fold a streaming message's chunks into its content and give it a final status (inside a write)."""
    cur = db.execute(
        "UPDATE messages SET content = content || ?, status = ?, finish_reason = ?, prompt_tokens = ?,"
        " completion_tokens = ?, tokens_per_s = ?, writer_pid = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'streaming'",
        (
            _chunk_text(db, message_id),
            status,
            finish_reason,
            prompt_tokens,
            completion_tokens,
            tokens_per_s,
            _now(),
            message_id,
        ),
    )
    db.execute("DELETE FROM message_chunks WHERE message_id = ?", (message_id,))
    return cur.rowcount == 1


def _interrupt_orphans(conn: sqlite3.Connection) -> None:
    """Streaming rows whose writer process is gone become 'interrupted', their text kept."""
    rows = conn.execute("SELECT id, writer_pid FROM messages WHERE status = 'streaming'").fetchall()
    dead = [mid for mid, pid in rows if pid != os.getpid() and not _pid_alive(pid)]
    for mid in dead:
        _finish_row(conn, mid, "interrupted")
    if dead:
        log.info("marked %d message(s) whose writer died as interrupted", len(dead))


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid < 0 or os.name == "nt":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return False
    return True


def _new_id(cur: sqlite3.Cursor) -> int:
    """The row id the INSERT just run on ``cur`` gave (typed optional: it is None only before any INSERT)."""
    row_id = cur.lastrowid
    assert row_id is not None, "called after an INSERT"
    return row_id


def _clean_title(title: str) -> str:
    return " ".join(title.split()) or "New chat"
