"""Sources for answers that cite none (small models never write [n]): each sentence to the passage holding it."""

from __future__ import annotations

import pytest

from macapp.core.docs.retrieve import Passage
from macapp.core.docs.support import INFERRED_NOTE, answer_sentences, cite_answer, supporting_passages

FERRIES = (
    "The morning ferry to the islands leaves at seven and returns before noon. "
    "Tickets are sold at the kiosk on the quay. "
)
WINTER = "In winter the evening ferry is cancelled when gales blow from the north."
PASSAGES = [
    Passage("harbour.pdf", 1, 1, "The harbour master keeps the tide tables in the blue office.", 1.0, 0, "h"),
    Passage(
        "harbour.pdf", 2, 2, "The Glimmerfen lighthouse was built in 1887 by the engineer Ada Thornbury.", 1.0, 1, "h"
    ),
    # one passage over two pages: the winter rule is on p. 6
    Passage("ferries.pdf", 5, 6, FERRIES + WINTER, 1.0, 0, "f", page_breaks=(len(FERRIES),)),
]


@pytest.fixture(scope="module")
def embedder():
    from macapp.core.docs.embedder import load_embedder

    return load_embedder()


def test_each_supported_sentence_cites_its_passage_on_the_exact_page(embedder):
    answer = (
        "The Glimmerfen lighthouse was built by the engineer Ada Thornbury. "
        "In winter the evening ferry is cancelled when northern gales blow. "
        "I hope you enjoy your trip to the coast!"
    )
    text, citations, note = cite_answer(answer, PASSAGES, embedder=embedder)
    assert note == INFERRED_NOTE
    assert [(c.number, c.file, c.page) for c in citations] == [(2, "harbour.pdf", 2), (3, "ferries.pdf", 6)]
    assert text == (
        "The Glimmerfen lighthouse was built by the engineer Ada Thornbury [harbour.pdf, p. 2]. "
        "In winter the evening ferry is cancelled when northern gales blow [ferries.pdf, p. 6]. "
        "I hope you enjoy your trip to the coast!"
    )  # nothing supports the last: no citation
    assert len(answer_sentences(answer)) == 3


def test_a_sentence_the_passages_do_not_hold_gets_no_source(embedder):
    for claim in (
        "The documents don't say.",
        "Thornbury designed bridges across Scotland and Wales for decades.",
        "The lighthouse keeper's cat is called Marmalade and sleeps in the lamp room.",
    ):
        assert supporting_passages(claim, PASSAGES, embedder=embedder) == [], claim
    assert cite_answer("I don't know.", PASSAGES, embedder=embedder) == ("I don't know.", [], None)
    assert supporting_passages("The lighthouse was built by Ada Thornbury.", [], embedder=embedder) == []


def test_without_an_embedder_only_a_sentence_that_repeats_the_passage_is_cited():
    answer = "The ferry to the islands leaves at seven in the morning. Boats are nice."
    supports = supporting_passages(answer, PASSAGES, embedder=None)
    assert [(s.number, answer[s.start : s.end]) for s in supports] == [
        (3, "The ferry to the islands leaves at seven in the morning.")
    ]


def test_the_models_own_citations_win(embedder):
    text, citations, note = cite_answer("Built by Ada Thornbury [1].", PASSAGES, embedder=embedder)
    assert note is None and [c.number for c in citations] == [1] and "[harbour.pdf, p. 1]" in text
    # markers that name no passage are made up: then the sentences are matched instead
    text, citations, note = cite_answer(
        "The lighthouse was built by Ada Thornbury in 1887 [9].", PASSAGES, embedder=embedder
    )
    assert note == INFERRED_NOTE and [c.number for c in citations] == [2]
