"""PDF text per page (pypdfium2): opening a PDF safely, extracting and tidying its text, and the keys that find
a passage in a page's text. Page images and passage rectangles for the viewer and OCR are ``render.py``'s.

Every failure a person can act on is a ``PdfError`` whose ``kind`` says which: ``encrypted`` (needs a
password), ``corrupt`` (damaged or not a PDF), ``no_text`` (no text layer: scanned, for ``scan.py`` to OCR),
``empty`` (no pages), ``too_large`` (claims more pages than its bytes can hold) or ``unreadable`` (can't be opened
as a file). ``ingest`` turns them into per-file outcomes so one bad file never stops a batch.

PDFium is not thread-safe, so every call into it runs under one lock (``PDFIUM_LOCK``, held per page, never
across a ``yield``) and every PDFium object is closed explicitly, never by a finaliser on another thread.
"""

from __future__ import annotations

import logging
import mmap
import re
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from ctypes import byref, c_double
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from macapp.core.docs.types import PageText
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, Progress

log = logging.getLogger(__name__)

PDFIUM_LOCK = threading.RLock()  # PDFium is not thread-safe: every call into it holds this
MIN_BYTES_PER_PAGE = 16  # below any real page (a page object plus its content); a bigger count is a lie
_HYPHEN_MARKS = "\ufffe\x02\xad"  # PDFium's marks for a line-end hyphen, and the soft hyphen
_CONTROL = {c: None for c in [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F]} | {0x0C: "\n"}
_HYPHEN_MARK = re.compile(f"[{_HYPHEN_MARKS}][ \t]*\n?[ \t]*")
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_SPACED_NEWLINE = re.compile(r" \n ?|\n ")
_LINE_END_HYPHEN = re.compile(r"-\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_LIGATURES = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st"}


class PdfError(UserError):
    """A PDF Orchard can't read, with ``kind``: encrypted | corrupt | no_text | empty | too_large | unreadable."""

    def __init__(self, kind: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.kind = kind


@dataclass(frozen=True)
class PdfInfo:
    """What opening a PDF tells: its display name, size in bytes and page count."""

    path: Path
    name: str
    size: int
    pages: int


# ---------------------------------------------------------------- opening


def _check_file(path: Path) -> int:
    """The file's size, after the checks that need no PDFium: readable, not empty, a PDF header."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as e:
        raise PdfError("unreadable", f"{path.name} can't be opened: {e.strerror or e}") from e
    if size == 0:
        raise PdfError("empty", f"{path.name} is empty (0 bytes).")
    if b"%PDF-" not in head:
        raise PdfError("corrupt", f"{path.name} is not a PDF.", "Only PDFs and images (PNG, JPEG, HEIC) can be added.")
    return size


def _file_has(path: Path, pattern: bytes) -> bool:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return re.search(pattern, data) is not None


@contextmanager
def _open(path: Path, size: int):
    """An open ``PdfDocument`` (closed on exit), with PDFium's load errors turned into ``PdfError``."""
    with PDFIUM_LOCK:
        # PDFium leaves its last error untouched on some failures (an empty page tree): set a known one first.
        pdfium_c.FPDF_LoadDocument(b"/nonexistent-orchard-dir/none.pdf", None)
        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as e:
            raise _load_error(path, e.err_code) from e
        except OSError as e:  # gone or locked since the first look
            raise PdfError("unreadable", f"{path.name} can't be opened: {e.strerror or e}") from e
        try:
            pages = len(doc)
        except BaseException:
            doc.close()
            raise
    try:
        if pages == 0:
            raise PdfError("empty", f"{path.name} has no pages.")
        if pages > max(1, size // MIN_BYTES_PER_PAGE):
            raise PdfError(
                "too_large",
                f"{path.name} claims {pages:,} pages but holds only {size:,} bytes.",
                "The file is damaged or crafted; try re-saving it from a PDF viewer.",
            )
        yield doc
    finally:
        with PDFIUM_LOCK:
            doc.close()


@contextmanager
def open_pdf(path: Path) -> Iterator[pdfium.PdfDocument]:
    """``path`` open as a ``PdfDocument`` (closed on exit) once it passed every check; raises ``PdfError``."""
    with _open(path, _check_file(path)) as doc:
        yield doc


def _load_error(path: Path, code: int | None) -> PdfError:
    if code == pdfium_c.FPDF_ERR_PASSWORD and _file_has(path, rb"/Encrypt\b"):
        return PdfError(
            "encrypted", f"{path.name} needs a password.", "Save an unlocked copy (e.g. print it to PDF) and add that."
        )
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return PdfError(
            "encrypted",
            f"{path.name} uses an encryption Orchard can't open.",
            "Save an unlocked copy (e.g. print it to PDF) and add that.",
        )
    if code in (pdfium_c.FPDF_ERR_FILE, pdfium_c.FPDF_ERR_PASSWORD) and _file_has(path, rb"/Count\s+0\b"):
        return PdfError("empty", f"{path.name} has no pages.")  # PDFium gives no reason for an empty page tree
    return PdfError("corrupt", f"{path.name} is damaged or not a PDF.", "Try re-saving it from a PDF viewer.")


class BugReport(TypedDict):
    message: str
    hint: str


def bug_report(name: str, verb: str) -> BugReport:
    """``message`` and ``hint`` for a file that failed through a fault of Orchard's (never the exception's own
    text, which speaks of internals): what a person can do is report it with the logged details."""
    return {
        "message": f"{name} could not be {verb} because of a problem in Orchard, not in your file.",
        "hint": "please report it with the details from the log (Help > Open Logs Folder in the app; "
        "the lines above for `macapp`)",
    }


def pdf_info(path: str | Path) -> PdfInfo:
    """Open ``path`` just far enough to count its pages; raises ``PdfError`` like ``extract_pages``."""
    path = Path(path)
    size = _check_file(path)
    with _open(path, size) as doc:
        return PdfInfo(path, path.name, size, len(doc))


# ---------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Tidy extracted text: strip NULs and control characters, expand ligatures, rejoin hyphenated line
    ends, collapse runs of spaces; single newlines (lines) and blank lines (paragraphs) are kept."""
    text = _HYPHEN_MARK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.translate(_CONTROL).translate(_LIGATURES)
    text = _SPACES.sub(" ", text)
    text = _SPACED_NEWLINE.sub("\n", text)
    text = _LINE_END_HYPHEN.sub(_dehyphenate, text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _dehyphenate(match: re.Match) -> str:
    text, at = match.string, match.start()
    joins = at > 0 and text[at - 1].isalpha() and text[at + 2 : at + 3].islower()
    return "" if joins else "-\n"


def _page_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's text with a blank line wherever the layout shows a paragraph or heading break."""
    raw = textpage.get_text_range()
    if not raw.strip():
        return ""
    lines: list[str] = []
    marks: list[tuple[float, float] | None] = []  # (baseline y, font size) of each line's first glyph
    utf16 = 0
    for line in re.split(r"\r\n|\r|\n", raw):
        stripped = line.lstrip()
        mark = None
        if stripped:
            text_index = utf16 + _utf16_len(line[: len(line) - len(stripped)])
            mark = _glyph_mark(textpage, pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, text_index))
        lines.append(line)
        marks.append(mark)
        utf16 += _utf16_len(line) + 2
    return normalize_text("\n".join(_paragraph_lines(lines, marks)))


def _utf16_len(text: str) -> int:
    return len(text) + len(_ASTRAL.findall(text))  # PDFium's text indices count UTF-16 units


def _glyph_mark(textpage: pdfium.PdfTextPage, index: int) -> tuple[float, float] | None:
    if index < 0:
        return None
    x, y = c_double(), c_double()
    if not pdfium_c.FPDFText_GetCharOrigin(textpage, index, byref(x), byref(y)):
        return None
    return y.value, pdfium_c.FPDFText_GetFontSize(textpage, index)


def _paragraph_lines(lines: list[str], marks: list[tuple[float, float] | None]) -> list[str]:
    """Insert an empty line before each line that starts a new block: a wider gap than the page's line
    pitch (the smallest plausible gap between lines of one size), a jump up (the next column), or a change
    of font size (a heading and its body)."""
    pitches = [
        a[0] - b[0]
        for a, b in zip(marks, marks[1:])
        if a and b and abs(a[1] - b[1]) < 0.5 and a[0] - b[0] >= 0.8 * a[1]
    ]
    usual = min(pitches) if pitches else None
    out: list[str] = []
    for i, line in enumerate(lines):
        prev, cur = (marks[i - 1] if i else None), marks[i]
        if prev and cur:
            pitch = prev[0] - cur[0]
            size_changed = min(prev[1], cur[1]) < 0.83 * max(prev[1], cur[1])
            too_far = pitch > 1.35 * usual if usual else pitch > 1.6 * max(prev[1], cur[1], 1.0)
            if pitch < -1 or too_far or size_changed:
                out.append("")
        out.append(line)
    return out


def _read_page(doc: pdfium.PdfDocument, index: int) -> str | None:
    """Normalised text of page ``index`` (0-based); None when PDFium can't load the page."""
    with PDFIUM_LOCK:
        try:
            page = doc[index]
        except pdfium.PdfiumError:
            return None
        try:
            textpage = page.get_textpage()
            try:
                return _page_text(textpage)
            finally:
                textpage.close()
        except pdfium.PdfiumError:
            return None
        finally:
            page.close()


def extract_pages(
    path: str | Path, cancel: CancelToken | None = None, *, require_text: bool = True
) -> Generator[Progress, None, list[PageText]]:
    """Text of every page (1-based ``page``; pages without text keep an empty string). ``require_text`` False:
    a file with no text layer at all is no error (the caller reads its pages by OCR).

    Yields:
        ``Progress(stage="extract", done=pages read, total=page count)`` once per page.
    Returns:
        The pages in order. Raises ``PdfError`` for a file that can't be used and ``Cancelled`` on cancel.
    """
    path = Path(path)
    size = _check_file(path)
    with _open(path, size) as doc:
        total = len(doc)
        yield Progress("extract", 0, total, path.name)
        pages: list[PageText] = []
        unreadable = 0
        for index in range(total):
            if cancel:
                cancel.raise_if_cancelled()
            text = _read_page(doc, index)
            unreadable += text is None
            pages.append(PageText(index + 1, text or ""))
            yield Progress("extract", index + 1, total, f"{path.name}: page {index + 1} of {total}")
    if unreadable == total:
        raise PdfError("corrupt", f"{path.name} is damaged: none of its pages can be read.")
    if require_text and not any(p.text for p in pages):
        raise PdfError(
            "no_text",
            f"{path.name} has no text layer: it looks scanned.",
            "Run it through an OCR tool (e.g. ocrmypdf or Preview's export) and add the result.",
        )
    if unreadable:
        log.warning("%s: %d of %d pages could not be read", path.name, unreadable, total)
    return pages


def match_keys(text: str) -> tuple[str, list[int]]:
    """Lower-cased text without whitespace and hyphens (so line breaks and hyphenation can't stop a
    match), with the position in ``text`` each key character came from."""
    keys: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace() or ch in "-\x00" or ch in _HYPHEN_MARKS:
            continue
        for k in _LIGATURES.get(ord(ch), ch).lower():
            keys.append(k)
            where.append(i)
    return "".join(keys), where


def locate(page_keys: str, query: str) -> tuple[int, int] | None:
    """(start, end) in ``page_keys`` of the query, else of its longest leading or trailing run of words
    (at least three) found on the page: a passage that continues on another page still highlights."""
    whole, _ = match_keys(query)
    if not whole:
        return None
    if (at := page_keys.find(whole)) >= 0:
        return at, at + len(whole)
    words = query.split()
    best: tuple[int, int] | None = None
    for take in (lambda k: words[:k], lambda k: words[-k:]):
        lo, hi, found = 3, len(words) - 1, None
        while lo <= hi:  # being found is monotone in the number of words taken
            mid = (lo + hi) // 2
            keys, _ = match_keys(" ".join(take(mid)))
            if keys and (at := page_keys.find(keys)) >= 0:
                found, lo = (at, at + len(keys)), mid + 1
            else:
                hi = mid - 1
        if found and (best is None or found[1] - found[0] > best[1] - best[0]):
            best = found
    return best
