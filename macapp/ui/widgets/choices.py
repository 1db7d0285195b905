"""Choices several screens offer, with one wording each."""

from __future__ import annotations

CTX_STEP = 256  # the context slider moves in steps of this many tokens
KV_TYPES = ("f16", "q8_0")
KV_TYPE_LABELS = {"f16": "f16 (full precision)", "q8_0": "q8_0 (half the memory)"}
