"""OCR's parts on supplied values: the Vision path's request set-up, results and coordinate flip (pyobjc is
never imported here), RapidOCR's boxes, page text from lines, and a page read that can be abandoned."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from macapp.core.docs import ocr, ocr_rapid, ocr_vision, scan
from macapp.core.docs.types import OcrLine
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken
from tests.fixtures.ocr import ScriptedOcr


class RecordingRequest:
    """Stands in for a VNRecognizeTextRequest: records each setter called on it."""

    def __init__(self, modern: bool = True):
        self.calls: dict[str, object] = {}
        if modern:
            self.setAutomaticallyDetectsLanguage_ = lambda on: self.calls.__setitem__("detect", on)

    def setRecognitionLevel_(self, level):  # noqa: N802 - Objective-C selector names
        self.calls["level"] = level

    def setUsesLanguageCorrection_(self, on):  # noqa: N802
        self.calls["correction"] = on


def observation(text: str, confidence: float, rect) -> SimpleNamespace:
    candidate = SimpleNamespace(string=lambda: text, confidence=lambda: confidence)
    return SimpleNamespace(topCandidates_=lambda n: [candidate][:n], boundingBox=lambda: rect)


def cg_rect(x, y, w, h) -> SimpleNamespace:
    return SimpleNamespace(origin=SimpleNamespace(x=x, y=y), size=SimpleNamespace(width=w, height=h))


def test_the_vision_request_is_accurate_with_language_correction_and_detection_where_available():
    modern = ocr_vision.configure_request(RecordingRequest())
    assert modern.calls == {"level": 0, "correction": True, "detect": True}
    older = ocr_vision.configure_request(RecordingRequest(modern=False))  # macOS 12: no language detection
    assert older.calls == {"level": 0, "correction": True}


def test_vision_boxes_flip_from_normalised_bottom_left_to_pixels_from_the_top_left():
    # A line along the top of a 1000 x 2000 image: Vision puts its origin near y = 1 (the top).
    assert ocr_vision.to_top_left(cg_rect(0.1, 0.9, 0.5, 0.05), 1000, 2000) == pytest.approx((100, 100, 600, 200))
    assert ocr_vision.to_top_left(((0.0, 0.0), (1.0, 0.25)), 400, 800) == pytest.approx((0, 600, 400, 800))


def test_vision_observations_become_lines_in_order_and_unsure_or_empty_ones_are_dropped():
    found = [
        observation("Invoice 4711", 1.0, cg_rect(0.1, 0.8, 0.4, 0.05)),
        observation("   ", 1.0, cg_rect(0.1, 0.7, 0.4, 0.05)),
        observation("smudge", 0.1, cg_rect(0.1, 0.6, 0.1, 0.05)),
        SimpleNamespace(topCandidates_=lambda n: [], boundingBox=lambda: None),
        observation("Total 320 crates", 0.5, ((0.1, 0.5), (0.5, 0.05))),
    ]
    lines = ocr_vision.lines_from_observations(found, 200, 100)
    assert [line.text for line in lines] == ["Invoice 4711", "Total 320 crates"]
    assert lines[0].box == pytest.approx((20, 15, 100, 20)) and lines[1].confidence == 0.5
    assert ocr_vision.lines_from_observations(None, 10, 10) == []


def test_vision_is_not_imported_off_a_mac():
    if sys.platform != "darwin":
        assert "Vision" not in sys.modules and "objc" not in sys.modules


def test_rapidocr_quadrilaterals_become_axis_aligned_boxes():
    quads = [[[10, 20], [110, 22], [110, 42], [10, 40]], [[0, 0], [5, 0], [5, 5], [0, 5]]]
    lines = ocr_rapid.lines_from_output(np.array(quads, dtype=float), ["A line", " "], [0.98, 0.9])
    assert lines == [OcrLine("A line", (10.0, 20.0, 110.0, 42.0), 0.98)]


def test_page_text_from_lines_keeps_lines_and_marks_paragraphs_and_columns():
    lines = [
        OcrLine("First line of a para-", (50, 100, 500, 120), 1.0),
        OcrLine("graph goes on here.", (50, 124, 480, 144), 1.0),
        OcrLine("A new paragraph after a gap.", (50, 180, 480, 200), 1.0),
        OcrLine("The next column starts higher.", (600, 100, 900, 120), 1.0),
    ]
    assert scan.lines_text(lines) == (
        "First line of a paragraph goes on here.\n\nA new paragraph after a gap.\n\nThe next column starts higher."
    )


def test_a_page_needs_ocr_when_its_text_layer_is_only_a_stray_number_or_stamp():
    assert scan.needs_ocr("") and scan.needs_ocr("12") and scan.needs_ocr("Scanned by CamScanner 3")
    assert not scan.needs_ocr("A real page says something in a sentence or two of ordinary words.")


def test_a_blank_render_is_not_worth_reading():
    page = np.full((200, 100, 3), 255, np.uint8)
    assert scan.is_blank(page)
    page[50:60, 10:90] = 0
    assert not scan.is_blank(page)


def test_cancel_abandons_a_slow_page_within_a_second():
    engine = ScriptedOcr(delay_s=5.0)
    token = CancelToken()
    started = time.monotonic()
    import threading

    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(Cancelled):
        ocr.recognize_page(np.zeros((20, 20, 3), np.uint8), token, engine=engine)
    assert time.monotonic() - started < 1.3  # cancelled at 0.3 s, noticed within POLL_S
    assert not engine.finished.is_set()  # the page was still being read: it was abandoned, not waited for


def test_a_page_over_its_time_bound_is_given_up_with_the_reason():
    with pytest.raises(ocr.OcrError) as info:
        ocr.recognize_page(np.zeros((20, 20, 3), np.uint8), engine=ScriptedOcr(delay_s=3.0), timeout_s=0.3)
    assert info.value.kind == "timeout" and "gave up" in info.value.message and info.value.hint


def test_an_engine_failure_is_a_plain_error_with_the_cause_kept():
    class Broken:
        name = "broken"

        def recognize(self, image):
            raise RuntimeError("onnx session exploded")

    with pytest.raises(ocr.OcrError) as info:
        ocr.recognize_page(np.zeros((20, 20), np.uint8), engine=Broken())
    assert info.value.kind == "failed" and "exploded" not in info.value.message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_images_are_given_to_the_engine_as_rgb():
    engine = ScriptedOcr()
    for image in (np.zeros((4, 6), np.uint8), np.zeros((4, 6, 4), np.uint8), np.zeros((4, 6, 3), np.uint8)):
        ocr.recognize(image, engine)
    assert engine.images == [(4, 6, 3)] * 3
    with pytest.raises(ValueError):
        ocr.recognize(np.zeros((4, 6), np.float32), engine)


def test_fit_pixels_scales_only_down():
    assert ocr.fit_pixels(1000, 1000) == 1.0
    assert ocr.fit_pixels(20_000, 20_000, 4_000_000) == pytest.approx(0.1)
