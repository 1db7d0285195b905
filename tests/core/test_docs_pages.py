"""The exact page: a passage may span pages, every hit and citation names the page of the text it stands for;
the top k are k different pages. Generated PDFs with small pages (several per chunk), the real embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from macapp.core.docs import ingest, retrieve
from macapp.core.docs.answer import resolve_citations
from macapp.core.docs.index import DocumentIndex
from macapp.core.docs.pages import PagedText, best_page
from macapp.core.progress import drain
from tests.fixtures import pdfs

FILLER = [
    "The orchard path runs along the old stone wall.",
    "Visitors often stop to read the signs.",
    "The weather in spring is mild and bright.",
    "Paths are swept every morning by the staff.",
]
FACTS = {  # page -> (a fact only that page holds, a question about it)
    2: (
        "The quince trees were grafted onto hawthorn rootstock in 1921.",
        "what rootstock were quince trees grafted onto",
    ),
    3: ("A barn owl nests in the cider press shed every winter.", "where does the barn owl nest"),
    5: ("Medlar fruit must be bletted until soft before it is eaten.", "how is medlar fruit prepared before eating"),
    20: ("The beehives are painted pale blue to calm the colonies.", "what colour are the beehives painted"),
}
PAGES = 24


def small_pages() -> list[str]:
    """Short pages: two filler sentences each, one fact on a few; a chunk of 256 tokens spans several pages."""
    out = []
    for page in range(1, PAGES + 1):
        lines = [FILLER[page % 4], FILLER[(page + 1) % 4]]
        if page in FACTS:
            lines.insert(1, FACTS[page][0])
        out.append(" ".join(lines))
    return out


@pytest.fixture(scope="module")
def embedder():
    from macapp.core.docs.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="module")
def small(tmp_path_factory, embedder):
    folder = tmp_path_factory.mktemp("small-pages")
    pdfs.make_pdf(folder / "small.pdf", small_pages())
    index = DocumentIndex(tmp_path_factory.mktemp("small-index"))
    _, outcomes = drain(ingest.add_files("Small", [folder / "small.pdf"], embedder, index=index))
    assert outcomes[0].status == "added"
    yield index
    index.close()


def test_paged_text_keeps_its_pages_through_slicing_and_joining():
    text = PagedText("one. two. three. four.", 3, (5, 10, 10))  # page 5 is blank: it starts where page 6 does
    assert [text.page_at(i) for i in (0, 4, 5, 9, 10, 21)] == [3, 3, 4, 4, 6, 6]
    assert text.page_end == 6 and [p for p, _, _ in text.parts()] == [3, 4, 6]
    tail = text.slice(7)
    assert (tail.text, tail.page_start, tail.breaks) == ("o. three. four.", 4, (3, 3))
    joined = PagedText("zero ", 2) + text
    assert joined.page_start == 2 and joined.breaks == (5, 10, 15, 15) and joined.page_at(5) == 3
    again = text + PagedText(" four. five.", 6, (7,))  # already on page 6: only page 7 adds a break
    assert again.breaks == (5, 10, 10, len(text.text) + 7)
    assert PagedText("  x  ", 1, (1,)).strip() == PagedText("x", 2, ())


def test_best_page_is_the_page_of_the_matching_sentences():
    paged = PagedText("Apples ripen in autumn. Pears ripen later.\n\nPlums are picked in August. Figs too.", 7, (43,))
    match = best_page(paged, "when are plums picked?")
    assert (match.page, match.quote) == (8, "Plums are picked in August.")
    assert best_page(paged, "apples in autumn").page == 7
    # No shared word: the embedder's similarity per page decides, and the page's part is the quote.
    match = best_page(paged, "stone fruit harvest month", {7: 0.1, 8: 0.6})
    assert match.page == 8 and match.quote.startswith("Plums")


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_a_fact_on_a_page_packed_with_others_reports_exactly_that_page(small, embedder, mode):
    spans = []
    for page, (fact, question) in FACTS.items():
        (best,) = retrieve.query("Small", question, k=1, mode=mode, embedder=embedder, index=small)
        assert best.page == page, (mode, question, best.page, best.page_start, best.page_end)
        assert fact in best.text and best.quote in best.text and fact.split()[1] in best.quote
        spans.append(best.page_end - best.page_start)
    assert max(spans) >= 2  # the passages really span pages: the first page of the span would be wrong


def test_neighbours_widen_the_span_but_keep_the_exact_page(small, embedder):
    (hit,) = retrieve.query("Small", FACTS[20][1], k=1, embedder=embedder, index=small)
    (wide,) = retrieve.query("Small", FACTS[20][1], k=1, neighbours=1, embedder=embedder, index=small)
    assert wide.page == hit.page == 20 and wide.page_start <= hit.page_start and len(wide.text) > len(hit.text)
    assert wide.paged.page_at(wide.text.index(FACTS[20][0])) == 20


def test_top_k_are_distinct_pages_taking_the_next_best_passage(tmp_path, embedder):
    crowded = " ".join(f"Pruning apple trees in winter keeps the crown open, rule {n}." for n in range(60))
    tips = [
        "cut above an outward bud",
        "remove crossing branches first",
        "seal large wounds in dry weather",
        "thin the fruit spurs of old trees",
        "never take more than a quarter of the wood",
        "burn cankered wood",
    ]
    pages = [crowded] + [f"# {tip.title()}\nWhen pruning apple trees, {tip}." for tip in tips]
    with DocumentIndex(tmp_path / "index") as index:
        drain(ingest.add_files("Crowd", [pdfs.make_pdf(tmp_path / "crowd.pdf", pages)], embedder, index=index))
        assert index.chunks.files()[0].chunks >= 4  # page 1 alone makes several passages
        for mode in ("hybrid", "keyword", "vector"):
            hits = retrieve.query("Crowd", "pruning apple trees", k=5, mode=mode, embedder=embedder, index=index)
            assert len(hits) == 5 and len({h.page for h in hits}) == 5, (mode, [h.page for h in hits])
        # Fewer pages match than asked for: one hit per page that matches.
        hits = retrieve.query("Crowd", "crown", k=5, mode="keyword", index=index)
        assert [h.page for h in hits] == [1]


def test_a_citation_names_the_page_of_the_sentences_the_answer_used(small, embedder):
    (hit,) = retrieve.query("Small", "barn owl nest and quince rootstock", k=1, mode="keyword", index=small)
    assert hit.page_start <= 2 and hit.page_end >= 3
    text, citations = resolve_citations("A barn owl nests in the shed [1]. Quince was grafted on hawthorn [1].", [hit])
    assert [(c.number, c.page) for c in citations] == [(1, 2), (1, 3)]
    assert text == "A barn owl nests in the shed [small.pdf, p. 3]. Quince was grafted on hawthorn [small.pdf, p. 2]."
    assert "barn owl" in citations[1].quote and citations[1].to_json()["page_start"] == hit.page_start


def test_docs_query_json_gives_the_exact_page_and_the_span(tmp_path):
    path = pdfs.make_pdf(tmp_path / "small.pdf", small_pages())
    env = dict(os.environ)

    def macapp(*args):
        run = subprocess.run(
            [sys.executable, "-m", "macapp.cli.main", "docs", *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    macapp("add", "Small", str(path), "--json")
    hits = json.loads(macapp("query", "Small", FACTS[5][1], "-k", "3", "--json"))
    assert hits[0]["page"] == 5 and hits[0]["page_start"] <= 5 <= hits[0]["page_end"]
    assert "bletted" in hits[0]["quote"] and len({h["page"] for h in hits}) == len(hits)
    assert "p. 5" in macapp("query", "Small", FACTS[5][1], "-k", "1")


def test_an_answer_uses_the_freed_slots_for_evidence_from_other_pages(tmp_path, embedder):
    from macapp.core.docs.answer import ask
    from macapp.core.engines.fake import FakeEngine

    crowded = " ".join(f"Bees fly to clover, fact {n}: a forager visits many flowers a day." for n in range(80))
    others = {
        "Lavender": "Bees also fly to lavender, which blooms in midsummer and feeds them for weeks.",
        "Ivy": "In autumn bees fly to ivy, the last big flow of nectar before winter.",
        "Willow": "Bees fly to willow catkins in early spring for their first pollen.",
    }
    weather = " ".join(f"The weather station logged rain on day {n} and a light westerly wind." for n in range(150))
    pages = [crowded]
    for title, text in others.items():  # each between pages of other matter, so no two hits' neighbours touch
        pages += [f"# {title}\n{text}", f"# Weather {title}\n{weather}"]
    engine = FakeEngine(n_ctx=8192)  # too small for the whole document: the answer gets retrieved passages
    drain(engine.load())
    engine.enqueue(["Clover [1], lavender [2], ivy [3] and willow [4]."])
    with DocumentIndex(tmp_path / "index") as index:
        drain(ingest.add_files("Bees", [pdfs.make_pdf(tmp_path / "bees.pdf", pages)], embedder, index=index))
        assert index.chunks.files()[0].chunks >= 10
        _, answer = drain(ask("Bees", "which flowers do bees fly to?", engine, k=4, embedder=embedder, index=index))
    assert len(answer.passages) == 4 and len({p.page for p in answer.passages}) == 4, [
        (p.page, p.page_start, p.page_end) for p in answer.passages
    ]
    prompt = engine.prompts[0][-1]["content"]
    assert all(text in prompt for text in others.values())  # every page's evidence, not four pieces of page 1
    assert {p.page for p in answer.passages} == {1, 2, 4, 6}


def test_passages_indexed_before_pages_were_recorded_name_their_first_page(tmp_path):
    from tests.core.test_docs_index import HashEmbedder

    with DocumentIndex(tmp_path / "index") as index:
        drain(
            ingest.add_files("Old", [pdfs.make_pdf(tmp_path / "small.pdf", small_pages())], HashEmbedder(), index=index)
        )
        with index.chunks.transaction() as db:
            db.execute("UPDATE chunks SET page_breaks = NULL")  # as the migration leaves older rows
        hits = retrieve.query("Old", FACTS[5][1], k=3, mode="keyword", index=index)
    assert hits and all(h.page == h.page_start and h.page_breaks == () for h in hits)
    assert any(h.page_end > h.page_start for h in hits) and FACTS[5][0] in hits[0].text
