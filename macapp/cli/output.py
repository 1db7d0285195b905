"""Printing for CLI commands: one JSON document with --json, rich tables otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console():
    from rich.console import Console

    # Piped output (tests, `| grep`) gets a wide console instead of rich's 80-column default.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def err_console():
    """stderr for progress bars, stats and notes: wrapped to a terminal's width, or one line per message when
    redirected (rich would cut a long stats line at 80 columns in a log file)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def say(text: str) -> None:
    """One plain line on stdout: names, paths and URLs are the user's text, never rich markup."""
    console().print(text, markup=False)


def key_values(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)
