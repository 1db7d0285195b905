"""Reading text from page images: one interface, the engine chosen by platform in one place.

On macOS the system's own OCR (Apple's Vision framework, ``ocr_vision.py``); elsewhere RapidOCR on ONNX
Runtime (``ocr_rapid.py``), whose models ship inside its wheel, so nothing is downloaded at run time.
``recognize(image)`` reads one RGB image into ``OcrLine``s (boxes in the image's pixels, top-left origin).

A page can take seconds, so ``recognize_page`` runs it on a thread it can abandon: a cancel is noticed
within ``POLL_S`` and a page that takes longer than ``PAGE_TIMEOUT_S`` is given up with the reason. One page
is read at a time (``_ENGINE_LOCK``): the engines use every core already.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from typing import Protocol

import numpy as np

from macapp.core.docs.types import OcrLine
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken

log = logging.getLogger(__name__)

__all__ = ["OcrLine", "OcrEngine", "OcrError", "default_engine", "recognize", "recognize_page", "fit_pixels"]

POLL_S = 0.1  # how often a waiting page looks at the cancel token (a cancel lands well within a second)
PAGE_TIMEOUT_S = 180.0  # a page still unread after this is given up (a full A4 page takes 2-30 s on 2 cores)
OCR_MAX_PIXELS = 6_000_000  # an image is scaled down to at most this before OCR (2000 × 3000; ~18 MB as RGB)
_ENGINE_LOCK = threading.Lock()


class OcrError(UserError):
    """OCR could not read a page or is not available here; ``kind``: unavailable | timeout | failed."""

    def __init__(self, kind: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.kind = kind


class OcrEngine(Protocol):
    """Reads the lines of text in an image. ``name`` says which engine (shown in logs and the bench)."""

    name: str

    def recognize(self, image: np.ndarray) -> list[OcrLine]:
        """Lines of an (h, w, 3) RGB uint8 image, in reading order, boxes in its pixels from the top-left."""
        ...


@functools.lru_cache(maxsize=1)
def default_engine() -> OcrEngine:
    """This platform's engine (loaded once): Vision on macOS, RapidOCR elsewhere; ``OcrError`` if it can't load."""
    try:
        if sys.platform == "darwin":
            from macapp.core.docs.ocr_vision import VisionEngine

            return VisionEngine()
        from macapp.core.docs.ocr_rapid import RapidEngine

        return RapidEngine()
    except ImportError as e:
        raise OcrError(
            "unavailable",
            f"Orchard's OCR is not installed here ({e.name or e}).",
            "reinstall Orchard (`make setup`) to read scanned pages",
        ) from e


def recognize(image: np.ndarray, engine: OcrEngine | None = None) -> list[OcrLine]:
    """The lines of text in ``image`` (RGB uint8), read by ``engine`` (default: this platform's)."""
    return (engine or default_engine()).recognize(_rgb(image))


def recognize_page(
    image: np.ndarray,
    cancel: CancelToken | None = None,
    *,
    engine: OcrEngine | None = None,
    timeout_s: float = PAGE_TIMEOUT_S,
) -> list[OcrLine]:
    """``recognize`` on a thread that is abandoned on cancel (``Cancelled`` within ``POLL_S``) or after
    ``timeout_s`` (``OcrError`` "timeout"); the abandoned read finishes in the background and is dropped."""
    engine = engine or default_engine()
    image = _rgb(image)
    finished, abandoned = threading.Event(), threading.Event()
    lines: list[list[OcrLine]] = []  # what the thread read, or
    errors: list[BaseException] = []  # how it failed

    def run() -> None:
        try:
            with _ENGINE_LOCK:
                if not abandoned.is_set():
                    lines.append(engine.recognize(image))
        except BaseException as e:  # noqa: BLE001 - a thread's boundary: whatever it raised goes to the waiting one
            errors.append(e)
        finally:
            finished.set()

    threading.Thread(target=run, name="ocr-page", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        while not finished.wait(POLL_S):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if time.monotonic() > deadline:
                raise OcrError(
                    "timeout",
                    f"OCR gave up on a page after {timeout_s:.0f} s.",
                    "the page may be huge or very dense; split it or scan it at a lower resolution",
                )
    except BaseException:
        abandoned.set()
        raise
    if errors:
        error = errors[0]
        if isinstance(error, UserError):
            raise error
        raise OcrError("failed", f"OCR failed on a page ({engine.name}).") from error
    return list(lines[0] if lines else [])


def fit_pixels(width: int, height: int, max_pixels: int = OCR_MAX_PIXELS) -> float:
    """The scale (at most 1) that brings a ``width`` × ``height`` image within ``max_pixels``."""
    return min(1.0, (max_pixels / max(width * height, 1)) ** 0.5)


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"OCR reads uint8 images, not {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"OCR reads (h, w), (h, w, 3) or (h, w, 4) images, not {image.shape}")
