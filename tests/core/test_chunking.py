"""Chunking: the token limit, overlap, page spans, headings kept with their text, nothing lost, speed."""

from __future__ import annotations

import random
import re
import textwrap
import time

import pytest

from macapp.core.docs.chunking import chunk_pages, embedding_text
from macapp.core.docs.pdf import extract_pages
from macapp.core.docs.types import PageText
from tests.fixtures import pdfs

_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")


def wordpiece_count(text: str) -> int:
    """A WordPiece-like count: [CLS] + [SEP], punctuation and digits apart, one piece per 6 letters of a word,
    each CJK character a token (as BERT's basic tokenizer splits them)."""
    n = 2
    for token in _PIECES.findall(text):
        cjk = sum(1 for ch in token if "\u4e00" <= ch <= "\u9fff")
        n += cjk + (1 + (len(token) - cjk - 1) // 6 if len(token) > cjk else 0)
    return n


def char_count(text: str) -> int:
    """A counter that is not additive over words (about 4 characters a token): the exact check must hold."""
    return len(text) // 4 + 2


WORDS = [
    "orchard",
    "apple",
    "pear",
    "cherry",
    "tree",
    "branch",
    "harvest",
    "ladder",
    "basket",
    "autumn",
    "winter",
    "pruning",
    "blossom",
    "bee",
    "soil",
    "root",
    "water",
    "sun",
    "shade",
    "grafting",
    "variety",
    "season",
    "picker",
    "crate",
    "cider",
    "press",
]


def sentence(rng: random.Random, marker: str) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 25))]
    words.insert(rng.randrange(len(words)), marker)
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def book(pages: int = 12, seed: int = 0) -> list[PageText]:
    """Pages of paragraphs; each sentence holds a unique marker word ``sP_N`` (P its page)."""
    rng = random.Random(seed)
    out = []
    for p in range(1, pages + 1):
        paragraphs = []
        for k in range(3):
            text = " ".join(sentence(rng, f"s{p}_{k}_{j}") for j in range(rng.randint(2, 6)))
            paragraphs.append("\n".join(textwrap.wrap(text, 80)))
        out.append(PageText(p, "\n\n".join(paragraphs)))
    return out


def words_of(text: str) -> list[str]:
    return re.findall(r"\w+", text)


@pytest.mark.parametrize("counter", [wordpiece_count, char_count])
@pytest.mark.parametrize("max_tokens,overlap", [(256, 32), (64, 16), (24, 4)])
def test_no_chunk_is_over_the_limit_and_no_word_is_lost(counter, max_tokens, overlap):
    pages = book()
    chunks = chunk_pages(pages, "book.pdf", "abc", counter, max_tokens=max_tokens, overlap_tokens=overlap)
    assert chunks and [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.file == "book.pdf" and c.file_hash == "abc" for c in chunks)
    assert max(counter(embedding_text(c)) for c in chunks) <= max_tokens
    seen = {w for c in chunks for w in words_of(c.text)}
    assert set(words_of(" ".join(p.text for p in pages))) <= seen


def test_consecutive_chunks_overlap():
    chunks = chunk_pages(book(), "b", "h", wordpiece_count, max_tokens=128, overlap_tokens=24)
    assert len(chunks) > 5
    for before, after in zip(chunks, chunks[1:]):
        shared = words_of(after.text)[:4]
        assert " ".join(shared) in " ".join(words_of(before.text)[-40:])
    without = chunk_pages(book(), "b", "h", wordpiece_count, max_tokens=128, overlap_tokens=0)
    assert sum(len(words_of(c.text)) for c in without) < sum(len(words_of(c.text)) for c in chunks)


def test_page_spans_follow_the_text():
    rng = random.Random(5)
    pages = []
    for p in range(1, 31):  # every word names its page; some pages end mid-sentence
        sentences = [
            " ".join(f"p{p}w{rng.randrange(99)}" for _ in range(rng.randint(4, 20))) + "."
            for _ in range(rng.randint(3, 9))
        ]
        text = " ".join(sentences)
        pages.append(PageText(p, text[:-1] if p % 4 == 0 else text))
    chunks = chunk_pages(pages, "b", "h", wordpiece_count, max_tokens=96, overlap_tokens=16)
    for c in chunks:
        seen = {int(m) for m in re.findall(r"\bp(\d+)w\d+", c.text)}
        assert (c.page_start, c.page_end) == (min(seen), max(seen))
    assert any(c.page_start < c.page_end for c in chunks)
    assert chunks[0].page_start == 1 and chunks[-1].page_end == 30


def test_a_sentence_cut_by_a_page_break_spans_both_pages():
    pages = [PageText(1, "The first page ends in the middle of a"), PageText(2, "sentence that goes on. Then more.")]
    (chunk,) = chunk_pages(pages, "b", "h", wordpiece_count)
    assert chunk.text == "The first page ends in the middle of a sentence that goes on. Then more."
    assert (chunk.page_start, chunk.page_end) == (1, 2)
    hyphen = [PageText(1, "A word split by the page is exam-"), PageText(2, "ple text.")]
    assert chunk_pages(hyphen, "b", "h", wordpiece_count)[0].text == "A word split by the page is example text."


HEADED = [
    PageText(1, "1 Introduction\n\nOrchards need care. " + "Apple trees grow slowly in cold soil. " * 30),
    PageText(
        2,
        "The last words of the introduction.\n2.1 Pruning Young Trees\nCut in winter when the sap "
        "is low. Keep the centre open.\n\nHarvest Time\n\nPick apples when they come away easily.",
    ),
]


def test_headings_start_chunks_and_stay_with_their_text():
    chunks = chunk_pages(HEADED, "b", "h", wordpiece_count, max_tokens=64, overlap_tokens=8)
    headings = [c.heading for c in chunks]
    assert headings[0] == "1 Introduction" and "2.1 Pruning Young Trees" in headings and headings[-1] == "Harvest Time"
    firsts = {}
    for c in chunks:
        firsts.setdefault(c.heading, c)
    for heading, first in firsts.items():
        assert first.text.startswith(f"{heading}\n")  # the heading line, then its body in the same chunk
        assert len(first.text) > len(heading) + 10
    pruning = firsts["2.1 Pruning Young Trees"]
    assert pruning.text == "2.1 Pruning Young Trees\nCut in winter when the sap is low. Keep the centre open."
    assert pruning.page_start == pruning.page_end == 2
    continuation = [c for c in chunks if c.heading == "1 Introduction"][1]
    assert not continuation.text.startswith("1 Introduction")
    assert embedding_text(continuation) == f"1 Introduction\n{continuation.text}"
    assert embedding_text(pruning) == pruning.text
    assert not any(c.text.rstrip().endswith(("Introduction", "Trees", "Harvest Time")) for c in chunks)


def test_consecutive_heading_lines_merge():
    pages = [PageText(1, "Chapter 3\n\nMethods\n\nWe measured every tree twice.")]
    (chunk,) = chunk_pages(pages, "b", "h", wordpiece_count)
    assert chunk.heading == "Chapter 3 Methods"
    assert chunk.text == "Chapter 3 Methods\nWe measured every tree twice."
    assert embedding_text(chunk) == chunk.text


@pytest.mark.parametrize(
    "text",
    [
        "We did things.\n\nsmall caps start\n\nThe end of it all.",  # a sentence; a lowercase line
        # a count, not a number
        "Our work is done.\n3 apples were picked\non the first day of the harvest in the year.",
        "Our work is done.\nDie Apfelbäume Im Norden Werden Beschnitten Und Geerntet\nvon den Bauern.",  # a body line
        "The last block on the page\n\n",  # a line at the foot of a page
    ],
)
def test_sentences_and_body_lines_are_not_headings(text):
    pages = [PageText(1, text), PageText(2, "Then the next page goes on.")]
    assert all(c.heading is None for c in chunk_pages(pages, "b", "h", wordpiece_count))


def test_running_headers_and_page_numbers_are_dropped():
    pages = [
        PageText(p, f"Journal of Orchards, Vol. 3\n\nBody text number {p} is here. It goes on.\n\n{p}")
        for p in range(1, 7)
    ]
    chunks = chunk_pages(pages, "b", "h", wordpiece_count)
    text = " ".join(c.text for c in chunks)
    assert "Journal" not in text and all(c.heading is None for c in chunks)
    assert all(f"Body text number {p} is here." in text for p in range(1, 7))
    assert not re.search(r"(?<!number )\b[1-6]\b(?! is)", text)


def test_over_long_sentences_and_words_are_cut_to_fit():
    giant_word = "x" * 3000
    long_sentence = " ".join(f"w{i}" for i in range(800))
    cjk = "敏捷的棕色狐狸跳过了懒狗" * 60
    pages = [PageText(1, long_sentence), PageText(2, giant_word), PageText(3, cjk)]
    chunks = chunk_pages(pages, "b", "h", wordpiece_count, max_tokens=64, overlap_tokens=8)
    assert max(wordpiece_count(embedding_text(c)) for c in chunks) <= 64
    assert {f"w{i}" for i in range(800)} <= {w for c in chunks for w in c.text.split()}
    assert "".join(c.text for c in chunks if c.page_start <= 2 <= c.page_end).count("x") >= 3000
    assert "".join(c.text for c in chunks if c.page_end == 3).count("狐") >= 60


def test_empty_input_gives_no_chunks():
    assert chunk_pages([], "b", "h", wordpiece_count) == []
    assert chunk_pages([PageText(1, ""), PageText(2, "  \n\n ")], "b", "h", wordpiece_count) == []


def test_chunks_from_a_real_pdf_with_headings_and_non_latin_text(tmp_path):
    path = pdfs.make_pdf(
        tmp_path / "mixed.pdf",
        [
            "# 1 Orchards\nApple trees grow slowly. " * 1 + "They need sun and water every season.",
            "# 2 Ελληνικά\n" + pdfs.GREEK,
            "# 3 中文\n" + pdfs.CHINESE,
        ],
    )
    gen = extract_pages(path)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            pages = stop.value
            break
    chunks = chunk_pages(pages, path.name, "h", wordpiece_count)
    assert [(c.heading, c.page_start, c.page_end) for c in chunks] == [
        ("1 Orchards", 1, 1),
        ("2 Ελληνικά", 2, 2),
        ("3 中文", 3, 3),
    ]
    assert chunks[1].text == f"2 Ελληνικά\n{pdfs.GREEK}" and chunks[2].text == f"3 中文\n{pdfs.CHINESE}"


def test_three_hundred_pages_chunk_in_well_under_a_second():
    rng = random.Random(3)
    pages = []
    for p in range(1, 301):
        paragraphs = [f"{p}. Section Heading Number {p}"] if p % 7 == 1 else []
        for _ in range(4):
            text = " ".join(sentence(rng, f"m{p}") for _ in range(7))
            paragraphs.append("\n".join(textwrap.wrap(text, 90)))
        pages.append(PageText(p, "\n\n".join(paragraphs)))
    started = time.perf_counter()
    chunks = chunk_pages(pages, "big.pdf", "h", wordpiece_count)
    elapsed = time.perf_counter() - started
    assert len(chunks) > 300 and max(wordpiece_count(embedding_text(c)) for c in chunks) <= 256
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_a_heading_stays_with_a_sentence_that_fills_the_chunk():
    body = "Trees " + " ".join(["grow"] * 27) + "."
    pages = [PageText(1, f"Intro text here.\n\n2 Results Overview\n\n{body}\n\nMore text follows here.")]
    chunks = chunk_pages(pages, "b", "h", wordpiece_count, max_tokens=34, overlap_tokens=4)
    assert max(wordpiece_count(embedding_text(c)) for c in chunks) <= 34
    results = [c for c in chunks if c.heading == "2 Results Overview"]
    assert results[0].text.startswith("2 Results Overview\nTrees grow")


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_keep_every_promise(seed):
    rng = random.Random(seed)
    counter = rng.choice([wordpiece_count, char_count])
    max_tokens = rng.choice([16, 24, 40, 64, 128, 256])
    overlap = rng.choice([0, 2, 8, 32])
    pages = []
    for p in range(1, rng.randint(1, 8) + 1):
        blocks = []
        for _ in range(rng.randint(0, 5)):
            kind = rng.random()
            if kind < 0.2:
                blocks.append(f"{rng.randint(1, 9)}.{rng.randint(1, 9)} {rng.choice(WORDS).title()} Part")
            elif kind < 0.25:
                blocks.append("z" * rng.randint(50, 400))
            else:
                text = " ".join(sentence(rng, f"q{p}x{rng.randrange(999)}") for _ in range(rng.randint(1, 8)))
                blocks.append("\n".join(textwrap.wrap(text, rng.choice([40, 80]))) + rng.choice(["", "", " and"]))
        pages.append(PageText(p, "\n\n".join(blocks)))
    chunks = chunk_pages(pages, "b", "h", counter, max_tokens=max_tokens, overlap_tokens=overlap)
    assert all(counter(embedding_text(c)) <= max_tokens for c in chunks)
    assert all(1 <= c.page_start <= c.page_end <= len(pages) for c in chunks)
    assert all(c.heading is None or c.text.strip() != c.heading for c in chunks)  # never a heading alone
    words = {w for c in chunks for w in words_of(c.text)}
    expected = {w for p in pages for w in words_of(p.text) if not w.startswith("z")}
    assert expected <= words
    zs = sum(len(w) for p in pages for w in words_of(p.text) if w.startswith("z"))
    assert sum(len(w) for c in chunks for w in words_of(c.text) if w.startswith("z")) >= zs
