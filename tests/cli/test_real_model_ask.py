"""The real-model tier on documents: ``macapp ask`` over a PDF with SmolLM2-135M-Instruct, grounded and cited."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.test_ask_cli import macapp
from tests.fixtures import pdfs

pytestmark = pytest.mark.real_model

# A made-up fact on page 2: the model can only know it from the document.
PAGES = [
    "# Harbour notes\nThe harbour master keeps the tide tables in the blue office next to the fish market.",
    "# The lighthouse\nThe Glimmerfen lighthouse was built in 1887 by the engineer Ada Thornbury.",
    "# Ferries\nThe morning ferry to the islands leaves at seven and returns before noon.",
]


def test_ask_answers_from_the_pdf_and_cites_its_page(tmp_path, real_model):
    pdf = pdfs.make_pdf(tmp_path / "harbour.pdf", PAGES)
    added = macapp("docs", "add", "Harbour", str(pdf))
    assert added.returncode == 0, added.stderr
    run = macapp(
        "ask",
        "Harbour",
        "Who built the Glimmerfen lighthouse?",
        "--model",
        str(real_model),
        "--preset",
        "deterministic",
        "--max-tokens",
        "80",
        "--ctx",
        "2048",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["found"] and answer["finish_reason"] == "stop"
    assert "Thornbury" in answer["text"]  # grounded: the fact exists only in the PDF
    # the page is cited: by the model, or (135M never writes [n] markers) after the sentences the passage holds
    assert [(c["file"], c["page"]) for c in answer["citations"]] == [("harbour.pdf", 2)]
    assert re.search(r"Thornbury[^.!?\[]*\[harbour\.pdf, p\. 2\]", answer["text"]), answer["text"]
    cited_itself = re.search(r"\[\d+\]", answer["raw_text"]) is not None
    assert bool(answer["notes"]) != cited_itself  # a source the model did not write is said to be matched
