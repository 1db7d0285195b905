"""``python -m macapp`` opens the window (same as ``macapp gui``)."""

import sys

from macapp.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["gui"]))
