"""Sources for answers that cite none (small models never write [n]): the passage holding the answer's words."""

from __future__ import annotations

from macapp.core.docs.retrieve import Passage
from macapp.core.docs.support import INFERRED_NOTE, cite_answer, supporting_passages

PASSAGES = [
    Passage("harbour.pdf", 1, 1, "The harbour master keeps the tide tables in the blue office.", 1.0, 0, "h"),
    Passage("harbour.pdf", 2, 2, "The Glimmerfen lighthouse was built in 1887 by the engineer Ada Thornbury.", 1.0, 1,
            "h"),
    Passage("ferries.pdf", 5, 6, "The morning ferry to the islands leaves at seven and returns before noon.", 1.0, 0,
            "h"),
]


def test_the_passage_holding_the_answers_words_is_its_source():
    answer = "The lighthouse at the Glimmerfen island was built by the engineer Ada Thornbury."
    assert supporting_passages(answer, PASSAGES) == [2]
    text, citations, note = cite_answer(answer, PASSAGES)
    assert text == answer and note == INFERRED_NOTE  # the model's words stay as written
    assert [(c.number, c.file, c.page) for c in citations] == [(2, "harbour.pdf", 2)]
    assert supporting_passages("The ferry leaves the islands at seven in the morning.", PASSAGES) == [3]


def test_no_source_is_named_for_an_answer_the_passages_do_not_hold():
    assert supporting_passages("The documents don't say.", PASSAGES) == []
    assert supporting_passages("Thornbury designed bridges across Scotland and Wales for decades.", PASSAGES) == []
    assert cite_answer("I don't know.", PASSAGES) == ("I don't know.", [], None)
    assert supporting_passages("The lighthouse was built by Ada Thornbury.", []) == []


def test_the_models_own_citations_win():
    text, citations, note = cite_answer("Built by Ada Thornbury [1].", PASSAGES)
    assert note is None and [c.number for c in citations] == [1] and "[harbour.pdf, p. 1]" in text
