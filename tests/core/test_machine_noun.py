"""Text names the machine as it is: "this Mac" on macOS only, "this computer" elsewhere, in the window and the CLI."""

from __future__ import annotations

import ast
import platform
import re
from pathlib import Path

import pytest

from macapp.core import hardware
from macapp.core.hardware import apple, machine_noun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("system", "noun"),
    [
        ("Darwin", "this Mac"),
        ("macOS 15.1", "this Mac"),
        ("Linux", "this computer"),
        ("Windows", "this computer"),
        ("FreeBSD", "this computer"),
        ("", "this computer"),
    ],
)
def test_the_machine_is_a_mac_only_on_macos(system, noun):
    assert machine_noun(system) == noun
    assert machine_noun(system, capital=True) == noun[0].upper() + noun[1:]


def test_by_default_it_asks_the_platform(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert machine_noun() == "this computer"
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert machine_noun() == "this Mac" and machine_noun(capital=True) == "This Mac"


def test_a_probed_machine_names_itself_the_same_way():
    memory = apple.MacMemory(
        chip="Apple M2",
        total_bytes=16 * 1024**3,
        available_bytes=12 * 1024**3,
        working_set_bytes=None,
        wired_limit_mb=None,
    )
    mac = hardware.mac_hardware(memory)
    assert mac.place == "this Mac"
    linux = hardware.Hardware(
        os="Linux 6.1", machine="x86_64", chip="AMD EPYC", cpu_count=2, total_bytes=8 * 1024**3,
        available_bytes=6 * 1024**3, gpu="cpu", gpu_working_set_bytes=None, wired_limit_mb=None,
        budget_bytes=5 * 1024**3, budget_rule="available memory",
    )  # fmt: skip
    assert linux.place == "this computer"


def _visible_strings(path: Path) -> list[str]:
    """The texts of a module's string literals and f-strings, without docstrings (what a person may read: labels,
    tooltips, help, errors); an f-string is one text, its literal parts joined."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            parts = [v for v in node.values if isinstance(v, ast.Constant)]
            skip.update(id(v) for v in parts)
            texts.append("".join(str(v.value) for v in parts))
    texts += [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]
    return texts


def test_no_text_says_this_mac_outright():
    """Every "this Mac" a person reads comes from machine_noun (or Hardware.place); Metal's notes are Mac-only."""
    said = re.compile(r"\b[Tt]his Mac\b")
    offenders = [
        f"{path.relative_to(ROOT)}: {text!r}"
        for folder in ("macapp/ui", "macapp/cli", "macapp/core")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "macapp/core/hardware/__init__.py"  # where machine_noun says it
        for text in _visible_strings(path)
        if said.search(text) and "Metal" not in text
    ]
    assert not offenders, "\n".join(offenders)
