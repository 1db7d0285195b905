"""OCR off macOS: RapidOCR (PP-OCR detection and recognition models on ONNX Runtime, shipped in its wheel).

The models load on the first page (about a second) and stay loaded. Nothing is fetched: the wheel's own
model files are used, and the engine refuses to start if they are missing rather than download them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from macapp.core.docs.types import OcrLine

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.5  # RapidOCR's own default: lines read less surely than this are dropped


class RapidEngine:
    """``OcrEngine`` over ``rapidocr.RapidOCR``."""

    name = "rapidocr"

    def __init__(self) -> None:
        import rapidocr  # ImportError here means "not installed": ocr.default_engine says so

        self._module = rapidocr
        self._engine = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._engine is None:
                self._engine = self._module.RapidOCR(
                    params={
                        "Global.log_level": "error",  # its per-model INFO lines would land in the CLI's output
                        # the 180° line classifier: scans are upright; saves a third of the time
                        "Global.use_cls": False,
                        "Global.text_score": MIN_CONFIDENCE,
                    }
                )
            return self._engine

    def recognize(self, image: np.ndarray) -> list[OcrLine]:
        output = self._load()(np.ascontiguousarray(image[:, :, ::-1]))  # it reads arrays as BGR, like OpenCV
        if output.boxes is None or output.txts is None:
            return []
        return lines_from_output(output.boxes, output.txts, output.scores)


def lines_from_output(boxes: Sequence, texts: Sequence[str], scores: Sequence[float]) -> list[OcrLine]:
    """RapidOCR's quadrilaterals (four (x, y) corners per line) as axis-aligned ``OcrLine`` boxes, blanks dropped."""
    lines = []
    for quad, text, score in zip(boxes, texts, scores):
        corners = np.asarray(quad, dtype=float).reshape(-1, 2)
        if not str(text).strip():
            continue
        lines.append(
            OcrLine(
                str(text).strip(),
                (
                    float(corners[:, 0].min()),
                    float(corners[:, 1].min()),
                    float(corners[:, 0].max()),
                    float(corners[:, 1].max()),
                ),
                float(score),
            )
        )
    return lines
