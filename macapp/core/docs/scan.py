"""The text of every page of a document — a PDF's text layer where it has one, OCR where it has none — and the
boxes the viewer highlights on either kind of page.

A PDF page whose text layer holds fewer than ``MIN_PAGE_CHARS`` letters and digits (none, or a stray page
number or scanner stamp) and that draws an image (a scan does; a short typed page does not) is rendered at
``OCR_LONG_SIDE`` pixels and read by OCR; a blank render is skipped,
and when the OCR finds less than the text layer had, the text layer stays. An image file is one page, always
OCR'd. Each page says how its text was obtained (``PageText.source``) and OCR'd pages keep their line boxes
in points from the top-left, which ``ingest`` stores so a citation on such a page can be highlighted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from macapp.core.docs import images
from macapp.core.docs.ocr import OCR_MAX_PIXELS, OcrEngine, OcrError, default_engine, recognize_page
from macapp.core.docs.pdf import PdfError, extract_pages, locate, match_keys, normalize_text
from macapp.core.docs.render import TextRect, page_images, pages_with_images
from macapp.core.docs.types import OcrLine, PageText
from macapp.core.progress import CancelToken, Progress
from macapp.core.units import plural

log = logging.getLogger(__name__)

MIN_PAGE_CHARS = 32  # letters and digits: fewer (a page number, "Scanned by …") is no text layer worth keeping
OCR_LONG_SIDE = 2000  # pixels on a rendered page's long side: A4 at ~170 dpi, small print still reads
BLANK_INK = 0.0005  # share of dark pixels below which a rendered page is blank (nothing to OCR)
PARAGRAPH_GAP = 0.8  # a gap above a line wider than this × the line's height starts a new paragraph
_WORD_CHAR = re.compile(r"\w")


@dataclass(frozen=True)
class ReadProgress(Progress):
    """Per page: stage ``extract`` (text layer) or ``ocr``; ``page`` of ``pages`` in the file; ``eta_seconds``
    for the OCR still to do (None until a page has been timed)."""

    page: int = 0
    pages: int = 0
    eta_seconds: float | None = None


def is_supported(path: str | Path) -> bool:
    """Whether ``path`` is a kind of file Orchard reads: a PDF or an image (by its name)."""
    return Path(path).suffix.lower() == ".pdf" or images.is_image(path)


def needs_ocr(text: str) -> bool:
    return len(_WORD_CHAR.findall(text)) < MIN_PAGE_CHARS


def is_blank(pixels: np.ndarray) -> bool:
    gray = pixels.mean(axis=2) if pixels.ndim == 3 else pixels
    return float((gray < 160).mean()) < BLANK_INK


def lines_text(lines: Sequence[OcrLine]) -> str:
    """The page's text from its lines in reading order: one line each, a blank line where a wide gap or a jump
    back up (the next column) starts a new block, tidied like a text layer's (hyphenated line ends rejoined)."""
    out: list[str] = []
    previous: OcrLine | None = None
    for line in lines:
        if previous is not None:
            height = max(previous.box[3] - previous.box[1], line.box[3] - line.box[1], 1.0)
            gap = line.box[1] - previous.box[3]
            if gap > PARAGRAPH_GAP * height or line.box[3] < previous.box[1]:
                out.append("")
        out.append(line.text)
        previous = line
    return normalize_text("\n".join(out))


def _scaled(lines: Sequence[OcrLine], per_point: float) -> tuple[OcrLine, ...]:
    """Boxes from image pixels to points (``per_point`` pixels a point)."""

    def points(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        left, top, right, bottom = (round(v / per_point, 2) for v in box)
        return left, top, right, bottom

    return tuple(OcrLine(line.text, points(line.box), round(line.confidence, 4)) for line in lines)


def read_document(
    path: str | Path, cancel: CancelToken | None = None, *, ocr: OcrEngine | None = None
) -> Generator[ReadProgress, None, list[PageText]]:
    """Every page's text, by text layer or OCR (see the module docstring).

    Args:
        path: a PDF or an image file (``images.IMAGE_SUFFIXES``).
        cancel: checked between pages and, while a page is being OCR'd, every 0.1 s.
        ocr: the engine (default: this platform's, loaded only when a page needs it).
    Yields:
        ``ReadProgress`` per page read from the text layer, then per page OCR'd (with the ETA).
    Returns:
        The pages in order. Raises ``PdfError`` (``ImageError`` for images) for a file that can't be used,
        ``no_text`` when not even OCR found text, and ``Cancelled``.
    """
    path = Path(path)
    if images.is_image(path):
        images.image_size(path)  # a damaged, empty or huge image is refused before any work
        pages = [PageText(1, "", "none")]
        wanted = [1]
    else:
        inner = extract_pages(path, cancel, require_text=False)
        while True:
            try:
                step = next(inner)
            except StopIteration as stop:
                pages = [p if p.text else replace(p, source="none") for p in stop.value]
                break
            yield ReadProgress("extract", step.done, step.total, step.message, int(step.done), int(step.total or 0))
        thin = [p.page for p in pages if needs_ocr(p.text)]
        wanted = sorted(pages_with_images(path, thin)) if thin else []
    failure: OcrError | None = None
    if wanted:
        try:
            engine = ocr or default_engine()
        except OcrError as e:
            engine, failure = None, e
        if engine is not None:
            failure = yield from _ocr_pages(path, pages, wanted, engine, cancel)
    if not any(p.text for p in pages):
        raise _no_text(path, failure)
    return pages


def _ocr_pages(
    path: Path, pages: list[PageText], wanted: list[int], engine: OcrEngine, cancel: CancelToken | None
) -> Generator[ReadProgress, None, OcrError | None]:
    """OCR ``wanted`` pages in place in ``pages``; the last page error (timeout, engine failure) or None."""
    total = len(pages)
    started = time.monotonic()
    timed = 0  # pages actually run through the engine (blank ones cost nothing)
    failure = None
    yield ReadProgress(
        "ocr", 0, len(wanted), f"{path.name}: reading {plural(len(wanted), 'page')} by OCR", wanted[0], total
    )
    for done, (page, pixels, per_point) in enumerate(_images(path, wanted), start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if pixels is not None and not is_blank(pixels):
            try:
                lines = _scaled(recognize_page(pixels, cancel, engine=engine), per_point)
                timed += 1
            except OcrError as e:
                log.warning("%s page %d: %s", path.name, page, e.message)
                failure, lines = e, ()
            text = lines_text(lines)
            old = pages[page - 1]
            if len(_WORD_CHAR.findall(text)) > len(_WORD_CHAR.findall(old.text)):
                pages[page - 1] = PageText(page, text, "ocr", lines)
        eta = None
        if timed:
            eta = (time.monotonic() - started) / done * (len(wanted) - done)
        yield ReadProgress(
            "ocr",
            done,
            len(wanted),
            f"{path.name}: page {page} of {total} read by OCR ({done} of {len(wanted)})",
            page,
            total,
            eta,
        )
    return failure


def _images(path: Path, wanted: list[int]):
    """(page, RGB pixels, pixels per point) of each wanted page: PDF pages rendered, an image decoded."""
    if images.is_image(path):
        pixels, scale = images.load_image(path, max_pixels=OCR_MAX_PIXELS)
        yield 1, pixels, scale
        return
    yield from page_images(path, wanted, OCR_LONG_SIDE)


def _no_text(path: Path, failure: OcrError | None) -> PdfError:
    kind = "an image" if images.is_image(path) else "scanned"
    if failure is not None and failure.kind == "unavailable":
        return PdfError(
            "no_text",
            f"{path.name} has no text layer ({kind}), and {failure.message[0].lower()}{failure.message[1:]}",
            failure.hint,
        )
    if failure is not None:
        return PdfError("no_text", f"{path.name} has no text that OCR could read: {failure.message}", failure.hint)
    return PdfError(
        "no_text",
        f"{path.name} has no text: not even OCR found any ({kind}).",
        "if it holds text, scan it again sharper (300 dpi, straight) and add that",
    )


# ---------------------------------------------------------------- the viewer


def ocr_rects(lines: Sequence[OcrLine], text: str) -> list[TextRect]:
    """Boxes (points from the top-left) of the OCR lines that hold ``text`` (case, spaces and hyphens ignored; if
    only its start or end is on the page, those lines): whole lines, as OCR knows no finer positions."""
    keys: list[str] = []
    owner: list[int] = []
    for number, line in enumerate(lines):
        line_keys, _ = match_keys(line.text)
        keys.append(line_keys)
        owner += [number] * len(line_keys)
    span = locate("".join(keys), text)
    if span is None:
        return []
    hit = sorted(set(owner[span[0] : span[1]]))
    return [TextRect(*lines[n].box) for n in hit]


def page_highlights(path: str | Path, page: int, text: str, lines: Sequence[OcrLine] | None) -> list[TextRect]:
    """What to highlight for ``text`` on ``page``: the text layer's boxes (a PDF), else the page's stored OCR
    ``lines`` (a scanned page or an image)."""
    if not text.strip():
        return []
    if not images.is_image(path):
        from macapp.core.docs.render import find_text_rects

        rects = find_text_rects(path, page, text)
        if rects or not lines:
            return rects
    return ocr_rects(lines or (), text)


def document_page_count(path: str | Path) -> int:
    if images.is_image(path):
        images.image_size(path)  # raises for a file that can't be read
        return 1
    from macapp.core.docs.pdf import pdf_info

    return pdf_info(path).pages


def render_document_page(path: str | Path, page: int, scale: float) -> bytes:
    """PNG of 1-based ``page`` at ``scale`` × 72 dpi (an image: × its pixel size)."""
    if images.is_image(path):
        return images.render_image(path, scale)
    from macapp.core.docs.render import render_page

    return render_page(path, page, scale)
