"""What the citation viewer and OCR see of a PDF (pypdfium2): a page as a PNG, pages as pixels, which pages draw
an image, and the boxes a passage covers on its page. Text is ``pdf.py``'s; this module opens files through
``pdf.open_pdf`` (same checks, same ``PdfError``s) and calls PDFium under ``pdf.PDFIUM_LOCK``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Generator, Iterable
from ctypes import byref, c_int
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from macapp.core.docs.pdf import PDFIUM_LOCK, PdfError, locate, match_keys, open_pdf

MAX_RENDER_PIXELS = 40_000_000  # a page claiming to be 5 m wide still renders in bounded memory


@dataclass(frozen=True)
class TextRect:
    """A highlight box in points from the top-left of the rendered page (multiply by the render scale)."""

    left: float
    top: float
    right: float
    bottom: float


def _load_page(doc: pdfium.PdfDocument, path: Path, page: int) -> pdfium.PdfPage:
    if not 1 <= page <= len(doc):
        raise ValueError(f"page {page} is outside 1..{len(doc)}")
    try:
        return doc[page - 1]
    except pdfium.PdfiumError as e:
        raise PdfError("corrupt", f"Page {page} of {path.name} can't be read.") from e


def render_page(path: str | Path, page: int, scale: float = 1.5) -> bytes:
    """PNG bytes of 1-based ``page`` at ``scale`` × 72 dpi (scaled down if it would exceed 40 megapixels)."""
    path = Path(path)
    with open_pdf(path) as doc, PDFIUM_LOCK:
        pdf_page = _load_page(doc, path, page)
        try:
            width, height = pdf_page.get_size()
            scale = min(scale, math.sqrt(MAX_RENDER_PIXELS / max(width * height, 1.0)))
            bitmap = pdf_page.render(scale=scale, rev_byteorder=True)
            try:
                pixels = bitmap.to_numpy().copy()
            finally:
                bitmap.close()
        finally:
            pdf_page.close()
    return encode_png(pixels)


def pages_with_images(path: str | Path, pages: Iterable[int]) -> set[int]:
    """The 1-based pages among ``pages`` that draw an image (a scan, a photo, a slide saved as a picture): where
    OCR may find text a text layer lacks. A page of typed text with few words draws none and is left alone."""
    path = Path(path)
    found = set()
    with open_pdf(path) as doc:
        for page in pages:
            with PDFIUM_LOCK:
                try:
                    pdf_page = doc[page - 1]
                except pdfium.PdfiumError:
                    continue
                try:
                    if next(pdf_page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]), None) is not None:
                        found.add(page)
                finally:
                    pdf_page.close()
    return found


def page_images(
    path: str | Path, pages: Iterable[int], long_side: int
) -> Generator[tuple[int, np.ndarray | None, float], None, None]:
    """(page, RGB pixels, pixels per point) for each 1-based page in ``pages``, rendered so its longer side is
    ``long_side`` pixels (for OCR); pixels None for a page PDFium can't load. The file stays open between pages."""
    path = Path(path)
    with open_pdf(path) as doc:
        for page in pages:
            with PDFIUM_LOCK:
                try:
                    pdf_page = doc[page - 1]
                except pdfium.PdfiumError:
                    pixels, scale = None, 1.0
                else:
                    try:
                        scale = long_side / max(*pdf_page.get_size(), 1.0)
                        bitmap = pdf_page.render(scale=scale, rev_byteorder=True, fill_color=(255, 255, 255, 255))
                        try:
                            pixels = bitmap.to_numpy()[:, :, :3].copy()
                        finally:
                            bitmap.close()
                    finally:
                        pdf_page.close()
            yield page, pixels, scale


def encode_png(pixels: np.ndarray) -> bytes:
    """A PNG of an (h, w), (h, w, 3) RGB or (h, w, 4) RGBA uint8 array; plain zlib, no imaging library."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = pixels.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def find_text_rects(path: str | Path, page: int, text: str) -> list[TextRect]:
    """Boxes covering ``text`` on 1-based ``page`` (whitespace, case and hyphenation ignored), for
    highlighting a cited passage; if only the start or end of the passage is on the page, that part."""
    path = Path(path)
    with open_pdf(path) as doc, PDFIUM_LOCK:
        pdf_page = _load_page(doc, path, page)
        try:
            textpage = pdf_page.get_textpage()
            try:
                chars = "".join(
                    chr(pdfium_c.FPDFText_GetUnicode(textpage, i) or 0) for i in range(textpage.count_chars())
                )
                page_keys, where = match_keys(chars)
                span = locate(page_keys, text)
                if span is None:
                    return []
                first, last = where[span[0]], where[span[1] - 1]
                boxes = [textpage.get_rect(i) for i in range(textpage.count_rects(first, last - first + 1))]
                return [_to_top_left(pdf_page, box) for box in boxes]
            finally:
                textpage.close()
        finally:
            pdf_page.close()


def _to_top_left(page: pdfium.PdfPage, box: tuple[float, float, float, float]) -> TextRect:
    """Page-space (left, bottom, right, top) to the rendered page's top-left points (honours /Rotate)."""
    grain = 16  # device units per point: 1/16 pt precision from PDFium's integer device coordinates
    width, height = page.get_size()
    args = (0, 0, math.ceil(width * grain), math.ceil(height * grain), 0)
    xs, ys = [], []
    for px, py in ((box[0], box[1]), (box[2], box[3])):
        dx, dy = c_int(), c_int()
        pdfium_c.FPDF_PageToDevice(page, *args, px, py, byref(dx), byref(dy))
        xs.append(dx.value / grain)
        ys.append(dy.value / grain)
    return TextRect(min(xs), min(ys), max(xs), max(ys))
