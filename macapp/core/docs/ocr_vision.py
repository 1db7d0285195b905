"""OCR on macOS: Apple's Vision framework (``VNRecognizeTextRequest``), on the device, through pyobjc.

The logic is functions of supplied values — how the request is set up, how observations become lines, how
Vision's normalised bottom-left boxes become pixels from the top-left — so it is tested on Linux with
stand-in objects; only ``VisionEngine.recognize`` imports pyobjc (installed on macOS only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from macapp.core.docs.types import OcrLine

log = logging.getLogger(__name__)

RECOGNITION_LEVEL_ACCURATE = 0  # VNRequestTextRecognitionLevelAccurate (1 is Fast: worse on small print)
MIN_CONFIDENCE = 0.3  # Vision's confidence is coarse (0.3, 0.5, 1.0 are common): only its least sure lines go


def configure_request(request: Any) -> Any:
    """Set up a ``VNRecognizeTextRequest``: accurate recognition with language correction, and the page's
    language detected where this macOS can (13+); the system's default languages otherwise."""
    request.setRecognitionLevel_(RECOGNITION_LEVEL_ACCURATE)
    request.setUsesLanguageCorrection_(True)
    if hasattr(request, "setAutomaticallyDetectsLanguage_"):
        request.setAutomaticallyDetectsLanguage_(True)
    return request


def rect_parts(rect: Any) -> tuple[float, float, float, float]:
    """(x, y, width, height) of a CGRect as pyobjc gives it (``.origin``/``.size``, or nested pairs)."""
    if hasattr(rect, "origin"):
        return rect.origin.x, rect.origin.y, rect.size.width, rect.size.height
    (x, y), (w, h) = rect
    return x, y, w, h


def to_top_left(rect: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """Vision's box (normalised 0..1, origin at the bottom-left) as (left, top, right, bottom) pixels of a
    ``width`` × ``height`` image with the origin at the top-left."""
    x, y, w, h = rect_parts(rect)
    return x * width, (1.0 - y - h) * height, (x + w) * width, (1.0 - y) * height


def lines_from_observations(observations: Iterable[Any], width: int, height: int) -> list[OcrLine]:
    """Each ``VNRecognizedTextObservation``'s best candidate as an ``OcrLine``, in Vision's (reading) order."""
    lines = []
    for observation in observations or ():
        candidates = observation.topCandidates_(1)
        if not candidates:
            continue
        best = candidates[0]
        text = str(best.string()).strip()
        confidence = float(best.confidence())
        if text and confidence >= MIN_CONFIDENCE:
            lines.append(OcrLine(text, to_top_left(observation.boundingBox(), width, height), confidence))
    return lines


class VisionEngine:
    """``OcrEngine`` over Vision. Each call makes its own request and handler (Vision's objects are not shared
    across threads) inside an autorelease pool, so nothing piles up over a long document."""

    name = "vision"

    def __init__(self) -> None:
        import objc  # noqa: F401 - ImportError here means pyobjc-framework-Vision is missing
        import Vision  # noqa: F401

    def recognize(self, image: np.ndarray) -> list[OcrLine]:
        import objc
        import Vision
        from Foundation import NSData

        from macapp.core.docs.render import encode_png

        height, width = image.shape[:2]
        png = encode_png(image)
        with objc.autorelease_pool():
            data = NSData.dataWithBytes_length_(png, len(png))
            request = configure_request(Vision.VNRecognizeTextRequest.alloc().init())
            handler = Vision.VNImageRequestHandler.alloc().initWithData_options_(data, None)
            ok, error = handler.performRequests_error_([request], None)
            if not ok:
                raise RuntimeError(f"Vision could not read the image: {error}")
            return lines_from_observations(request.results(), width, height)
