"""Retrieval quality on real manuals: recall@1, recall@5 and MRR by exact page, per question type, against BM25.

The corpus is two real Debian manuals (Debian Reference, 261 pages; Debian Policy, 193 pages) that
``make setup`` fetches into tests/data/pdfs/real (scripts/fetch-test-pdfs.sh). The questions are in
bench/data/manual_questions.json: 47 in all, most of them written *not* to reuse the page's words
(``paraphrase``: the same fact in other words; ``concept``: the idea or purpose behind it; ``keyword``: the
page's own terms). Each names the page that answers it and an ``evidence`` phrase of that page: every page
whose text holds the phrase counts as a right answer too, except table-of-contents pages (dot leaders),
which name a section without answering anything.

A hit is a passage whose exact page (``Passage.page``, what the citation shows) is a right page: the span a
passage covers does not count. Modes are ``retrieve.MODES`` in the same run, with ``keyword`` (plain BM25
over FTS5) as the baseline. ``query_ms_p50`` is the median wall time of a hybrid query, embedding included.

Usage: ``python -m bench.manual_retrieval [--show-misses]``; the last line reads ``recall5_hybrid=…
recall1_hybrid=… mrr_hybrid=… recall5_keyword=… … ratio_recall5=… questions=…`` (ratio: hybrid over BM25).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "pdfs" / "real"
QUESTIONS = Path(__file__).resolve().parent / "data" / "manual_questions.json"
TYPES = ("keyword", "paraphrase", "concept")
DEPTH = 10  # passages ranked per question (MRR is 0 past this)
_TOC = re.compile(r"(?:\.\s){8,}")  # dot leaders: a table-of-contents page


def normalise(text: str) -> str:
    """Text compared for evidence: typographic quotes and hyphens made plain, whitespace collapsed, lower case."""
    table = str.maketrans({"’": "'", "‘": "'", "”": '"', "“": '"', "\u2010": "-", "\ufffe": None, "\u00ad": None})
    return " ".join(text.translate(table).split()).lower()


def page_texts(pdf: Path) -> dict[int, str]:
    from macapp.core.docs.pdf import extract_pages
    from macapp.core.progress import drain

    return {p.page: p.text for p in drain(extract_pages(pdf))[1]}


def right_pages(question: dict, pages: dict[int, str]) -> set[int]:
    """The pages that answer ``question``: its own page and any other non-contents page holding its evidence."""
    evidence = normalise(question["evidence"])
    found = {n for n, text in pages.items() if evidence in normalise(text) and not _TOC.search(text)}
    if question["page"] not in found:
        raise SystemExit(
            f"manual_retrieval: the evidence {question['evidence']!r} is not on "
            f"{question['file']} p. {question['page']} (did the PDF change?)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show-misses", action="store_true", help="print the questions hybrid misses in its top 5")
    ap.add_argument(
        "--home",
        type=Path,
        help="keep the index in this MACAPP_HOME and reuse it on the next run "
        "(to try retrieval changes without re-ingesting; delete it after changing ingest)",
    )
    args = ap.parse_args(argv)
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    files = sorted({q["file"] for q in questions})
    missing = [f for f in files if not (CORPUS / f).is_file()]
    if missing:
        print(f"manual_retrieval: {', '.join(missing)} missing from {CORPUS}: run `make setup`", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MACAPP_HOME"] = str(args.home or Path(tmp) / "home")
        from macapp.core.docs import ingest, retrieve
        from macapp.core.docs.embedder import load_embedder
        from macapp.core.docs.index import DocumentIndex
        from macapp.core.progress import drain

        texts = {f: page_texts(CORPUS / f) for f in files}
        right = [right_pages(q, texts[q["file"]]) for q in questions]
        embedder = load_embedder()
        with DocumentIndex() as index:
            start = time.perf_counter()
            _, outcomes = drain(ingest.add_files("Manuals", [CORPUS / f for f in files], embedder, index=index))
            ingest_s = time.perf_counter() - start
            bad = [o for o in outcomes if o.status not in ("added", "skipped")]  # skipped: kept by --home
            if bad:
                print(f"manual_retrieval: not added: {bad}", file=sys.stderr)
                return 1
            retrieve.query("Manuals", "warm up", embedder=embedder, index=index)
            ranks: dict[str, list[int | None]] = {m: [] for m in retrieve.MODES}
            timings: list[float] = []
            for q, pages in zip(questions, right):
                for mode in retrieve.MODES:
                    t0 = time.perf_counter()
                    hits = retrieve.query("Manuals", q["question"], k=DEPTH, mode=mode, embedder=embedder, index=index)
                    if mode == "hybrid":
                        timings.append(time.perf_counter() - t0)
                    ranks[mode].append(
                        next((r for r, p in enumerate(hits, start=1) if p.file == q["file"] and p.page in pages), None)
                    )
                    if mode == "hybrid" and args.show_misses and not (ranks[mode][-1] and ranks[mode][-1] <= 5):
                        got = ", ".join(f"p.{p.page}" for p in hits[:5])
                        print(f"  miss [{q['type']}] {q['file']} p.{q['page']}: {q['question']}  -> {got}")

    def recall(found: list[int | None], at: int) -> float:
        return sum(1 for r in found if r and r <= at) / len(found) if found else 0.0

    def mrr(found: list[int | None]) -> float:
        return sum(1 / r for r in found if r) / len(found) if found else 0.0

    def of_type(mode: str, kind: str | None) -> list[int | None]:
        return [r for r, q in zip(ranks[mode], questions) if kind is None or q["type"] == kind]

    counts = {t: sum(1 for q in questions if q["type"] == t) for t in TYPES}
    print(
        f"{len(questions)} questions ({', '.join(f'{counts[t]} {t}' for t in TYPES)}) over "
        f"{', '.join(f'{f} ({len(texts[f])} pp.)' for f in files)}; ingest {ingest_s:.1f} s"
    )
    print(f"{'mode':8} {'type':10} {'r@1':>6} {'r@5':>6} {'mrr':>6}")
    for mode in retrieve.MODES:
        for kind in (*TYPES, None):
            found = of_type(mode, kind)
            print(f"{mode:8} {kind or 'all':10} {recall(found, 1):6.3f} {recall(found, 5):6.3f} {mrr(found):6.3f}")
    base = recall(ranks["keyword"], 5)
    summary = " ".join(
        f"recall5_{m}={recall(ranks[m], 5):.3f} recall1_{m}={recall(ranks[m], 1):.3f} mrr_{m}={mrr(ranks[m]):.3f}"
        for m in retrieve.MODES
    )
    ratio = recall(ranks["hybrid"], 5) / base if base else float("inf")
    print(
        f"{summary} ratio_recall5={ratio:.2f} query_ms_p50={1000 * statistics.median(timings):.1f} "
        f"questions={len(questions)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
