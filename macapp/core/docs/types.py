"""Typed data passed between the document stages (extract → chunk → embed → index → retrieve)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from macapp.core.progress import CancelToken

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".heic", ".heif")  # image files read as one-page documents
DOCUMENT_SUFFIXES = (".pdf", *IMAGE_SUFFIXES)  # every kind of file a collection takes
PAGE_SOURCES = ("text", "ocr", "none")  # how a page's text was obtained: its text layer, OCR, or not at all


@dataclass(frozen=True)
class OcrLine:
    """One line an OCR engine read: its text, its ``box`` (left, top, right, bottom) from the top-left of the
    image or page it read (pixels from the engine; PDF points once stored with a page) and ``confidence`` 0..1."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


@dataclass(frozen=True)
class PageText:
    """The text of one page (of a PDF, or an image file's one page); ``page`` is 1-based. ``source`` says how the
    text was obtained (``PAGE_SOURCES``); an OCR'd page keeps its ``lines`` (boxes in points from the top-left),
    which the viewer highlights since such a page has no text layer."""

    page: int
    text: str
    source: str = "text"
    lines: tuple[OcrLine, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A passage sized for the embedder, remembering where it came from.

    ``file`` is the display name (the PDF's file name), ``file_hash`` the sha256 of its bytes,
    ``index`` the chunk's position within the file (0-based), pages are 1-based and inclusive.
    ``page_breaks[i]`` is the offset in ``text`` where page ``page_start + i + 1`` begins (one per page after
    the first, so a hit can name the exact page of the text it matched; see ``pages.page_at``).
    """

    file: str
    file_hash: str
    index: int
    page_start: int
    page_end: int
    text: str
    heading: str | None = None
    page_breaks: tuple[int, ...] = ()


class EmbeddingModel(Protocol):
    """Turns text into unit-length vectors. ``name`` identifies the model (vectors of different
    names never mix in one collection); ``max_tokens`` is the longest input it reads."""

    name: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str], cancel: CancelToken | None = None) -> np.ndarray:
        """Shape (len(texts), dim), float32, each row L2-normalised; ``Cancelled`` soon after ``cancel`` is set."""
        ...

    def count_tokens(self, text: str) -> int: ...
