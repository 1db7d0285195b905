"""Render every page of the window to PNGs: ``build/screens/<theme>/<W>x<H>/<scene>.png`` (``make screens``).

The scenes (tests/ui/screens.py, shared with tests/ui/test_screens.py) run over a temporary home with tiny
models, a one-PDF collection and a saved conversation; nothing reaches the network or the user's own data.
Each PNG's problems (text cut, widgets spilling out of their parent, tables that scroll sideways, scroll areas
inside scroll areas) are printed as the checks of the tests see them.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screens.py [--out build/screens] [--theme light] [scene ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.ui.screens and tests.fixtures


def main(argv: list[str] | None = None) -> int:
    from tests.ui.screens import SIZES, THEMES, Scenes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "screens")
    parser.add_argument("--theme", choices=THEMES, action="append", help="only this theme (repeatable)")
    parser.add_argument("scenes", nargs="*", choices=[[], *Scenes.ORDER], help="only these scenes")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    with tempfile.TemporaryDirectory(prefix="orchard-screens-") as tmp:
        from PySide6.QtWidgets import QApplication

        from tests.ui.screens import private_environment, seed_home, set_theme

        app = QApplication.instance() or QApplication(["orchard-screens"])
        app.setApplicationName("Orchard")
        found = 0
        for theme in args.theme or THEMES:
            home = Path(tmp) / theme  # each theme starts from the same fresh data
            os.environ.update(private_environment(home))
            seed = seed_home(home)
            set_theme(app, theme)
            scenes = Scenes(seed, SIZES)
            try:
                for shot in scenes.shots(tuple(args.scenes) or Scenes.ORDER):
                    path = args.out / theme / f"{shot.size[0]}x{shot.size[1]}" / f"{shot.scene}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shot.widget.grab().save(str(path))
                    problems = [f"{kind}: {p}" for kind, found_ in shot.problems.items() for p in found_]
                    found += len(problems)
                    print(f"{path.relative_to(args.out)}" + "".join(f"\n    {p}" for p in problems), flush=True)
            finally:
                scenes.close()
        print(f"{found} problems; PNGs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
