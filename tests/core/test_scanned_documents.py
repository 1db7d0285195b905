"""Scanned PDFs and images read with this platform's real OCR engine (RapidOCR here, Vision on a Mac): text
rendered to images from known strings, character accuracy measured, mixed documents keep every page, the
index remembers which pages were OCR'd and where their lines are, and bad images get clear errors."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from macapp.core.docs import images, ingest, retrieve, scan
from macapp.core.docs.index import DocumentIndex
from macapp.core.docs.ocr import default_engine
from macapp.core.docs.pdf import PdfError
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken, drain
from tests.core.test_docs_index import HashEmbedder
from tests.fixtures import pdfs
from tests.fixtures.ocr import ScriptedOcr
from tests.fixtures.ocr import char_accuracy as accuracy

MIN_ACCURACY = 0.97  # 1 - edit distance / length, per page (measured: 1.00 on these pages with RapidOCR)

SCANNED_1 = (
    "Orchard keeps the apple harvest in cold rooms at two degrees.\n\n"
    "The pickers start at dawn in the north valley and the grading line runs until six in the evening. "
    "Invoice 4711 lists 320 crates of Braeburn and 85 crates of Cox."
)
TYPED_2 = "This page has an ordinary text layer: the frost report for March, kept exactly as written."
SCANNED_3 = (
    "A barn owl nests in the cider press shed every winter.\n\n"
    "Drip irrigation sensors along row 14 report soil moisture every hour to the cooperative."
)
PAGES = [SCANNED_1, TYPED_2, SCANNED_3, ""]  # the last page is blank


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The mixed PDF (scanned, typed, scanned with only its page number as text, blank) read once for real."""
    path = pdfs.make_scanned_pdf(tmp_path_factory.mktemp("scans") / "mixed.pdf", PAGES, text_pages={2}, numbered=True)
    started = time.perf_counter()
    steps, pages = drain(scan.read_document(path, ocr=default_engine()))
    return path, steps, pages, time.perf_counter() - started


def test_scanned_pages_are_read_accurately(mixed, record_property):
    _, _, pages, seconds = mixed
    scores = {n: accuracy(pages[n - 1].text, PAGES[n - 1]) for n in (1, 3)}
    record_property("ocr_character_accuracy", scores)
    print(f"\nOCR character accuracy {scores} ({default_engine().name}, {seconds:.1f} s for the document)")
    assert all(score >= MIN_ACCURACY for score in scores.values()), (scores, [p.text for p in pages])
    assert "\n\n" in pages[0].text  # the paragraph gap survives


def test_a_mixed_pdf_keeps_every_page_and_says_how_each_was_read(mixed):
    _, steps, pages, _ = mixed
    assert [p.page for p in pages] == [1, 2, 3, 4]
    assert [p.source for p in pages] == ["ocr", "text", "ocr", "none"]
    assert pages[1].text == TYPED_2 and not pages[1].lines  # the text layer is kept, not OCR'd
    assert "owl" in pages[2].text and pages[2].text.strip() != "3"  # a page number alone is no text layer
    assert pages[3].text == ""
    ocr_steps = [s for s in steps if s.stage == "ocr"]
    assert [s.page for s in ocr_steps[1:]] == [1, 3]  # per page needing it (the blank one draws no image)
    assert ocr_steps[-1].done == ocr_steps[-1].total == 2 and ocr_steps[-1].pages == 4
    assert ocr_steps[1].eta_seconds is not None and ocr_steps[1].eta_seconds > 0


def test_ocr_lines_are_in_points_where_the_text_was_drawn(mixed):
    _, _, pages, _ = mixed
    first = pages[0].lines[0]
    assert first.text.startswith("Orchard keeps")
    left, top, right, bottom = first.box
    assert 50 <= left <= 62 and 50 <= top <= 64  # text_image draws from the 56 pt margin
    assert 10 <= bottom - top <= 22 and right < 595


def test_a_scanned_pdf_is_indexed_with_its_ocr_pages_counted_and_cited_at_the_exact_page(mixed, tmp_path):
    path, _, pages, _ = mixed
    with DocumentIndex(tmp_path / "index") as index:
        # The real run's lines replayed (OCR quality is the tests above): the index's part is under test here.
        _, (outcome,) = drain(ingest.add_files("Scans", [path], HashEmbedder(), index=index, ocr=PointsOcr(pages)))
        assert outcome.status == "added" and outcome.pages == 4 and outcome.ocr_pages == 2
        (info,) = ingest.list_collections(index=index)
        assert info.ocr_pages == 2 and info.files[0].ocr_pages == 2 and info.to_json()["ocr_pages"] == 2
        (hit, *_) = retrieve.query("Scans", "barn owl cider press", k=1, mode="keyword", index=index)
        assert hit.page == 3 and "owl" in hit.quote
        lines = index.chunks.page_lines(str(path.resolve()), 3)
        assert [line.text for line in lines] == [line.text for line in pages[2].lines]
        assert np.allclose([line.box for line in lines], [line.box for line in pages[2].lines], atol=0.5)
        assert index.chunks.page_lines(str(path.resolve()), 2) is None
        rects = scan.page_highlights(path, 3, hit.quote, lines)
        assert rects and all(r.left >= 50 and r.right < 595 and r.top < 200 for r in rects)
        assert scan.page_highlights(path, 2, "the frost report for March", None)  # the text layer, as before


class PointsOcr:
    """Replays the real run's lines (stored in points) as pixels of whatever image it is given."""

    name = "replay"

    def __init__(self, pages):
        self.pages = {p.page: p for p in pages}
        self.order = [p.page for p in pages if p.source == "ocr"]

    def recognize(self, image):
        page = self.pages[self.order.pop(0)]
        per_point = max(image.shape[:2]) / 842
        return [type(line)(line.text, tuple(v * per_point for v in line.box), line.confidence) for line in page.lines]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_an_image_is_one_page_read_by_ocr(tmp_path, suffix):
    picture = pdfs.text_image("Receipt from the farm shop: 12 jars of quince jelly.", 400, 120)
    path = tmp_path / f"receipt{suffix}"
    picture.save(path, quality=90) if suffix == ".jpg" else picture.save(path)
    _, (page,) = drain(scan.read_document(path))
    assert page.page == 1 and page.source == "ocr"
    assert accuracy(page.text, "Receipt from the farm shop: 12 jars of quince jelly.") >= MIN_ACCURACY, page.text
    png = scan.render_document_page(path, 1, 2.0)
    assert png.startswith(b"\x89PNG") and scan.document_page_count(path) == 1


def test_cancel_while_a_page_is_being_read_lands_within_a_second_and_rolls_back(tmp_path):
    path = pdfs.make_scanned_pdf(tmp_path / "slow.pdf", [SCANNED_1, SCANNED_3])
    token = CancelToken()
    engine = ScriptedOcr(delay_s=10.0)
    with DocumentIndex(tmp_path / "index") as index:
        index.ensure_collection("Slow", HashEmbedder())  # exists already: the cancelled file leaves it empty
        stream = ingest.add_files("Slow", [path], HashEmbedder(), token, index=index, ocr=engine)
        for step in stream:
            if step.stage == "ocr":
                break
        threading.Timer(0.5, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            for _ in stream:
                pass
        assert time.monotonic() - started < 1.5  # 0.5 s until the cancel, then at most a poll
        assert ingest.list_collections(index=index)[0].files == ()


# ---------------------------------------------------------------- bad images


def huge_png(path: Path, width: int, height: int) -> Path:
    """A real PNG of ``width`` × ``height`` white pixels (1-bit, so a 20,000-pixel square is written in seconds)."""
    from PIL import Image

    Image.new("1", (width, height), 1).save(path)
    return path


def test_bad_images_get_clear_errors(tmp_path):
    good = tmp_path / "good.png"
    pdfs.text_image("Some words", 200, 60).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    cases = {
        "empty": (tmp_path / "empty.png", b"", "empty", "0 bytes"),
        "not an image": (
            tmp_path / "notes.jpg",
            b"Dear diary, this is text named .jpg\n" * 20,
            "corrupt",
            "not an image",
        ),
        "truncated": (cut, None, "corrupt", "damaged"),
        "heic here": (tmp_path / "photo.heic", b"\x00\x00\x00\x18ftypheic" + bytes(64), None, "HEIC"),
        "missing": (tmp_path / "gone.png", None, "unreadable", "can't be opened"),
    }
    for what, (path, data, kind, words) in cases.items():
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(PdfError) as info:
            drain(scan.read_document(path, ocr=ScriptedOcr()))
        assert words in info.value.message and path.name in info.value.message, (what, info.value.message)
        assert kind is None or info.value.kind == kind, (what, info.value.kind)
        assert not re.search(r"Error\b|Traceback|PIL|errno", info.value.message), what


def test_a_huge_image_is_refused_with_its_size_before_it_is_decoded(tmp_path):
    path = huge_png(tmp_path / "poster.png", 20_000, 20_000)
    started = time.perf_counter()
    with pytest.raises(images.ImageError) as info:
        drain(scan.read_document(path, ocr=ScriptedOcr()))
    assert info.value.kind == "too_large" and "20,000 × 20,000" in info.value.message and info.value.hint
    assert time.perf_counter() - started < 2


def test_a_big_image_is_scaled_down_for_ocr_within_the_memory_bound(tmp_path):
    from macapp.core.docs.ocr import OCR_MAX_PIXELS

    path = huge_png(tmp_path / "wide.png", 9_000, 3_000)  # 27 MP: read, but not at full size
    engine = ScriptedOcr()
    with pytest.raises(PdfError) as info:  # blank: nothing to read, and said so
        drain(scan.read_document(path, ocr=engine))
    assert info.value.kind == "no_text"
    pixels, scale = images.load_image(path, max_pixels=OCR_MAX_PIXELS)
    assert pixels.shape[0] * pixels.shape[1] <= OCR_MAX_PIXELS and scale == pytest.approx(pixels.shape[1] / 9000)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3


def test_a_scan_with_nothing_readable_says_so(tmp_path):
    path = pdfs.make_image_only_pdf(tmp_path / "bars.pdf", pages=1)
    with pytest.raises(PdfError) as info:
        drain(scan.read_document(path, ocr=ScriptedOcr()))
    assert info.value.kind == "no_text" and "not even OCR" in info.value.message


def test_a_short_typed_page_keeps_its_text_layer_without_ocr(tmp_path):
    path = pdfs.make_pdf(tmp_path / "report.pdf", ["Annual report 2026", "Fruit sold: 4,100 crates.", TYPED_2])
    engine = ScriptedOcr()
    _, pages = drain(scan.read_document(path, ocr=engine))
    assert engine.images == []  # no image on those pages: nothing for OCR to find
    assert [(p.source, p.text) for p in pages[:2]] == [
        ("text", "Annual report 2026"),
        ("text", "Fruit sold: 4,100 crates."),
    ]
