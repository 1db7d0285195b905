"""Chunking never fails and never breaks its limit, whatever a page holds (property tests with hypothesis).

Counters cover the ways real tokenizers map characters to tokens: WordPiece-like (additive over words), one
token per four characters (not additive), byte-level (a character is 1-4 tokens) and one that makes combining
marks expensive (a single character with its marks can outgrow a chunk).
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macapp.core.docs.chunking import _strip_running_lines, chunk_pages, embedding_text
from macapp.core.docs.pages import page_at
from macapp.core.docs.types import PageText
from tests.core.test_chunking import char_count, wordpiece_count


def byte_count(text: str) -> int:
    """Byte-level BPE at its worst: every UTF-8 byte a token, plus two markers."""
    return len(text.encode("utf-8")) + 2


def heavy_marks_count(text: str) -> int:
    """Combining marks cost three tokens each: a base with many marks is one character longer than a chunk."""
    return 2 + sum(3 if unicodedata.combining(ch) else 1 for ch in text if not ch.isspace())


COUNTERS = [wordpiece_count, char_count, byte_count, heavy_marks_count]

any_text = st.text(st.characters(codec="utf-8"), max_size=600)
scripts = st.sampled_from(
    [
        "敏捷的棕色狐狸跳过了懒狗",
        "мы пошли в сад",
        "η γρήγορη αλεπού",
        "مرحبا بالعالم",
        "🍎🍐🍒👩‍👩‍👧‍👦🏳️‍🌈",
        "e\u0301\u0302\u0303",
        "\u0301\u0302\u0303\u0304",
        "–—‘’“”…",
        "ǅ ß ﬁ Ⅻ ",
        "x",
        " ",
        "\u200d",
        "1.2",
        "Title Case Line",
    ]
)
mixed_text = st.lists(st.one_of(scripts, any_text), max_size=40).map(lambda parts: "".join(parts))
page_texts = st.one_of(
    mixed_text,
    st.lists(scripts, max_size=80).map("\n\n".join),  # many short blocks: heading-like lines
    st.sampled_from(["", " ", "\n\n", "–", "\u0301" * 500, "🍎" * 300, "狐" * 700, "x" * 3000]),
)


def _settings(**kw):
    return settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **kw)


def check(pages: list[PageText], counter, max_tokens: int, overlap: int) -> list:
    chunks = chunk_pages(pages, "f.pdf", "h", counter, max_tokens=max_tokens, overlap_tokens=overlap)
    for i, c in enumerate(chunks):
        assert c.index == i and c.text.strip()
        assert counter(embedding_text(c)) <= max_tokens
        assert 1 <= c.page_start <= c.page_end <= len(pages)
        assert len(c.page_breaks) == c.page_end - c.page_start
        assert list(c.page_breaks) == sorted(c.page_breaks) and all(0 < b <= len(c.text) for b in c.page_breaks)
    kept = {ch for _, blocks in _strip_running_lines(pages) for block in blocks for line in block for ch in line}
    found = {ch for c in chunks for ch in c.text}
    assert {ch for ch in kept if not ch.isspace() and ch != "-"} <= found  # nothing lost ("-": "exam-" + "ple")
    return chunks


@given(
    pages=st.lists(page_texts, min_size=1, max_size=5),
    counter=st.sampled_from(COUNTERS),
    max_tokens=st.sampled_from([12, 16, 24, 64, 256]),
    overlap=st.sampled_from([0, 4, 32]),
)
@_settings(max_examples=300)
def test_any_text_chunks_within_the_limit_and_loses_nothing(pages, counter, max_tokens, overlap):
    check([PageText(p, t) for p, t in enumerate(pages, start=1)], counter, max_tokens, overlap)


@given(
    lines=st.lists(
        st.sampled_from(["Title Line", "Chapter Nine", "Section A", "1.2 Setup", "–"]), min_size=1, max_size=300
    ),
    body=st.sampled_from(["–", "x", "A short body.", "狐狸", "e\u0301" * 40]),
    counter=st.sampled_from(COUNTERS),
    max_tokens=st.sampled_from([12, 24, 256]),
)
@_settings(max_examples=150)
def test_huge_heading_runs_never_fail(lines, body, counter, max_tokens):
    """A table of contents or a title page is a long run of heading-like lines followed by a little text."""
    check([PageText(1, "\n\n".join(lines) + "\n\n" + body), PageText(2, "The end.")], counter, max_tokens, 8)


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("text", ["–", " ", "\u0301", "🍎", "狐", "\u200d", "x\n\n", "\n\n\n"])
def test_pages_of_one_character(counter, text):
    chunks = check([PageText(p, text) for p in range(1, 6)], counter, 12, 4)
    assert all(not c.text.isspace() for c in chunks)


def test_the_real_manual_failure_a_dash_after_a_long_heading_run():
    """What failed on a real manual: a long run of title-like lines, then a page starting with "–"."""
    toc = "\n\n".join(f"Chapter Title Number {n}" for n in range(60))
    pages = [PageText(1, toc + "\n\n– a dash starts this line."), PageText(2, "–")]
    chunks = check(pages, wordpiece_count, 24, 4)
    assert "– a dash starts this line." in " ".join(c.text for c in chunks)


def test_one_character_with_many_marks_is_split_and_a_lone_oversized_character_is_dropped(caplog):
    zalgo = "e" + "\u0301" * 200
    chunks = check([PageText(1, zalgo)], heavy_marks_count, 16, 0)
    assert "".join(c.text for c in chunks).count("\u0301") == 200
    # A counter for which one character is longer than a chunk: dropped with a warning, never an exception.
    huge = lambda text: 2 + 100 * text.count("☃") + len(text.split())  # noqa: E731
    chunks = chunk_pages([PageText(1, "snow ☃ man")], "f", "h", huge, max_tokens=24, overlap_tokens=0)
    assert "☃" not in " ".join(c.text for c in chunks) and "snow" in chunks[0].text
    assert "longer than a chunk" in caplog.text


@given(
    pages=st.lists(
        st.lists(
            st.sampled_from(["Apples grow.", "Pears too.", "狐狸跳。", "Figs,", "ripe", "– dash", "#", "\n\n"]),
            max_size=30,
        ).map(" ".join),
        min_size=1,
        max_size=12,
    ),
    max_tokens=st.sampled_from([24, 64, 256]),
)
@_settings(max_examples=200)
def test_page_breaks_put_every_word_on_its_own_page(pages, max_tokens):
    """Each word carries its page number; ``page_at`` of its offset in a chunk must name that page."""
    tagged = [
        PageText(p, re.sub(r"(\w+)", lambda m, p=p: f"{m.group(1)}P{p}", text)) for p, text in enumerate(pages, start=1)
    ]
    chunks = check(tagged, wordpiece_count, max_tokens, 8)
    for c in chunks:
        for m in re.finditer(r"\w+?P(\d+)", c.text):
            assert page_at(m.start(), c.page_start, c.page_breaks) == int(m.group(1)), (c.text, m.group())


@pytest.fixture(scope="module")
def minilm():
    """The bundled embedder's own tokenizer (WordPiece through llama.cpp), as ingest counts."""
    from macapp.core.docs.embedder import LlamaEmbedder, bundled_embedder_path

    return LlamaEmbedder(bundled_embedder_path(), n_threads=1)


@given(pages=st.lists(page_texts, min_size=1, max_size=4), max_tokens=st.sampled_from([16, 64, 256]))
@_settings(max_examples=120)
def test_the_real_tokenizer_on_any_text(minilm, pages, max_tokens):
    check([PageText(p, t) for p, t in enumerate(pages, start=1)], minilm.count_tokens, max_tokens, 8)
