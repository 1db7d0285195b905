"""``macapp selftest``: check that this install (or the frozen app) works; see ``macapp.selftest``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="check that this install works (backends, a tiny model, the window)",
        description="Import every backend and touch its native library, generate a few tokens "
        "from a tiny model built in a temporary folder, embed a sentence with the "
        "bundled embedder, and paint the main window offscreen. Exit 0 when all pass; "
        "nothing of yours is read or written.",
    )
    p.add_argument("--visible", action="store_true", help="show the window instead of painting it offscreen")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from macapp import selftest

    return selftest.run(visible=args.visible)
