"""What a person reads for a collection and an embedding model; the index keeps its own ids.

A chat's PDFs live in a collection named ``chat-<conversation id>`` (``-2``, ``-3``… on a clash): on
screen it is what it holds, "2 PDFs in this chat". An embedding model is recorded as
``<name>@<first 12 hex of its file's sha256>`` so vectors of two files never mix: on screen it is its
name, "all-MiniLM-L6-v2", and the exact id goes in a tooltip.
"""

from __future__ import annotations

import re

CHAT_PREFIX = "chat-"
_CHAT_COLLECTION = re.compile(r"^chat-\d+(?:-\d+)?$", re.I)
_EMBEDDER_DIGEST = re.compile(r"@[0-9a-f]{12}$")


def chat_collection_base(conversation_id: int) -> str:
    """The collection name a conversation's dropped PDFs start from (made free of clashes by the caller)."""
    return f"{CHAT_PREFIX}{conversation_id}"


def is_chat_collection(name: str) -> bool:
    """``name`` looks like a collection made by dropping PDFs on a chat."""
    return bool(_CHAT_COLLECTION.match(name))


def embedder_name(embedder_id: str) -> str:
    """``all-MiniLM-L6-v2@4e2a82406701`` -> ``all-MiniLM-L6-v2`` (an id without a digest is returned as is)."""
    return _EMBEDDER_DIGEST.sub("", embedder_id) or embedder_id


def embedder_names(a: str, b: str) -> tuple[str, str]:
    """Names for two embedder ids shown side by side: the exact ids when their names alone read the same."""
    short_a, short_b = embedder_name(a), embedder_name(b)
    return (a, b) if short_a == short_b and a != b else (short_a, short_b)


def pdf_count(files: int) -> str:
    """``1 PDF``, ``2 PDFs``, ``No PDFs``."""
    if files == 0:
        return "No PDFs"
    return f"{files:,} PDF{'' if files == 1 else 's'}"


def chat_documents(files: int) -> str:
    """How a chat names its own collection: ``2 PDFs in this chat``."""
    return f"{pdf_count(files)} in this chat"


def collection_title(name: str, files: int, chat_title: str | None = None) -> str:
    """How a list of collections names one: a chat's by its PDFs and its chat ("2 PDFs in chat “Trip”"),
    one whose chat is gone by its PDFs ("2 PDFs from a chat"), any other by the name a person gave it."""
    if chat_title is not None:
        return f"{pdf_count(files)} in chat “{chat_title}”"
    if is_chat_collection(name):
        return f"{pdf_count(files)} from a chat"
    return name
