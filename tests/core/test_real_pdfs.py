"""Real PDFs we did not make (Debian manuals, fetched by `make setup`): every one ingests with the bundled
embedder, every page with text is indexed, hits name the exact page and the top k are distinct pages.

The corpus is ingested once per session (the ``real_pdfs`` fixture, a few minutes on a busy machine).
"""

from __future__ import annotations

import re

import pytest

from macapp.core.docs import retrieve
from macapp.core.docs.chunking import _strip_running_lines, embedding_text
from macapp.core.docs.pages import PagedText
from macapp.core.docs.pdf import extract_pages
from macapp.core.progress import drain
from tests.fixtures.real_pdfs import COLLECTION, corpus_names, corpus_paths

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the session's one ingest runs in the first test


def content_pages(path) -> set[int]:
    """Pages holding text beyond running headers/footers and page numbers."""
    _, pages = drain(extract_pages(path))
    return {page for page, blocks in _strip_running_lines(pages) if blocks}


def test_every_real_pdf_ingests_and_every_page_with_text_is_indexed(real_pdfs):
    outcomes = {o.file: o for o in real_pdfs.outcomes}
    assert sorted(outcomes) == sorted(corpus_names())
    assert all(o.status == "added" for o in outcomes.values()), [(o.file, o.message) for o in outcomes.values()]
    row = real_pdfs.index.collection(COLLECTION)
    files = {f.name: f for f in real_pdfs.index.chunks.files(row.id)}
    for path in corpus_paths():
        chunks = real_pdfs.index.chunks.file_chunks(files[path.name].id)
        assert len(chunks) == outcomes[path.name].chunks > 0
        indexed = {page for c in chunks for page, _, _ in retrieve.chunk_paged(c).parts()}
        missing = content_pages(path) - indexed
        assert not missing, f"{path.name}: pages with text but no passage: {sorted(missing)[:20]}"
        assert max(real_pdfs.embedder.count_tokens(embedding_text(c)) for c in chunks) <= real_pdfs.embedder.max_tokens
    assert real_pdfs.index.vectors.count(row.vector_key) == sum(o.chunks for o in outcomes.values())
    print(
        f"real corpus: {sum(o.pages for o in outcomes.values())} pages, "
        f"{sum(o.chunks for o in outcomes.values())} passages in {real_pdfs.seconds:.0f} s"
    )


def facts_on_later_pages(chunks, want: int = 6) -> list[tuple[str, int]]:
    """Sentences of 6+ words on a page other than the first of their passage, spread over the file:
    (sentence, its page), one per page."""
    found: dict[int, str] = {}
    for chunk in chunks:
        paged: PagedText = retrieve.chunk_paged(chunk)
        for page, start, end in paged.parts()[1:]:
            for sentence in re.split(r"(?<=[.:])\s+|\n+", paged.text[start:end]):
                if 6 <= len(re.findall(r"[A-Za-z]{3,}", sentence)) <= 30 and page not in found:
                    found[page] = sentence.strip()
    pages = sorted(found)
    return [(found[p], p) for p in pages[:: max(1, len(pages) // want)][:want]]


@pytest.mark.parametrize("name", ["debian-reference.en.pdf", "debmake-doc.en.pdf"])
def test_a_sentence_on_a_later_page_of_a_passage_is_found_on_its_own_page(real_pdfs, name):
    row = real_pdfs.index.collection(COLLECTION)
    (file,) = [f for f in real_pdfs.index.chunks.files(row.id) if f.name == name]
    facts = facts_on_later_pages(real_pdfs.index.chunks.file_chunks(file.id))
    assert len(facts) == 6
    later = 0  # hits whose page is not the first of their passage: the old answer would have been wrong
    for sentence, page in facts:
        for mode in ("keyword", "hybrid"):
            hits = retrieve.query(
                COLLECTION, sentence, k=5, mode=mode, embedder=real_pdfs.embedder, index=real_pdfs.index
            )
            holding = [h for h in hits if h.file == name and sentence in h.text]
            assert holding or mode != "keyword", sentence  # whether hybrid ranks it top 5 is retrieval quality
            for hit in holding:
                assert hit.page == page, (mode, sentence, hit.page, hit.page_start, hit.page_end)
                assert hit.quote and hit.quote in hit.text
                later += hit.page > hit.page_start
    assert later >= 3


@pytest.mark.parametrize(
    "question",
    ["how do I use aptitude's full screen interface", "which debmake option sets the binary package type", "package"],
)  # one word most pages hold: the crowd is largest
def test_top_five_are_five_different_pages(real_pdfs, question):
    for mode in ("hybrid", "vector", "keyword"):
        hits = retrieve.query(COLLECTION, question, k=5, mode=mode, embedder=real_pdfs.embedder, index=real_pdfs.index)
        pages = [(h.file, h.page) for h in hits]
        assert len(hits) == 5 and len(set(pages)) == 5, (mode, pages)


def test_a_question_the_manuals_do_not_cover_finds_nothing_and_their_own_questions_do(real_pdfs):
    from macapp.core.docs.answer import find_passages

    def found(question: str) -> list:
        return find_passages(COLLECTION, question, embedder=real_pdfs.embedder, index=real_pdfs.index)

    for question in (
        "What is the boiling point of tungsten?",
        "What is the capital of Australia?",
        "How do I bake sourdough bread at home?",
    ):  # one common word ("point") is no cover
        assert found(question) == [], question
    for question in (
        "How can an administrator let other people do limited system administration?",
        "Which debmake option sets the binary package type?",
        "pam_securetty",
    ):
        assert found(question), question
