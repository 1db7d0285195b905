"""Cut extracted pages into passages sized for the embedder, remembering pages and section headings.

How a document becomes chunks:

1. Running headers/footers (the same first or last line on most pages, digits ignored) and bare page
   numbers are dropped: they would repeat in every chunk and pose as headings.
2. Each page's blocks (blank-line separated, as ``pdf.extract_pages`` writes them) become paragraphs and
   headings. A heading is a short line without closing punctuation that is followed by body text: a block
   of its own, or inside a block a numbered ("2.1 Results") or Title Case line that starts after a sentence
   ended; never the last line of a page. Consecutive heading lines merge ("Chapter 3" + "Methods" ->
   "Chapter 3 Methods").
3. Paragraphs split into sentences; a sentence cut by a page break is rejoined and spans both pages.
   A sentence longer than a chunk splits by words (a word longer than a chunk, by characters).
4. Every heading starts a new chunk, whose text begins with the heading line, so a heading is never
   separated from its text. Sentences pack greedily up to ``max_tokens``; the next chunk of the same
   section repeats the last ``overlap_tokens`` worth of text (trailing words if a sentence is longer).
5. ``Chunk.heading`` is the section's heading for every chunk of the section. What the embedder should
   read is ``embedding_text(chunk)``: the chunk text, prefixed by its heading line when the text does not
   already start with it. Every chunk is checked with the real counter: ``count_tokens(embedding_text(c))
   <= max_tokens`` always holds.
6. ``Chunk.page_breaks`` records where each page after the first begins in the chunk's text, so a hit
   can name the page of the sentences it matched rather than the first page of the span.

Token counts are taken per sentence and per word (cached) and summed, which is exact for WordPiece
(whitespace never becomes a token); the per-chunk check catches any counter for which it is not. Nothing a
page holds can make chunking fail: a unit the exact count refuses is halved (at a space, else between
characters, never inside a character's combining marks unless nothing else is left), a heading run too long
to repeat becomes body text, and a single character that cannot fit a chunk even alone (no real tokenizer
does that) is dropped with a warning rather than stop the file.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from macapp.core.docs.types import Chunk, PageText
from macapp.core.progress import CancelToken

_END_PUNCT = ".,;:!?。，；：！？؟…"
_SENTENCE_END = re.compile(r"(?<=[.!?؟…])[\"'”’)\]]*\s+|(?<=[。！？])\s*")
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d{1,5}(?:\s*(?:of|/)\s*\d{1,5})?$|^[-–—]\s*\d{1,5}\s*[-–—]$", re.I)
_NUMBERED = re.compile(r"^(?:(?:\d+\.)*\d+\.?|[IVXLC]+\.|[A-Z]\.|(?:chapter|section|part|appendix)\s+\w+)\s+\S", re.I)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_CJK_END = "。！？"
_WORDS = re.compile(r"\S+")
_SPACE_RUN = re.compile(r"\s+")
_JOINERS = {0x200C, 0x200D, 0x034F}  # ZWNJ, ZWJ, combining grapheme joiner

log = logging.getLogger(__name__)


@dataclass
class _Unit:
    """A piece of text that is never split further when packing: a sentence, part of one, or a heading."""

    text: str
    page_start: int
    page_end: int
    paragraph_start: bool = False
    heading: bool = False
    breaks: tuple[int, ...] = ()  # offsets in ``text`` where the next page's text begins

    def part(self, start: int, end: int) -> _Unit:
        """``text[start:end]`` as a unit of its own, with the pages that part is on."""
        inside = tuple(b - start for b in self.breaks if start < b < end)
        first = self.page_start + sum(b <= start for b in self.breaks)
        return _Unit(
            self.text[start:end],
            first,
            first + len(inside),
            self.paragraph_start and start == 0,
            self.heading and start == 0,
            inside,
        )


@dataclass
class _Section:
    heading: str | None
    units: list[_Unit]


@dataclass(frozen=True)
class _Packed:
    """One chunk as the packer emits it."""

    text: str
    first: int
    last: int
    breaks: tuple[int, ...]
    heading: str | None


class Headed(Protocol):
    """A passage and its heading: a ``Chunk`` being added, or a stored ``ChunkRow`` being re-embedded."""

    @property
    def heading(self) -> str | None: ...

    @property
    def text(self) -> str: ...


def embedding_text(chunk: Headed) -> str:
    """The text the embedder reads for ``chunk``: its heading line first if the text doesn't start with it."""
    if chunk.heading and not chunk.text.startswith(chunk.heading):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text


def chunk_pages(
    pages: Sequence[PageText],
    file: str,
    file_hash: str,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    cancel: CancelToken | None = None,
) -> list[Chunk]:
    """Chunks of ``pages`` in reading order, each within ``max_tokens`` as counted by ``count_tokens``.

    Args:
        pages: extracted pages (1-based ``page``), in order.
        file, file_hash: the display name and sha256 every chunk carries.
        count_tokens: the embedder's count for a text, special tokens included.
        max_tokens: longest input the embedder reads (all-MiniLM-L6-v2: 256).
        overlap_tokens: about how much text consecutive chunks of one section share.
        cancel: checked for every page and block while the structure is read (a 1000-page file takes ~0.5 s
            before the first token count, which checks it too when ``count_tokens`` does).
    """
    check = cancel.raise_if_cancelled if cancel is not None else _never
    packer = _Packer(count_tokens, max_tokens, overlap_tokens)
    chunks: list[Chunk] = []
    for section in _sections(_strip_running_lines(pages, check), check):
        for piece in packer.pack(section):
            chunks.append(
                Chunk(file, file_hash, len(chunks), piece.first, piece.last, piece.text, piece.heading, piece.breaks)
            )
    return chunks


# ---------------------------------------------------------------- structure


def _never() -> None:
    """The check when nothing can cancel."""


def _strip_running_lines(
    pages: Sequence[PageText], check: Callable[[], None] = _never
) -> list[tuple[int, list[list[str]]]]:
    """Each page as (page, blocks of lines), without page numbers and repeated headers/footers."""
    parsed = []
    for page in pages:
        check()
        blocks = [[ln.strip() for ln in block.split("\n") if ln.strip()] for block in page.text.split("\n\n")]
        parsed.append((page.page, [b for b in blocks if b]))

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", line.lower())

    edges: Counter[str] = Counter()
    for _, blocks in parsed:
        if blocks:
            edges.update({key(blocks[0][0]), key(blocks[-1][-1])})
    running = {k for k, n in edges.items() if n >= 3 and n >= 0.5 * len(parsed) and len(k) <= 100}
    for _, blocks in parsed:
        for at in (0, -1):
            while blocks and (key(blocks[at][at]) in running or _PAGE_NUMBER.match(blocks[at][at])):
                del blocks[at][at]
                if not blocks[at]:
                    del blocks[at]
    return parsed


def _looks_short(line: str) -> bool:
    return (
        len(line) <= 100
        and len(line.split()) <= 14
        and line[-1] not in _END_PUNCT
        and any(ch.isalpha() for ch in line)
        and not _PAGE_NUMBER.match(line)
    )


def _numbered(line: str) -> bool:
    """ "2.1 Pruning", "IV. Results", "Chapter 3 Methods"; not "3 apples were picked"."""
    match = _NUMBERED.match(line)
    return match is not None and not line[match.end() - 1].islower()


def _titled(line: str) -> bool:
    words = _WORD.findall(line)
    if not words:
        return False
    if line.isupper():
        return True
    significant = [w for w in words if len(w) > 3] or words
    return words[0][0].isupper() and sum(w[0].isupper() for w in significant) >= 0.75 * len(significant)


def _elements(
    parsed: list[tuple[int, list[list[str]]]], check: Callable[[], None] = _never
) -> list[tuple[str, str, int]]:
    """The document as ("heading" | "para", text, page) in order."""
    flat: list[tuple[int, list[str]]] = [(page, block) for page, blocks in parsed for block in blocks]
    out: list[tuple[str, str, int]] = []
    for i, (page, lines) in enumerate(flat):
        check()
        body_follows = i + 1 < len(flat) and flat[i + 1][0] == page  # typesetters keep a heading with its text
        if len(lines) == 1 and body_follows and _looks_short(lines[0]) and not lines[0][0].islower():
            out.append(("heading", lines[0], page))
            continue
        body: list[str] = []
        longest = max(len(line) for line in lines)
        for j, line in enumerate(lines):
            after_sentence = j == 0 or lines[j - 1][-1] in _END_PUNCT
            if (
                after_sentence
                and j + 1 < len(lines)
                and _looks_short(line)
                and len(line) <= 0.7 * longest
                and (_numbered(line) or _titled(line))
            ):
                if body:
                    out.append(("para", " ".join(body), page))
                    body = []
                out.append(("heading", line, page))
            else:
                body.append(line)
        if body:
            out.append(("para", " ".join(body), page))
    return out


def _split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if pieces and piece[0].islower():  # "e.g. this" was not a sentence end
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    return pieces


def _sections(parsed: list[tuple[int, list[list[str]]]], check: Callable[[], None] = _never) -> list[_Section]:
    sections = [_Section(None, [])]
    for kind, text, page in _elements(parsed, check):
        check()
        current = sections[-1]
        if kind == "heading":
            if current.units and all(u.heading for u in current.units):  # heading right after heading
                current.heading = f"{current.heading} {text}"
                current.units.append(_Unit(text, page, page, heading=True))
            else:
                sections.append(_Section(text, [_Unit(text, page, page, heading=True)]))
            continue
        sentences = _split_sentences(text)
        last = current.units[-1] if current.units else None
        if (
            last
            and not last.heading
            and last.page_end < page
            and last.text[-1] not in _END_PUNCT + "”\"')"
            and sentences
        ):  # a sentence cut by the page break
            if re.search(r"[^\W\d_]-$", last.text) and sentences[0][0].islower():  # "exam-" + "ple"
                last.text, at = last.text[:-1] + sentences[0], len(last.text) - 1
            else:
                last.text, at = f"{last.text} {sentences[0]}", len(last.text) + 1
            last.breaks += (at,) * (page - last.page_end)
            last.page_end = page
            sentences = sentences[1:]
            current.units.extend(_Unit(s, page, page) for s in sentences)
            continue
        current.units.extend(_Unit(s, page, page, paragraph_start=not k) for k, s in enumerate(sentences))
    return [s for s in sections if s.units]


# ---------------------------------------------------------------- packing


class _Packer:
    """Packs a section's units into chunks within the token limit, with overlap."""

    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int, overlap_tokens: int):
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap = overlap_tokens
        self.base = count_tokens("")  # the special tokens ([CLS], [SEP]) every input carries
        self._costs: dict[str, int] = {}
        if max_tokens - self.base < 8:
            raise ValueError(f"max_tokens={max_tokens} leaves no room for text")

    def cost(self, text: str) -> int:
        """Tokens ``text`` adds to an input (its count less the special tokens), cached."""
        if (n := self._costs.get(text)) is None:
            n = self._costs[text] = max(self.count_tokens(text) - self.base, 0)
        return n

    def pack(self, section: _Section) -> list[_Packed]:
        """The chunks of ``section``, in order."""
        if section.heading and self.cost(section.heading) > (self.max_tokens - self.base) // 3:
            # Too long to repeat before every chunk (a run of title-like lines, a table of contents): its lines
            # become body text, which splits like any other.
            section.heading = None
            section.units = [replace(u, heading=False, paragraph_start=True) if u.heading else u for u in section.units]
        self.heading = section.heading
        prefix = self.cost(section.heading) if section.heading else 0
        self.room = self.max_tokens - self.base - prefix  # a continuation chunk carries the heading prefix
        self.piece_room = max(self.room - self.overlap, self.room // 2)  # cut long sentences leaving overlap room
        queue = deque(piece for unit in section.units for piece in self._fit(unit))
        self.out: list[_Packed] = []
        self.current: list[_Unit] = []
        self.carried = 0  # leading units of ``current`` repeated from the previous chunk
        self.used = 0
        while True:
            while queue:
                cost = self.cost(queue[0].text)
                opens_section = bool(self.current) and self.current[0].heading  # no prefix: the text has it
                limit = self.room + (prefix if opens_section else 0)
                if self._has_body() and self.used + cost > limit:
                    self._flush(queue)
                    while self.carried and self.used + cost > self.room:  # the overlap yields to new text
                        self.used -= self.cost(self.current.pop(0).text)
                        self.carried -= 1
                    continue
                self.current.append(queue.popleft())
                self.used += cost
            if not self._has_body():
                break
            self._flush(queue)  # the last chunk; anything the exact count pushed back goes round again
        return self.out

    def _has_body(self) -> bool:
        """Whether the chunk being built has text of its own (not just overlap or heading lines)."""
        return any(not u.heading for u in self.current[self.carried :])

    def _fits(self, units: list[_Unit]) -> bool:
        text = _join(units)[0]
        if self.heading and not text.startswith(self.heading):
            text = f"{self.heading}\n{text}"
        return self.count_tokens(text) <= self.max_tokens

    def _emit(self, units: list[_Unit], heading: str | None) -> None:
        text, breaks = _join(units)
        self.out.append(_Packed(text, units[0].page_start, units[0].page_start + len(breaks), breaks, heading))

    def _flush(self, queue: deque[_Unit]) -> None:
        """Emit the chunk built so far (as much of it as the exact count allows); start the next with the
        overlap tail."""
        units = self.current
        first_body = next(i for i in range(self.carried, len(units)) if not units[i].heading)
        keep = len(units)
        fits = self._fits(units)
        while not fits and keep > first_body + 1:  # a heading never ends a chunk
            keep -= 1  # the summed estimate was optimistic for this counter
            fits = self._fits(units[:keep])
        if not fits:
            if self.carried and self._fits(units[self.carried : keep]):
                units, keep = units[self.carried :], keep - self.carried
            else:  # one unit is too long for the exact count: halve it and try again
                last = units[keep - 1]
                halves = _halves(last)
                self.current = units[: keep - 1]
                queue.extendleft(reversed(halves + units[keep:]))
                if not halves:  # one character that can't follow what precedes it (a counter no real model has)
                    if self.count_tokens(last.text) <= self.max_tokens:
                        self._emit([last], None)
                    else:
                        log.warning("dropped %r: the token counter says it is longer than a chunk", last.text)
                self.used = sum(self.cost(u.text) for u in self.current)
                return
        chunk = units[:keep]
        self._emit(chunk, self.heading)
        queue.extendleft(reversed(units[keep:]))
        self.current = self._tail(chunk)
        self.carried = len(self.current)
        self.used = sum(self.cost(u.text) for u in self.current)

    def _tail(self, units: list[_Unit]) -> list[_Unit]:
        """Copies of the trailing units (and words) worth at most ``overlap`` tokens; never a heading."""
        tail: list[_Unit] = []
        budget = self.overlap
        for unit in reversed(units):
            if unit.heading or budget <= 0:
                break
            cost = self.cost(unit.text)
            if cost <= budget:
                tail.insert(0, unit.part(0, len(unit.text)))
                budget -= cost
                continue
            start = None
            for word in reversed(list(_WORDS.finditer(unit.text))[1:]):
                budget -= self.cost(word.group())
                if budget < 0:
                    break
                start = word.start()
            if start is not None:
                tail.insert(0, unit.part(start, len(unit.text)))
            break
        return tail

    def _fit(self, unit: _Unit) -> list[_Unit]:
        """``unit`` cut by words (a giant word by characters) into pieces that leave room for the overlap."""
        if self.cost(unit.text) <= self.room:
            return [unit]
        pieces: list[_Unit] = []
        start = end = used = 0
        for s, e in self._word_spans(unit.text):
            cost = self.cost(unit.text[s:e])
            if end and used + cost > self.piece_room:
                pieces.append(unit.part(start, end))
                start, used = s, 0
            end = e
            used += cost
        pieces.append(unit.part(start, end))
        return pieces

    def _word_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for word in _WORDS.finditer(text):
            s, e = word.span()
            if self.cost(word.group()) <= self.room:
                spans.append((s, e))
                continue
            step = e - s  # a word longer than a chunk: a URL, a hash, CJK text without spaces
            while step > 1 and any(self.cost(text[k : min(k + step, e)]) > self.room for k in range(s, e, step)):
                step //= 2
            cuts = [s]
            for k in range(s + step, e, step):
                k = _grapheme_start(text, k)  # a base character keeps its accents
                if k > cuts[-1]:
                    cuts.append(k)
            spans.extend(zip(cuts, [*cuts[1:], e]))
        return spans


def _extends_previous(text: str, at: int) -> bool:
    """Whether ``text[at]`` belongs to the character before it: a combining mark, a joiner or what a joiner
    joins, a variation selector or an emoji skin tone."""
    ch = ord(text[at])
    return (
        unicodedata.category(text[at]) in ("Mn", "Me", "Mc")
        or ch in _JOINERS
        or 0xFE00 <= ch <= 0xFE0F
        or 0xE0100 <= ch <= 0xE01EF
        or 0x1F3FB <= ch <= 0x1F3FF
        or 0xE0020 <= ch <= 0xE007F
        or (at > 0 and ord(text[at - 1]) in _JOINERS)
    )


def _grapheme_start(text: str, at: int) -> int:
    """``at`` moved back to the start of the character (with its marks) it falls in; 0 < result unless none."""
    while 0 < at < len(text) and _extends_previous(text, at):
        at -= 1
    return at


def _halves(unit: _Unit) -> list[_Unit]:
    """``unit`` in two non-empty parts: at the space nearest its middle, else between characters (keeping
    each with its combining marks if it can), else between code points; [] for one code point."""
    text = unit.text
    middle = len(text) // 2
    spaces = [m.span() for m in _SPACE_RUN.finditer(text) if m.start() > 0 and m.end() < len(text)]
    if spaces:
        s, e = min(spaces, key=lambda span: abs(span[0] - middle))
        return [unit.part(0, s), unit.part(e, len(text))]
    cut = _grapheme_start(text, middle)
    if cut == 0:  # the middle is inside the first character's marks: the first boundary after it
        cut = middle
        while cut < len(text) and _extends_previous(text, cut):
            cut += 1
        if cut == len(text):
            cut = middle  # one character with many marks: split the marks
    if not 0 < cut < len(text):
        return []
    return [unit.part(0, cut), unit.part(cut, len(text))]


def _join(units: list[_Unit]) -> tuple[str, tuple[int, ...]]:
    """Units as chunk text (a heading on its own line, paragraphs apart, sentences spaced, CJK not) and the
    offsets in it where each page after the first unit's first page begins."""
    parts: list[str] = []
    breaks: list[int] = []
    length = 0
    page = units[0].page_start if units else 0
    previous: _Unit | None = None
    for unit in units:
        if previous is None:
            sep = ""
        elif unit.heading and previous.heading:
            sep = " "  # heading lines merge, as in ``Chunk.heading``
        elif unit.heading or previous.heading:
            sep = "\n"
        elif unit.paragraph_start:
            sep = "\n\n"
        elif previous.text.endswith(tuple(_CJK_END)):
            sep = ""
        else:
            sep = " "
        length += len(sep)
        breaks.extend([length] * (unit.page_start - page))
        breaks.extend(length + b for b in unit.breaks)
        page = max(page, unit.page_end)
        parts.append(sep + unit.text)
        length += len(unit.text)
        previous = unit
    return "".join(parts), tuple(breaks)
