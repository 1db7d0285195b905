"""``macapp ask`` end to end: docs add, then a grounded answer with its passages, or an honest 'not found'."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures import pdfs


def macapp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )


def test_ask_json_and_nothing_found(tmp_path, tiny_models):
    pdf = pdfs.make_pdf(
        tmp_path / "bees.pdf",
        [
            "# Beekeeping\nBeekeepers puff smoke at the hive entrance to calm the colony before lifting frames.",
            "# Volcanoes\nMagma rises through cracks in the crust and erupts as lava, ash and volcanic gas.",
        ],
    )
    added = macapp("docs", "add", "Field notes", str(pdf))
    assert added.returncode == 0, added.stderr
    run = macapp(
        "ask",
        "Field notes",
        "how do you calm the bees?",
        "--model",
        str(tiny_models["mha_f32"]),
        "--max-tokens",
        "8",
        "--seed",
        "1",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["found"] and data["completion_tokens"] == 8
    assert {p["page"] for p in data["passages"]} >= {1} and all(p["file"] == "bees.pdf" for p in data["passages"])
    nothing = macapp("ask", "Field notes", "quarterly revenue of a software company", "-m", str(tiny_models["mha_f32"]))
    assert nothing.returncode == 0 and "couldn't find anything" in nothing.stdout
    missing = macapp("ask", "No such thing", "why?", "-m", str(tiny_models["mha_f32"]))
    assert missing.returncode == 1 and "no document collection" in missing.stderr


def test_a_source_line_keeps_its_label_whatever_the_file_is_called():
    from rich.console import Console

    from macapp.cli.ask import source_line
    from macapp.core.docs.answer import Citation

    console = Console(width=200, color_system=None)
    for name in ("debmake-doc.en.pdf", "Tax 2026.pdf", "[bold]x.pdf"):
        cite = Citation(3, name, 20, 21, "text", quote="The sbuild [package] builds in a chroot.")
        with console.capture() as shown:
            console.print(source_line(cite))
        assert shown.get().strip() == f"[3] [{name}, p. 20] — “The sbuild [package] builds in a chroot.”"
