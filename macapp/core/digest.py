"""Hashing files: the one way to read a file into a sha256 (downloads, documents, training data, the embedder)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from macapp.core.progress import CancelToken

BLOCK = 1 << 20  # bytes read at a time: hashlib releases the GIL on blocks this size


def hash_file(path: str | Path, digest=None, cancel: CancelToken | None = None, block: int = BLOCK):
    """Feed the file's bytes into ``digest`` (a new sha256 when None) and return it, so a caller can go on
    feeding it (a resumed download). ``cancel`` is checked between blocks."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            if cancel is not None:
                cancel.raise_if_cancelled()
            digest.update(chunk)
    return digest


def file_sha256(path: str | Path, cancel: CancelToken | None = None) -> str:
    """Hex sha256 of the file's bytes."""
    return hash_file(path, cancel=cancel).hexdigest()
