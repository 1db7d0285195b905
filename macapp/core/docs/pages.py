"""The exact page of a passage's text: a passage may span pages, a hit or a citation names one.

A chunk remembers where each page begins in its text (``Chunk.page_breaks``); ``PagedText`` carries that
through slicing and joining (a passage widened by its neighbours, the parts of a whole document).
``best_page`` scores a passage's sentences against a text — the question for a hit, the answer's sentence
for a citation — and names the page of the best ones, with them as the ``quote`` the viewer highlights.

A sentence's score is the share of the text's terms it holds (stop words dropped, words reduced to a
crude stem), each term weighted by how rare it is among the passage's sentences; the page scores its best
sentence plus, when given, the embedder's similarity of the question to that page's part of the passage
(which finds the page of a paraphrase that shares no word with it). Ties go to the page holding more of
the passage.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass

from macapp.core.docs.keyword import query_terms

_SENTENCE_END = re.compile(r"(?<=[.!?;:…])[\"'”’)\]]*\s+|(?<=[。！？；])|\n+")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s")
STEM_CHARS = 6  # words agreeing on their first six letters (after suffixes) count as one term
QUOTE_CHARS = 600  # the longest quote a page's part of a passage gives when no sentence matches


@dataclass(frozen=True)
class PagedText:
    """Text that runs over pages ``page_start``..``page_end``: ``breaks[i]`` is where page ``page_start + i + 1``
    begins (a blank page in between repeats the offset)."""

    text: str
    page_start: int
    breaks: tuple[int, ...] = ()

    @property
    def page_end(self) -> int:
        return self.page_start + len(self.breaks)

    def page_at(self, offset: int) -> int:
        return page_at(offset, self.page_start, self.breaks)

    def slice(self, start: int, end: int | None = None) -> PagedText:
        end = len(self.text) if end is None else end
        inside = tuple(b - start for b in self.breaks if start < b < end)
        return PagedText(self.text[start:end], self.page_at(start), inside)

    def strip(self) -> PagedText:
        start = len(self.text) - len(self.text.lstrip())
        return self.slice(start, max(start, len(self.text.rstrip())))

    def __add__(self, other: PagedText) -> PagedText:
        """``other`` after this text; pages of ``other`` this text already reached add no break."""
        at = len(self.text)
        gap = (at,) * max(0, other.page_start - self.page_end)
        later = tuple(at + b for i, b in enumerate(other.breaks) if other.page_start + i + 1 > self.page_end)
        return PagedText(self.text + other.text, self.page_start, self.breaks + gap + later)

    def parts(self) -> list[tuple[int, int, int]]:
        """(page, start, end) of each page's stretch of the text that holds more than whitespace."""
        edges = [0, *self.breaks, len(self.text)]
        return [(self.page_start + i, s, e) for i, (s, e) in enumerate(zip(edges, edges[1:])) if self.text[s:e].strip()]


def page_at(offset: int, page_start: int, breaks: tuple[int, ...] | list[int]) -> int:
    """The page holding character ``offset`` of a text starting on ``page_start`` with these page breaks."""
    return page_start + bisect_right(breaks, offset)


def sentences(paged: PagedText) -> list[tuple[int, int, int]]:
    """(page, start, end) of each sentence (or line) of the text, cut at page breaks too."""
    spans = []
    for page, start, end in paged.parts():
        at = start
        for m in _SENTENCE_END.finditer(paged.text, start, end):
            if paged.text[at : m.start()].strip():
                spans.append((page, at, m.start()))
            at = m.end()
        if paged.text[at:end].strip():
            spans.append((page, at, end))
    return spans


def stem(word: str) -> str:
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:STEM_CHARS]


def terms(text: str) -> set[str]:
    """The stems of ``text``'s words, stop words dropped (as keyword search does)."""
    return {stem(w) for w in query_terms(text)}


@dataclass(frozen=True)
class PageMatch:
    """The page a text stands on, the sentences on it that matched (``quote``) and how well (0 = no term)."""

    page: int
    quote: str
    score: float


def best_page(paged: PagedText, against: str, similarity: Mapping[int, float] | None = None) -> PageMatch:
    """The page of ``paged`` whose sentences best match ``against``.

    Args:
        paged: the passage with its page breaks.
        against: the question, or the answer sentence citing the passage.
        similarity: per page, the embedder's cosine between ``against`` and that page's part of the passage.
    """
    spans = sentences(paged)
    if not spans:
        return PageMatch(paged.page_start, paged.text.strip(), 0.0)
    wanted = terms(against)
    held = [terms(paged.text[s:e]) & wanted for _, s, e in spans]
    weight = {t: math.log(1 + len(spans) / (1 + sum(t in h for h in held))) for t in wanted}
    total = sum(weight.values()) or 1.0
    scores = [sum(weight[t] for t in h) / total for h in held]
    size: dict[int, int] = {}
    best_on: dict[int, int] = {}  # page -> index of its best sentence
    for i, (page, s, e) in enumerate(spans):
        size[page] = size.get(page, 0) + e - s
        if page not in best_on or scores[i] > scores[best_on[page]]:
            best_on[page] = i
    similarity = similarity or {}
    page = max(best_on, key=lambda p: (scores[best_on[p]] + similarity.get(p, 0.0), size[p]))
    best = best_on[page]
    if scores[best] <= 0:  # nothing shared: the page's part of the passage stands for itself
        quote = " ".join(paged.text[s:e].strip() for p, s, e in spans if p == page)
        return PageMatch(page, quote[:QUOTE_CHARS].strip(), similarity.get(page, 0.0))
    first = last = best  # the best sentence with the matching sentences next to it on its page
    while first > 0 and spans[first - 1][0] == page and scores[first - 1] > 0:
        first -= 1
    while last + 1 < len(spans) and spans[last + 1][0] == page and scores[last + 1] > 0:
        last += 1
    quote = paged.text[spans[first][1] : spans[last][2]].strip()
    return PageMatch(page, quote, scores[best] + similarity.get(page, 0.0))
