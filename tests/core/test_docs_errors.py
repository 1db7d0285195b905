"""A file that truly cannot be used gets a reason a person can act on, never an internal message."""

from __future__ import annotations

import hashlib
import re

import pytest

from macapp.core.docs import ingest, retrieve
from macapp.core.docs.index import DocumentIndex
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken, drain
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
    (outcome,) = add(tmp_path, pdfs.make_pdf(tmp_path / "a.pdf", ["Text."]))
    assert not outcome.ok and "problem in Orchard" in outcome.message and "glyph" not in outcome.message


def test_a_batch_goes_on_past_every_bad_file(tmp_path):
    """Each unusable file is an outcome of its own kind with its reason, in order; the good ones around them are
    read whole (the same file twice: added, then skipped as already there); progress counts files to the end."""
    from tests.core.test_pdf import PAGES, broken_files

    plain = pdfs.make_pdf(tmp_path / "plain.pdf", PAGES)
    broken = broken_files(tmp_path)
    paths = [plain] + [path for path, _, _ in broken.values()] + [plain]
    with DocumentIndex(tmp_path / "index") as index:
        steps, outcomes = drain(ingest.add_files("Files", paths, HashEmbedder(), index=index, ocr=ScriptedOcr()))
        [hit] = retrieve.query("Files", "Pears are picked", k=1, mode="keyword", index=index)
    assert [o.path for o in outcomes] == paths
    assert [o.kind for o in outcomes[1:-1]] == [kind for _, kind, _ in broken.values()]
    assert not any(o.ok for o in outcomes[1:-1]) and all(o.message for o in outcomes[1:-1])
    assert [o.status for o in (outcomes[0], outcomes[-1])] == ["added", "skipped"]
    for good in (outcomes[0], outcomes[-1]):
        assert good.ok and good.pages == 3 and good.kind is None
        assert good.file_hash == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert (hit.file, hit.page) == ("plain.pdf", 2)  # the second page's own text
    assert [s.outcome for s in steps if s.outcome] == outcomes
    dones = [s.done for s in steps]
    assert dones == sorted(dones) and dones[-1] == len(paths) and steps[-1].total == len(paths)


def test_cancel_stops_a_batch_instead_of_becoming_an_outcome(tmp_path):
    plain = pdfs.make_pdf(tmp_path / "plain.pdf", ["Apples grow on trees in the orchard."])
    big = pdfs.make_big_pdf(tmp_path / "big.pdf", 1000)
    token = CancelToken()
    with DocumentIndex(tmp_path / "index") as index, pytest.raises(Cancelled):
        for step in ingest.add_files("Files", [plain, big, plain], HashEmbedder(), token, index=index):
            if step.file == "big.pdf" and step.stage == "extract" and step.page > 100:
                token.cancel()
