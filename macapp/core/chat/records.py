"""The chat history's records: conversations, messages, saved tool steps and search hits, and how a row of the
store's SQLite tables becomes one (the SELECTs and the row readers sit together so their columns stay in step).
``ChatStore`` returns these; callers import them from ``chat.store`` as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Conversation:
    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None
    adapter: str | None
    system_prompt: str
    settings: dict[str, Any]
    head_id: int | None
    collection: str | None = None  # the document collection attached to this conversation


@dataclass
class Message:
    """One message; ``version`` of ``version_count`` counts its siblings (same parent and role)."""

    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    model: str | None
    adapter: str | None
    settings: dict[str, Any]
    status: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_per_s: float | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    version_count: int = 1
    citations: list[dict[str, Any]] = field(default_factory=list)  # sources an answer cites (file, page, ...)


@dataclass(frozen=True)
class SavedToolStep:
    """A tool call an agent made while writing a message: what it called, how it was approved, what came back."""

    message_id: int
    position: int  # 1-based order within the message
    call_id: str
    tool: str
    arguments: dict[str, Any]
    effect: str
    status: str  # ok | error | invalid | refused | denied | timeout | cancelled
    approval: str
    result: str
    duration_s: float
    created_at: datetime


@dataclass
class SearchHit:
    """A search match: a message (``message_id`` set) or a conversation title (``message_id`` None)."""

    conversation_id: int
    conversation_title: str
    message_id: int | None
    role: str | None
    snippet: str  # matched words wrapped in [ ]
    created_at: datetime


SELECT_CONVERSATION = (
    "SELECT id, title, created_at, updated_at, model, adapter, system_prompt, settings_json, head_id, collection"
    " FROM conversations"
)
SELECT_MESSAGE = """
SELECT m.id, m.conversation_id, m.parent_id, m.role, m.content, m.model, m.adapter, m.settings_json, m.status,
       m.finish_reason, m.prompt_tokens, m.completion_tokens, m.tokens_per_s, m.created_at, m.updated_at,
       (SELECT count(*) FROM messages s WHERE s.conversation_id = m.conversation_id AND s.parent_id IS m.parent_id
                                          AND s.role = m.role AND s.id <= m.id),
       (SELECT count(*) FROM messages s WHERE s.conversation_id = m.conversation_id AND s.parent_id IS m.parent_id
                                          AND s.role = m.role),
       m.citations_json
FROM messages m"""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dict_to_json(settings: dict[str, Any] | None) -> str:
    """A dict as a column stores it (settings, tool arguments): sorted keys, any script kept as is."""
    return json.dumps(settings or {}, ensure_ascii=False, sort_keys=True)


def dict_from_json(text: str | None) -> dict[str, Any]:
    """A stored dict back; {} for an empty or damaged column, or one that holds no JSON object."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def conversation_from_row(r: tuple) -> Conversation:
    return Conversation(
        r[0], r[1], parse_time(r[2]), parse_time(r[3]), r[4], r[5], r[6], dict_from_json(r[7]), r[8], r[9]
    )


def message_from_row(r: tuple) -> Message:
    return Message(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        dict_from_json(r[7]),
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        parse_time(r[13]),
        parse_time(r[14]),
        r[15],
        r[16],
        _load_list(r[17]),
    )


def _load_list(text: str | None) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []
