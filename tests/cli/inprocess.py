"""Running ``macapp`` in the test's own process (``main(argv)``), its output read from pytest's capsys."""

from __future__ import annotations

import json

from macapp.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``macapp ARGS...``."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args: str):
    """The JSON document ``macapp ARGS... --json`` prints; the command must succeed."""
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)
