"""The chat history's SQLite schema (append-only migrations), opened through ``core.database``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from macapp.core import database
from macapp.core.database import now_text

__all__ = ["MIGRATIONS", "now_text", "open_database"]

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
    # 3: the tool calls an agent made while writing an answer, in order, with approval and result
    """
    CREATE TABLE tool_steps (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL, call_id TEXT NOT NULL, tool TEXT NOT NULL,
        arguments_json TEXT NOT NULL DEFAULT '{}', effect TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
        approval TEXT NOT NULL DEFAULT '', result TEXT NOT NULL DEFAULT '', duration_s REAL NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE INDEX tool_steps_message ON tool_steps(message_id, position);
    """,
]


def open_database(path: Path, on_open: Callable[[sqlite3.Connection], None] | None = None) -> sqlite3.Connection:
    """The chat history at ``path``, migrated; ``on_open(conn)`` runs in the opening transaction."""
    return database.open_database(path, MIGRATIONS, "the chat history", on_open)
