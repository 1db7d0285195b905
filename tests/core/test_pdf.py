"""PDF extraction, the broken kinds, cancel, rendering and passage rectangles (real pypdfium2). How a batch goes
past bad files is ingest's (test_docs_errors)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from macapp.core.digest import file_sha256
from macapp.core.docs import pdf, render
from macapp.core.docs.pdf import PdfError, extract_pages
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken, Progress
from tests.fixtures import pdfs

PAGES = [
    "Apples grow on trees in the orchard.\nThey ripen in the autumn sun.",
    "Pears are picked before they are ripe. The second page talks about pears.",
    "Cherries close the book on page three.",
]
HEADED = [
    "# 1 Introduction\nThe orchard has many trees. Each tree gives fruit every year and needs some care in "
    "winter, when the branches are cut back to let light in.\n\nA second para-\ngraph follows here.\n"
    "# 2 Methods\nWe counted the apples by hand.",
]


def run(gen):
    """Drain a progress generator: (its return value, the items it yielded)."""
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return stop.value, steps


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pdfs")


@pytest.fixture(scope="module")
def plain(folder) -> Path:
    return pdfs.make_pdf(folder / "plain.pdf", PAGES)


@pytest.fixture(scope="module")
def big(folder) -> Path:
    return pdfs.make_big_pdf(folder / "big.pdf", 1000)


def test_known_text_comes_back_per_page(plain):
    pages, steps = run(extract_pages(plain))
    assert [p.page for p in pages] == [1, 2, 3]
    assert [squash(p.text) for p in pages] == [squash(t) for t in PAGES]
    assert steps[-1] == Progress("extract", 3, 3, "plain.pdf: page 3 of 3")


def test_non_latin_text_comes_back(folder):
    texts = [pdfs.GREEK, pdfs.CHINESE, pdfs.ARABIC, "Ünïcödé café naïve — “quotes”"]
    pages, _ = run(extract_pages(pdfs.make_pdf(folder / "unicode.pdf", texts)))
    assert [p.page for p in pages] == [1, 2, 3, 4]
    assert [squash(p.text) for p in pages] == [squash(t) for t in texts]


def test_headings_and_paragraphs_become_blocks_and_hyphens_rejoin(folder):
    pages, _ = run(extract_pages(pdfs.make_pdf(folder / "headed.pdf", HEADED)))
    blocks = pages[0].text.split("\n\n")
    assert blocks[0] == "1 Introduction"
    assert blocks[1].startswith("The orchard has many trees.")
    assert "A second paragraph follows here." in blocks
    assert blocks[-2:] == ["2 Methods", "We counted the apples by hand."]


def test_normalize_text():
    raw = (
        "Hello\x00  world\t again\r\nexam-\nple and well-\nKnown\ufffe\r\nend\n\n\n\nNext \ufb01eld. Soft\x02\r\nhyphen"
    )
    assert pdf.normalize_text(raw) == "Hello world again\nexample and well-\nKnownend\n\nNext field. Softhyphen"


def test_owner_password_alone_still_opens(folder):
    pages, _ = run(extract_pages(pdfs.make_pdf(folder / "owner.pdf", ["Readable text."], owner_password="boss")))
    assert squash(pages[0].text) == "Readable text."


def broken_files(folder: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (file, kind, words its message must contain)."""
    bad = pdfs.make_corrupt_pdfs(folder / "bad")
    good = pdfs.make_pdf(folder / "to_truncate.pdf", PAGES)
    return {
        "encrypted": (
            pdfs.make_pdf(folder / "locked.pdf", ["Secret."], user_password="pw"),
            "encrypted",
            "needs a password",
        ),
        "random_bytes": (bad["random"], "corrupt", "not a PDF"),
        "renamed_text": (bad["text"], "corrupt", "not a PDF"),
        "garbage_after_header": (bad["garbage"], "corrupt", "damaged"),
        "truncated": (pdfs.truncate(good, folder / "truncated.pdf", 0.3), "corrupt", "damaged"),
        "scanned": (pdfs.make_image_only_pdf(folder / "scan.pdf"), "no_text", "looks scanned"),
        "zero_pages": (pdfs.make_zero_page_pdf(folder / "zero.pdf"), "empty", "no pages"),
        "zero_bytes": (bad["zero_bytes"], "empty", "empty"),
        "lying_count": (pdfs.make_lying_count_pdf(folder / "lying.pdf"), "too_large", "claims 1,000,000 pages"),
        "missing": (folder / "missing.pdf", "unreadable", "can't be opened"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "encrypted",
        "random_bytes",
        "renamed_text",
        "garbage_after_header",
        "truncated",
        "scanned",
        "zero_pages",
        "zero_bytes",
        "lying_count",
        "missing",
    ],
)
def test_broken_file_gives_its_kind_and_a_clear_message(folder, name):
    path, kind, words = broken_files(folder)[name]
    started = time.perf_counter()
    with pytest.raises(PdfError) as info:
        run(extract_pages(path))
    assert time.perf_counter() - started < 2
    assert info.value.kind == kind
    assert words in info.value.message and path.name in info.value.message
    if kind == "no_text":
        assert "OCR" in (info.value.hint or "")  # what the text layer lacks, OCR reads (scan.read_document)
    if words == "not a PDF":  # a collection takes images too: the hint must not say PDFs only
        assert "images (PNG, JPEG, HEIC)" in (info.value.hint or "")


def test_big_pdf_reports_progress_and_reads_fast(big):
    started = time.perf_counter()
    pages, steps = run(extract_pages(big))
    elapsed = time.perf_counter() - started
    assert len(pages) == 1000 and pages[499].page == 500 and "big500marker" in pages[499].text
    assert squash(pages[-1].text) == squash(" ".join(pdfs.big_page_text(1000)))
    assert len(steps) == 1001 and all(s.total == 1000 for s in steps)
    assert elapsed < 10, f"{1000 / elapsed:.0f} pages/s"


def test_cancel_stops_a_big_extraction_quickly(big):
    token = CancelToken()
    gen = extract_pages(big, token)
    seen = []
    with pytest.raises(Cancelled):
        for step in gen:
            seen.append(step)
            if step.done == 50:
                token.cancel()
                started = time.perf_counter()
    assert time.perf_counter() - started < 0.5
    assert seen[-1].done == 50 and seen[-1].total == 1000


def test_threads_share_pdfium_safely(plain, big):
    results: dict[str, object] = {}

    def work(name, path):
        results[name] = run(extract_pages(path))[0]

    threads = [threading.Thread(target=work, args=(f"t{i}", big if i % 2 else plain)) for i in range(4)]
    for t in threads:
        t.start()
    pngs = [render.render_page(plain, 1, scale=0.5) for _ in range(5)]
    for t in threads:
        t.join()
    assert all(len(results[f"t{i}"]) == (1000 if i % 2 else 3) for i in range(4))
    assert len(set(pngs)) == 1


def test_file_sha256_and_info(plain):
    assert file_sha256(plain) == hashlib.sha256(plain.read_bytes()).hexdigest()
    info = pdf.pdf_info(plain)
    assert (info.name, info.pages, info.size) == ("plain.pdf", 3, plain.stat().st_size)


def test_render_page_is_a_png_of_the_page(folder):
    png = render.render_page(pdfs.make_image_only_pdf(folder / "picture.pdf", pages=1), 1, scale=1.5)
    image = Image.open(io.BytesIO(png))
    assert png.startswith(b"\x89PNG") and image.mode == "RGB"
    assert image.size == (893, 1263)  # A4 (595.28 x 841.89 pt) at 1.5x
    assert image.getpixel((int(100 * 1.5), int(740 * 1.5))) == (200, 60, 60)  # the red picture, in RGB order
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert len(png) < 200_000


def test_render_page_rejects_a_page_outside_the_document(plain):
    with pytest.raises(ValueError):
        render.render_page(plain, 4)


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3), (7, 5, 4)])
def test_encode_png_round_trips(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(render.encode_png(pixels))))
    assert np.array_equal(decoded, pixels)


def test_find_text_rects_boxes_a_passage_across_lines(plain):
    rects = render.find_text_rects(plain, 1, "in the orchard. They ripen")
    assert len(rects) == 2  # the end of line one and the start of line two
    first, second = rects
    assert first.top < second.top and second.left < first.left
    for r in rects:
        assert 0 <= r.left < r.right <= 595.3 and 0 <= r.top < r.bottom <= 841.9
        assert 5 < r.bottom - r.top < 20  # about one 11 pt line
    assert render.find_text_rects(plain, 2, "in the orchard") == []


def test_find_text_rects_matches_a_cited_chunk_loosely(folder):
    path = pdfs.make_pdf(folder / "headed2.pdf", HEADED)
    cited = "A second paragraph   follows HERE."  # dehyphenated, other case and spacing
    assert len(render.find_text_rects(path, 1, cited)) == 2
    # a passage that goes on past this page still highlights the part that is here
    spanning = "We counted the apples by hand. And then the text continues on the next page somewhere."
    rects = render.find_text_rects(path, 1, spanning)
    assert len(rects) == 1 and rects[0].right - rects[0].left > 100


def test_find_text_rects_on_non_latin_text(folder):
    path = pdfs.make_pdf(folder / "zh.pdf", [pdfs.CHINESE])
    assert len(render.find_text_rects(path, 1, "懒狗。我们")) == 1
