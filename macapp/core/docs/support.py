"""Sources for an answer that cites none: small models (SmolLM2-135M, tested) answer from the passages
correctly but never write ``[n]`` markers, even when shown how. Then the passage that holds most of the
answer's words is named as its source, and a note says the model did not cite it itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from macapp.core.docs.answer import Citation, resolve_citations
from macapp.core.docs.retrieve import Passage

_WORD = re.compile(r"\w{4,}")  # content words; shorter ones are mostly articles and particles
MIN_SHARED_WORDS = 3
MIN_SHARE = 0.6  # of the answer's content words, found in the passage
INFERRED_NOTE = "The model cited no passage; the source shown is the passage its answer matches."


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


def supporting_passages(answer: str, passages: Sequence[Passage]) -> list[int]:
    """Numbers (1-based) of the passages sharing the most of ``answer``'s content words; none below the bar."""
    words = _words(answer)
    if len(words) < MIN_SHARED_WORDS:
        return []
    shared = [len(words & _words(p.text)) for p in passages]
    best = max(shared, default=0)
    if best < MIN_SHARED_WORDS or best < MIN_SHARE * len(words):
        return []
    return [n for n, count in enumerate(shared, start=1) if count == best]


def cite_answer(text: str, passages: Sequence[Passage]) -> tuple[str, list[Citation], str | None]:
    """(labelled text, citations, note): the model's own ``[n]`` citations, else the passages its answer matches
    with a note saying so (the text is left as the model wrote it)."""
    labelled, citations = resolve_citations(text, passages)
    if citations:
        return labelled, citations, None
    inferred = []
    for n in supporting_passages(text, passages):
        p = passages[n - 1]
        inferred.append(Citation(n, p.file, p.page, p.page_end, p.text, p.path))
    return labelled, inferred, INFERRED_NOTE if inferred else None
