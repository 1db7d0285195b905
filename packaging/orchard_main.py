"""The frozen app's entry point (PyInstaller's script): the ``macapp`` command line in one executable.

- no arguments (a double-click, or ``open Orchard.app``): the window;
- ``--selftest``: ``macapp selftest`` (what ``make app-smoke`` runs in the bundle);
- ``-m macapp.MODULE ARGS``: run one of Orchard's modules as ``python -m`` would; the tuning
  child is started this way (``sys.executable -m macapp.core.tuning.runner``), and in a bundle
  ``sys.executable`` is this program;
- anything else: the ``macapp`` subcommands (``Orchard doctor``, ``Orchard models``, …).
Old macOS versions add a ``-psn_…`` argument to apps started from the Finder; it is dropped.
"""

import sys


def main() -> int:
    argv = [a for a in sys.argv[1:] if not a.startswith("-psn_")]
    if len(argv) >= 2 and argv[0] == "-m":
        if not argv[1].startswith("macapp."):
            print(f"Orchard runs only its own modules with -m, not {argv[1]!r}", file=sys.stderr)
            return 2
        import runpy

        sys.argv = [sys.argv[0], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    if argv[:1] == ["--selftest"]:
        argv = ["selftest", *argv[1:]]
    from macapp.cli.main import main as cli_main

    return cli_main(argv or ["gui"])


if __name__ == "__main__":
    sys.exit(main())
