"""Finding the passages of a collection that answer a question.

Modes: ``keyword`` (BM25 over FTS5: exact terms, names, numbers), ``vector`` (cosine similarity of the
embedder's vectors: paraphrases) and ``hybrid`` (both, fused by reciprocal rank: each list gives a chunk
1 / (60 + rank), summed). In hybrid mode a keyword match votes only if it holds at least half of the
question's terms weighted by IDF: RRF rewards agreement, so a chunk sharing one incidental word with a long
question would otherwise outrank the best vector match (bench/retrieval.py: paraphrase MRR 0.66 → 1.0).
``score`` is comparable within one mode only: the fused RRF value, the cosine similarity, or the BM25 score.
Chunks with the same text (a duplicate PDF under another name) appear once.

``neighbours=n`` widens each hit with the ``n`` chunks before and after it in its file (hits whose windows
touch become one passage; the overlap consecutive chunks share is not repeated). ``whole_documents``
returns every chunk in order when the whole collection fits the model's context, which beats retrieval
for a few short documents (LM Studio does the same).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from macapp.core.docs.index import DocumentIndex
from macapp.core.docs.keyword import ChunkRow
from macapp.core.docs.types import EmbeddingModel
from macapp.core.errors import UserError

MODES = ("hybrid", "vector", "keyword")
RRF_K = 60
MIN_DEPTH = 50  # candidates taken from each list before fusing
HYBRID_MIN_COVERAGE = 0.5  # a keyword hit must hold this IDF-weighted share of the question's terms to vote
MAX_CHARS_PER_TOKEN = 10  # no tokenizer averages more on real text: a cheap "can't fit" before counting


@dataclass(frozen=True)
class Passage:
    """A passage to show or to quote: ``page``..``page_end`` (1-based) of ``file``; ``chunk_index`` is the
    hit's position in the file."""

    file: str
    page: int
    page_end: int
    text: str
    score: float
    chunk_index: int
    file_hash: str
    heading: str | None = None
    path: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Window:
    hit: ChunkRow
    score: float
    first: int
    last: int


def query(collection: str, question: str, k: int = 5, mode: str = "hybrid", neighbours: int = 0, *,
          embedder: EmbeddingModel | None = None, index: DocumentIndex | None = None) -> list[Passage]:
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
        if mode != "keyword":
            if embedder is None:
                from macapp.core.docs.embedder import load_embedder

                embedder = load_embedder()
            index.check_embedder(row, embedder)
            vector = embedder.embed([question])[0]
            rankings.append(index.vectors.query(row.vector_key, vector, depth, index.chunks.unready_hashes(row.id)))
        if mode != "vector":
            coverage = HYBRID_MIN_COVERAGE if mode == "hybrid" else 0.0
            rankings.append(index.chunks.search(row.id, question, depth, min_coverage=coverage))
        ranked = fuse(rankings) if mode == "hybrid" else rankings[0]
        chunks = index.chunks.chunks_by_id([chunk_id for chunk_id, _ in ranked])
        return _passages(index, ranked, chunks, k, neighbours)
    finally:
        if own:
            index.close()


def fuse(rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: (id, sum over lists of 1 / (k + rank)), best first."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _passages(index: DocumentIndex, ranked: Sequence[tuple[int, float]], chunks: dict[int, ChunkRow], k: int,
              neighbours: int) -> list[Passage]:
    windows: list[_Window] = []
    seen: set[str] = set()
    for chunk_id, score in ranked:
        chunk = chunks.get(chunk_id)
        if chunk is None:  # its file is being added or removed
            continue
        text_key = " ".join(chunk.text.split()).casefold()
        if text_key in seen:
            continue
        seen.add(text_key)
        window = _Window(chunk, score, chunk.index - neighbours, chunk.index + neighbours)
        touching = [w for w in windows if w.hit.file_id == chunk.file_id and neighbours
                    and window.first <= w.last + 1 and window.last >= w.first - 1]
        if touching:  # widen the best of them over this hit and any others it joins
            keep = touching[0]
            for other in touching:
                keep.first, keep.last = min(keep.first, other.first, window.first), max(keep.last, other.last,
                                                                                          window.last)
            windows = [w for w in windows if w is keep or all(w is not t for t in touching)]
            continue
        if len(windows) == k:
            break
        windows.append(window)
    passages = []
    for w in windows:
        span = [w.hit] if not neighbours else index.chunks.chunk_range(w.hit.file_id, max(0, w.first), w.last)
        passages.append(Passage(w.hit.file, min(c.page_start for c in span), max(c.page_end for c in span),
                                join_chunk_texts([c.text for c in span]), w.score, w.hit.index, w.hit.file_hash,
                                w.hit.heading, w.hit.path))
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


def whole_documents(collection: str, count_tokens: Callable[[str], int], budget: int, *,
                    index: DocumentIndex | None = None) -> list[Passage] | None:
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
            parts = _new_parts([c.text for c in chunks])
            text = "".join(parts)
            if len(text) > MAX_CHARS_PER_TOKEN * (budget - used):
                return None
            used += count_tokens(text)
            if used > budget:
                return None
            passages.extend(Passage(c.file, c.page_start, c.page_end, part.strip(), 1.0, c.index, c.file_hash,
                                    c.heading, c.path) for c, part in zip(chunks, parts) if part.strip())
        return passages
    finally:
        if own:
            index.close()
