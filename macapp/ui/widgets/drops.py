"""Dropped files and what a document collection takes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

from macapp.core.docs.types import DOCUMENT_SUFFIXES


def dropped_files(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
    """The local files a drag carries (nothing for text, web links...)."""
    mime = event.mimeData()
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]


def is_document(path: str) -> bool:
    """A file a collection takes: a PDF or an image (read by OCR)."""
    return Path(path).suffix.lower() in DOCUMENT_SUFFIXES
