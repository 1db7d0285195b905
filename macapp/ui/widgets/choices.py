"""Choices several screens offer, with one wording each."""

from __future__ import annotations

from macapp.core.models.estimate import KV_TYPES

__all__ = ["CTX_STEP", "KV_TYPES", "KV_TYPE_LABELS"]

CTX_STEP = 256  # the context slider moves in steps of this many tokens
KV_TYPE_LABELS = {"f16": "f16 (full precision)", "q8_0": "q8_0 (half the memory)"}
