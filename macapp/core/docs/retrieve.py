"""Finding the passages of a collection that answer a question.

Modes: ``keyword`` (BM25 over FTS5: exact terms, names, numbers), ``vector`` (cosine similarity of the
embedder's vectors: paraphrases) and ``hybrid`` (both, fused by reciprocal rank: each list gives a chunk
weight / (60 + rank), summed, over the top 200 of each list). In hybrid mode a keyword match's weight is
the share of the question's terms it holds (IDF-weighted, ``ChunkStore.coverage``) squared, and nothing
below 0.3: RRF rewards agreement, so a chunk sharing one incidental word with a long question must not
outrank the best vector match, while one holding a third of a paraphrased question's words (often the
rare ones: "systemd-analyze", "N=3") should still help. Measured on bench/manual_retrieval.py (47 questions
over two real manuals, recall@5 by exact page) against the former all-or-nothing vote at half the terms
over the top 50: 0.851 → 0.915 (MRR 0.578 → 0.627), with bench/retrieval.py unchanged (recall@5 1.000,
MRR 0.997). Weight by coverage alone (no floor) reached 0.936 on the manuals but cost the generated
paraphrases MRR (1.0 → 0.93); tried and dropped: convex combination of min-max-normalised scores, pseudo-
relevance feedback on the question vector, and ranking pages by the summed scores of their chunks (all
worse); embedding sentence windows at ingest would multiply ingest time about sixfold (25 sentences a
chunk), and no small cross-encoder ships its weights in a wheel (flashrank and the like download theirs).
``score`` is comparable within one mode only: the fused RRF value, the cosine similarity, or the BM25 score.
Chunks with the same text (a duplicate PDF under another name) appear once.

Every hit names the exact page of the text it stands for (``Passage.page``: the page of the hit's sentences
that best match the question, see ``pages.best_page``; ``page_start``..``page_end`` is the passage's span,
``quote`` the matched sentences). The top ``k`` are ``k`` different pages when that many match: a hit on a
page already taken gives its slot to the next-best passage.

``neighbours=n`` widens each hit with the ``n`` chunks before and after it in its file (hits whose windows
touch become one passage; the overlap consecutive chunks share is not repeated). ``whole_documents``
returns every chunk in order when the whole collection fits the model's context, which beats retrieval
for a few short documents (LM Studio does the same).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from macapp.core.docs.index import DocumentIndex
from macapp.core.docs.keyword import ChunkRow
from macapp.core.docs.pages import PagedText, best_page
from macapp.core.docs.types import EmbeddingModel
from macapp.core.errors import UserError

MODES = ("hybrid", "vector", "keyword")
RRF_K = 60
MIN_DEPTH = 200  # candidates taken from each list before fusing (deeper lists let RRF see more agreement)
KEYWORD_MIN_COVERAGE = 0.3  # hybrid: a keyword hit holding less of the question's IDF-weighted terms doesn't vote
KEYWORD_VOTE_POWER = 2  # hybrid: a keyword hit's vote is scaled by (that share) ** this
MAX_CHARS_PER_TOKEN = 10  # no tokenizer averages more on real text: a cheap "can't fit" before counting


@dataclass(frozen=True)
class Passage:
    """A passage to show or to quote from ``file``: ``page`` (1-based) holds the text the hit stands for
    (``quote``, the sentences that matched); the passage runs over ``page_start``..``page_end``, where
    ``page_breaks`` say each later page begins in ``text``. ``chunk_index`` is the hit's position in the file."""

    file: str
    page: int
    page_end: int
    text: str
    score: float
    chunk_index: int
    file_hash: str
    heading: str | None = None
    path: str | None = None
    page_start: int = 0  # 0: the same as ``page``
    page_breaks: tuple[int, ...] = ()
    quote: str = ""

    def __post_init__(self) -> None:
        if not self.page_start:
            object.__setattr__(self, "page_start", self.page)

    @property
    def paged(self) -> PagedText:
        """The text with its pages (a span whose breaks are unknown counts as its first page)."""
        known = len(self.page_breaks) == self.page_end - self.page_start
        return PagedText(self.text, self.page_start, self.page_breaks if known else ())

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Window:
    hit: ChunkRow
    score: float
    first: int
    last: int
    page: int
    quote: str


def query(
    collection: str,
    question: str,
    k: int = 5,
    mode: str = "hybrid",
    neighbours: int = 0,
    *,
    embedder: EmbeddingModel | None = None,
    index: DocumentIndex | None = None,
) -> list[Passage]:
    """The ``k`` best passages of ``collection`` for ``question``, best first.

    Args:
        mode: hybrid | vector | keyword.
        neighbours: chunks of context pulled in on each side of a hit.
        embedder: for vector and hybrid modes (default: ``load_embedder()``); it must be the one the collection
            was indexed with, else ``EmbedderMismatch``.
        index: the index to read (default: the one in the data dir).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if k < 1 or neighbours < 0:
        raise UserError("k must be at least 1 and neighbours at least 0.")
    question = question.strip()
    if not question:
        raise UserError("The question is empty.")
    own = index is None
    index = index or DocumentIndex()
    try:
        row = index.collection(collection)
        depth = max(MIN_DEPTH, 4 * k)
        rankings: list[list[tuple[int, float]]] = []
        weights: list[dict[int, float] | None] = []
        vector = None
        if mode != "keyword":
            if embedder is None:
                from macapp.core.docs.embedder import load_embedder

                embedder = load_embedder()
            index.check_embedder(row, embedder)
            vector = embedder.embed([question])[0]
            rankings.append(index.vectors.query(row.vector_key, vector, depth, index.chunks.unready_hashes(row.id)))
            weights.append(None)
        if mode != "vector":
            hits = index.chunks.search(row.id, question, depth)
            rankings.append(hits)
            if mode == "hybrid":
                coverage = index.chunks.coverage(question, [chunk_id for chunk_id, _ in hits])
                weights.append(
                    {
                        chunk_id: share**KEYWORD_VOTE_POWER if share >= KEYWORD_MIN_COVERAGE else 0.0
                        for chunk_id, share in coverage.items()
                    }
                )
        ranked = fuse(rankings, weights=weights) if mode == "hybrid" else rankings[0]
        chunks = index.chunks.chunks_by_id([chunk_id for chunk_id, _ in ranked])
        pager = _Pager(question, embedder if vector is not None else None, vector)
        return _passages(index, ranked, chunks, k, neighbours, pager)
    finally:
        if own:
            index.close()


def fuse(
    rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K, weights: Sequence[Mapping[int, float] | None] = ()
) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: (id, sum over lists of weight / (k + rank)), best first. ``weights[i]`` gives
    the weight of each item of list ``i`` (missing list or item: 1; 0: no vote)."""
    scores: dict[int, float] = defaultdict(float)
    for at, ranking in enumerate(rankings):
        weight = weights[at] if at < len(weights) else None
        for rank, (item, _) in enumerate(ranking, start=1):
            vote = 1.0 if weight is None else weight.get(item, 1.0)
            if vote > 0:  # a weight of 0: this list says nothing about the item
                scores[item] += vote / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def chunk_paged(chunk: ChunkRow) -> PagedText:
    """A stored chunk's text with its pages (one indexed before pages were recorded: its first page)."""
    breaks = chunk.page_breaks
    if breaks is None or len(breaks) != chunk.page_end - chunk.page_start:
        return PagedText(chunk.text, chunk.page_start)
    return PagedText(chunk.text, chunk.page_start, breaks)


class _Pager:
    """The exact page of each hit for one question: its sentences scored against the question, plus (when an
    embedder is at hand) the similarity of the question to each page's part of a hit that spans pages,
    embedded a batch of hits at a time."""

    BATCH = 16  # at most this many multi-page hits have their page parts embedded in one call

    def __init__(self, question: str, embedder: EmbeddingModel | None, vector: np.ndarray | None):
        self.question = question
        self.embedder = embedder
        self.vector = vector
        self._similarity: dict[int, dict[int, float]] = {}

    def page(self, chunk: ChunkRow, upcoming: Sequence[ChunkRow]):
        paged = chunk_paged(chunk)
        if paged.breaks and self.embedder is not None and chunk.id not in self._similarity:
            self._embed_parts(self.embedder, [c for c in upcoming if c.id not in self._similarity][: self.BATCH])
        return best_page(paged, self.question, self._similarity.get(chunk.id))

    def _embed_parts(self, embedder: EmbeddingModel, chunks: Sequence[ChunkRow]) -> None:
        owners: list[tuple[int, int]] = []
        texts: list[str] = []
        for chunk in chunks:
            paged = chunk_paged(chunk)
            self._similarity[chunk.id] = {}
            if paged.breaks:
                for page, start, end in paged.parts():
                    owners.append((chunk.id, page))
                    texts.append(paged.text[start:end])
        if not texts:
            return
        vectors = embedder.embed(texts)
        for (chunk_id, page), sim in zip(owners, vectors @ np.asarray(self.vector, dtype=np.float32)):
            self._similarity[chunk_id][page] = float(sim)


def _passages(
    index: DocumentIndex,
    ranked: Sequence[tuple[int, float]],
    chunks: dict[int, ChunkRow],
    k: int,
    neighbours: int,
    pager: _Pager,
) -> list[Passage]:
    windows: list[_Window] = []
    seen: set[str] = set()
    taken: set[tuple[str, int]] = set()  # (file, exact page) of every hit kept
    hits = [(chunks[i], score) for i, score in ranked if i in chunks]  # not in it: its file is being added/removed
    for at, (chunk, score) in enumerate(hits):
        text_key = " ".join(chunk.text.split()).casefold()
        if text_key in seen:
            continue
        seen.add(text_key)
        ahead = min(_Pager.BATCH, k - len(windows))  # embedding page parts is most of a query's time: only for
        match = pager.page(chunk, [c for c, _ in hits[at : at + ahead]])  # as many hits as slots are left
        if (chunk.file_hash, match.page) in taken:  # this page is already a hit: the slot goes to the next one
            continue
        window = _Window(chunk, score, chunk.index - neighbours, chunk.index + neighbours, match.page, match.quote)
        touching = [
            w
            for w in windows
            if w.hit.file_id == chunk.file_id
            and neighbours
            and window.first <= w.last + 1
            and window.last >= w.first - 1
        ]
        if touching:  # widen the best of them over this hit and any others it joins
            keep = touching[0]
            for other in touching:
                keep.first, keep.last = (
                    min(keep.first, other.first, window.first),
                    max(keep.last, other.last, window.last),
                )
            windows = [w for w in windows if w is keep or all(w is not t for t in touching)]
            taken.add((chunk.file_hash, match.page))
            continue
        if len(windows) == k:
            break
        windows.append(window)
        taken.add((chunk.file_hash, match.page))
    passages = []
    for w in windows:
        span = [w.hit] if not neighbours else index.chunks.chunk_range(w.hit.file_id, max(0, w.first), w.last)
        paged = join_paged([chunk_paged(c) for c in span])
        page_end = max(paged.page_end, *(c.page_end for c in span))  # more when indexed before pages were recorded
        passages.append(
            Passage(
                w.hit.file,
                w.page,
                page_end,
                paged.text,
                w.score,
                w.hit.index,
                w.hit.file_hash,
                w.hit.heading,
                w.hit.path,
                paged.page_start,
                paged.breaks,
                w.quote,
            )
        )
    return passages


def _overlap(previous: str, text: str, probe: int = 24) -> int:
    """Length of the longest end of ``previous`` that ``text`` starts with (the overlap chunking repeats)."""
    head = text[:probe]
    if not head:
        return 0
    at = previous.find(head)
    while at >= 0:
        if text.startswith(previous[at:]):
            return len(previous) - at
        at = previous.find(head, at + 1)
    return 0


def _new_parts(texts: Sequence[str]) -> list[str]:
    """Each text without what it repeats of the previous one (the first kept whole)."""
    parts = []
    for i, text in enumerate(texts):
        cut = _overlap(texts[i - 1], text) if i else 0
        parts.append(text[cut:] if cut else (text if not i else "\n\n" + text))
    return parts


def join_chunk_texts(texts: Sequence[str]) -> str:
    """Consecutive chunks of one file as one text, their shared overlap once."""
    return "".join(_new_parts(texts)).strip()


def _new_paged_parts(chunks: Sequence[PagedText]) -> list[PagedText]:
    """``_new_parts`` keeping each part's pages."""
    parts = []
    for i, chunk in enumerate(chunks):
        cut = _overlap(chunks[i - 1].text, chunk.text) if i else 0
        if cut or not i:
            parts.append(chunk.slice(cut))
        else:
            parts.append(PagedText("\n\n", chunks[i - 1].page_end) + chunk)
    return parts


def join_paged(chunks: Sequence[PagedText]) -> PagedText:
    """``join_chunk_texts`` for texts with pages: the breaks follow the text."""
    joined = PagedText("", chunks[0].page_start)
    for part in _new_paged_parts(chunks):
        joined = joined + part
    return joined.strip()


def keyword_coverage(collection: str, question: str, depth: int = 5, *, index: DocumentIndex | None = None) -> float:
    """The largest IDF-weighted share of ``question``'s terms that one of its best keyword hits holds (0 to 1)."""
    own = index is None
    index = index or DocumentIndex()
    try:
        row = index.collection(collection)
        hits = [chunk_id for chunk_id, _ in index.chunks.search(row.id, question.strip(), depth)]
        return max(index.chunks.coverage(question, hits).values(), default=0.0)
    finally:
        if own:
            index.close()


def whole_documents(
    collection: str, count_tokens: Callable[[str], int], budget: int, *, index: DocumentIndex | None = None
) -> list[Passage] | None:
    """Every chunk of ``collection`` in reading order (file by file, overlaps removed), or None when the
    documents don't fit ``budget`` tokens as counted by ``count_tokens`` (the chat model's counter)."""
    own = index is None
    index = index or DocumentIndex()
    try:
        row = index.collection(collection)
        files = index.chunks.files(row.id)
        passages: list[Passage] = []
        used = 0
        for file in files:
            chunks = index.chunks.file_chunks(file.id)
            parts = _new_paged_parts([chunk_paged(c) for c in chunks])
            text = "".join(p.text for p in parts)
            if len(text) > MAX_CHARS_PER_TOKEN * (budget - used):
                return None
            used += count_tokens(text)
            if used > budget:
                return None
            for c, part in zip(chunks, parts):
                part = part.strip()
                if part.text:
                    passages.append(
                        Passage(
                            c.file,
                            part.page_start,
                            part.page_end,
                            part.text,
                            1.0,
                            c.index,
                            c.file_hash,
                            c.heading,
                            c.path,
                            part.page_start,
                            part.breaks,
                        )
                    )
        return passages
    finally:
        if own:
            index.close()
