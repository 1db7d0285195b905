"""Short model ids a person can read and type, LM Studio / Ollama style: ``smollm2-135m-instruct-q4_1``.

A library model's short id is its file name without ``.gguf`` (and without a split model's
``-00001-of-00003``), lowercased, with dots between words turned into dashes (a version's ``3.2`` stays).
When two files share that name, the first by a fixed order (Hugging Face cache, LM Studio, folders,
added files; then by long id) keeps it and each other one is qualified by its owner (the Hugging Face
org, the LM Studio publisher, or the folder holding it: ``bartowski/llama-3.2-1b-instruct-q4_k_m``),
plus a short hash of its long id if that still clashes. Ids depend only on the set of files, never on
the order a scan finds them, so they stay the same across restarts.

The long ids (``org/repo/file.gguf``, ``lmstudio:publisher/repo/file.gguf``, ``local:<path>``) are what
older versions stored; they still resolve.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)
_DOT_IN_WORDS = re.compile(r"\.(?!(?<=\d\.)\d)")  # a dot, unless it sits between two digits (3.2)
_NOT_ID = re.compile(r"[^a-z0-9._]+")
SOURCE_ORDER = ("hf-cache", "lm-studio", "folder", "file")  # who keeps a plain id on a clash
HASH_CHARS = 6  # enough to tell apart the few files that clash twice


def split_name(name: str) -> tuple[str, int] | None:
    """(stem, part count) for a split GGUF's file name (``x-00001-of-00003.gguf``), else None."""
    m = _SPLIT.match(name)
    return (m.group("stem"), int(m.group("count"))) if m else None


def slug(text: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_1`` -> ``smollm2-135m-instruct-q4_1`` (``model`` if nothing is left)."""
    text = _DOT_IN_WORDS.sub("-", text.strip().lower())
    text = _NOT_ID.sub("-", text)
    return re.sub(r"-{2,}", "-", text).strip("-._") or "model"


def short_name(file_name: str) -> str:
    """The plain short id of a model file: its name without ``.gguf`` or a split part suffix, as a slug."""
    split = split_name(file_name)
    stem = split[0] if split else (file_name[:-5] if file_name.lower().endswith(".gguf") else file_name)
    return slug(stem)


def owner_of(long_id: str, source: str, path: Path) -> str:
    """Who a file belongs to, for telling apart files with the same name: org, publisher or folder."""
    if source == "hf-cache" and "/" in long_id:
        return slug(long_id.split("/", 1)[0])
    if source == "lm-studio":
        rel = long_id.split(":", 1)[-1]
        return slug(rel.split("/", 1)[0]) if "/" in rel else "lmstudio"
    return slug(path.parent.name) if path.parent.name else "local"


def _short_hash(long_id: str) -> str:
    return hashlib.sha256(long_id.encode("utf-8")).hexdigest()[:HASH_CHARS]


def _order(item: tuple[str, str, Path]) -> tuple[int, str]:
    long_id, source, _path = item
    rank = SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)
    return rank, long_id


def assign_short_ids(files: Iterable[tuple[str, str, Path]]) -> dict[str, str]:
    """Short id for each (long id, source, path), keyed by long id: unique, and independent of the order given."""
    groups: dict[str, list[tuple[str, str, Path]]] = defaultdict(list)
    for item in files:
        groups[short_name(item[2].name)].append(item)
    ids: dict[str, str] = {}
    for name, items in groups.items():
        first, *others = sorted(items, key=_order)
        ids[first[0]] = name
        for long_id, source, path in others:
            ids[long_id] = f"{owner_of(long_id, source, path)}/{name}"
    taken: dict[str, list[str]] = defaultdict(list)
    for long_id, short in ids.items():
        taken[short].append(long_id)
    for short, long_ids in taken.items():
        if len(long_ids) > 1:  # same name, same owner (two folders called "models", say): all qualified ids
            for long_id in long_ids:
                ids[long_id] = f"{short}-{_short_hash(long_id)}"
    return ids
