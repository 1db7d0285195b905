"""A file that truly cannot be used gets a reason a person can act on, never an internal message."""

from __future__ import annotations

import re

from macapp.core.docs import ingest
from macapp.core.docs.index import DocumentIndex
from macapp.core.progress import drain
from tests.core.test_docs_index import HashEmbedder
from tests.fixtures import pdfs
from tests.fixtures.ocr import ScriptedOcr

INTERNAL = re.compile(r"Error\b|Exception|Traceback|None\b|pdfium|errno|\bint\b|\bstr\b|token counter|chunk", re.I)


def add(tmp_path, *paths):
    with DocumentIndex(tmp_path / "index") as index:
        _, outcomes = drain(ingest.add_files("Files", paths, HashEmbedder(), index=index, ocr=ScriptedOcr()))
    return outcomes


def bad_files(folder):
    files = pdfs.make_corrupt_pdfs(folder)
    files["scanned"] = pdfs.make_image_only_pdf(folder / "scan.pdf")
    files["password"] = pdfs.make_pdf(folder / "locked.pdf", ["Secret text."], user_password="pw")
    files["zero pages"] = pdfs.make_zero_page_pdf(folder / "zero.pdf")
    files["page numbers only"] = pdfs.make_pdf(folder / "numbers.pdf", [str(n) for n in range(1, 6)])
    return files


def test_every_unusable_file_gets_a_plain_reason_and_what_to_do(tmp_path):
    files = bad_files(tmp_path)
    outcomes = add(tmp_path, *files.values())
    for (what, path), outcome in zip(files.items(), outcomes):
        assert outcome.status == "failed" and outcome.file == path.name, what
        assert outcome.message.startswith(path.name) and not INTERNAL.search(outcome.message), (what, outcome.message)
        assert outcome.hint or outcome.kind in ("empty",), (what, outcome.message)
    kinds = {what: o.kind for what, o in zip(files, outcomes)}
    assert kinds["scanned"] == kinds["page numbers only"] == "no_text" and kinds["password"] == "encrypted"


def test_a_bug_while_adding_a_file_says_so_without_its_internals(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ValueError("the token counter says one character is longer than a chunk: '–'")

    monkeypatch.setattr(ingest, "chunk_pages", broken)
    good = pdfs.make_pdf(tmp_path / "fine.pdf", ["Some text that would index."])
    (outcome,) = add(tmp_path, good)
    assert outcome.status == "failed" and outcome.kind == "error"
    assert "problem in Orchard" in outcome.message and not INTERNAL.search(outcome.message)
    assert "log" in outcome.hint
    assert "token counter says" in caplog.text  # the details are logged for the report


def test_a_bug_while_extracting_says_so_without_its_internals(tmp_path, monkeypatch):
    from macapp.core.docs import pdf

    def broken(*args, **kwargs):
        raise KeyError("glyph 0x2013")

    monkeypatch.setattr(pdf, "_read_page", broken)
    _, (outcome,) = drain(pdf.extract_many([pdfs.make_pdf(tmp_path / "a.pdf", ["Text."])]))
    assert not outcome.ok and "problem in Orchard" in outcome.message and "glyph" not in outcome.message
