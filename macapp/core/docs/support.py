"""Sources for an answer that cites none, sentence by sentence.

Small models (SmolLM2-135M, tested) answer from the passages correctly but never write ``[n]`` markers,
even when shown how. Then each sentence of the answer is matched against the passages: a sentence is
supported by the passage whose sentences share the most of its terms (``pages.best_page``: stems, weighted
by rarity) together with the embedder's similarity of the sentence to those passage sentences, when both
clear a bar; a sentence with no support (a greeting, a guess, a fact from nowhere) gets no citation. The
supported sentences get ``[n]`` markers as if the model had written them, so ``resolve_citations`` labels
them with the exact page of the sentences used; a note says the sources were matched, not cited.
A model's own markers always win: then nothing is inferred.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from macapp.core.docs.answer import Citation, resolve_citations
from macapp.core.docs.pages import best_page, terms
from macapp.core.docs.retrieve import Passage
from macapp.core.docs.types import EmbeddingModel
from macapp.core.errors import UserError

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+[\"'”’)\]]*|\n|$)")
MIN_TERMS = 2  # a sentence with fewer content terms ("Sure!", "Yes.") claims nothing to support
MIN_LEXICAL = 0.34  # share of the sentence's terms (rarity-weighted) a passage sentence must hold...
MIN_SUPPORT = 0.9  # ...and that share + the embedder's cosine of sentence and quote at least this (tests: a
#                    sentence the passage holds scores 1.1-2.0, an unrelated one sharing a name 0.2-0.5)
LEXICAL_ALONE = 0.67  # or this share of its terms alone (no embedder, or a sentence the embedder reads poorly)
INFERRED_NOTE = "The model cited no passage; the sources shown are the passages its sentences match."


@dataclass(frozen=True)
class Support:
    """Sentence ``start``..``end`` of the answer is supported by passage ``number`` (1-based) with ``score``."""

    start: int
    end: int
    number: int
    score: float


def answer_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` (a line counts as one), trailing punctuation included."""
    spans = []
    for m in _SENTENCE.finditer(text):
        start, end = m.start(), m.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def _default_embedder() -> EmbeddingModel | None:
    try:
        from macapp.core.docs.embedder import load_embedder

        return load_embedder()
    except (UserError, OSError) as exc:  # no embedder file, or one that won't load: lexical support alone still cites
        log.info("sentence support without embeddings: %s", exc)
        return None


def supporting_passages(
    text: str, passages: Sequence[Passage], *, embedder: EmbeddingModel | None = None
) -> list[Support]:
    """For each sentence of ``text`` that a passage supports, the passage that supports it best."""
    candidates: list[tuple[int, int, int, float, str]] = []  # (start, end, number, lexical, quote)
    for start, end in answer_sentences(text):
        sentence = text[start:end]
        if len(terms(sentence)) < MIN_TERMS:
            continue
        best: tuple[float, int, str] | None = None
        for number, passage in enumerate(passages, start=1):
            match = best_page(passage.paged, sentence)
            if match.score >= MIN_LEXICAL and (best is None or match.score > best[0]):
                best = (match.score, number, match.quote)
        if best is not None:
            candidates.append((start, end, best[1], best[0], best[2]))
    if not candidates:
        return []
    cosines = [0.0] * len(candidates)
    if embedder is not None:
        vectors = embedder.embed([text[s:e] for s, e, *_ in candidates] + [c[4] for c in candidates])
        n = len(candidates)
        cosines = [float(vectors[i] @ vectors[n + i]) for i in range(n)]
    supports = []
    for (start, end, number, lexical, _), cosine in zip(candidates, cosines):
        if lexical >= LEXICAL_ALONE or lexical + cosine >= MIN_SUPPORT:
            supports.append(Support(start, end, number, round(lexical + cosine, 3)))
    return supports


def with_markers(text: str, supports: Sequence[Support]) -> str:
    """``text`` with ``[n]`` after each supported sentence, as a citing model would have written it."""
    out, at = [], 0
    for s in sorted(supports, key=lambda s: s.end):
        cut = s.end
        while cut > s.start and text[cut - 1] in ".!?。！？\"'”’)]":  # the marker goes before the full stop
            cut -= 1
        out += [text[at:cut], f" [{s.number}]"]
        at = cut
    out.append(text[at:])
    return "".join(out)


def cite_answer(
    text: str, passages: Sequence[Passage], *, embedder: EmbeddingModel | None = None
) -> tuple[str, list[Citation], str | None]:
    """(labelled text, citations, note): the model's own ``[n]`` citations; else the passages its sentences
    match, with their labels after those sentences and a note saying they were matched, not cited."""
    labelled, citations = resolve_citations(text, passages)
    if citations or not passages:
        return labelled, citations, None
    supports = supporting_passages(text, passages, embedder=embedder or _default_embedder())
    if not supports:
        return labelled, [], None
    labelled, citations = resolve_citations(with_markers(text, supports), passages)
    return labelled, citations, INFERRED_NOTE
