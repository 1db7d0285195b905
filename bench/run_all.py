"""Run every benchmark in bench/ and fail if any fails.

Each ``bench/*.py`` except this file, ``memprobe.py`` (a helper the benchmarks spawn) and
``__init__.py`` runs in sorted order as ``python -m bench.<name>`` from the repository root, with
its output streamed as it comes. Usage: ``python bench/run_all.py [NAME ...]`` (names without
``.py`` pick a subset). The exit code is 1 if any benchmark exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SKIP = {"run_all.py", "memprobe.py", "__init__.py"}


def discover() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.name not in SKIP)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="run only these benchmarks (file names without .py)")
    args = ap.parse_args(argv)
    scripts = discover()
    if args.names:
        unknown = set(args.names) - {p.stem for p in scripts}
        if unknown:
            print(f"run_all: no benchmark named {', '.join(sorted(unknown))} in {BENCH}", file=sys.stderr)
            return 2
        scripts = [p for p in scripts if p.stem in args.names]
    if not scripts:
        print(f"run_all: no benchmarks in {BENCH}", file=sys.stderr)
        return 1

    env = dict(os.environ, PYTHONUNBUFFERED="1")  # stream children's output line by line
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    outcomes: list[tuple[str, int, float]] = []
    for script in scripts:
        print(f"=== bench/{script.name}", flush=True)
        t0 = time.monotonic()
        try:
            code = subprocess.call([sys.executable, "-m", f"bench.{script.stem}"], cwd=ROOT, env=env)
        except KeyboardInterrupt:
            print(f"=== bench/{script.name}: interrupted", flush=True)
            return 130
        elapsed = time.monotonic() - t0
        outcomes.append((script.name, code, elapsed))
        print(
            f"=== bench/{script.name}: {'ok' if code == 0 else f'FAILED (exit code {code})'} in {elapsed:.0f} s",
            flush=True,
        )

    failed = [name for name, code, _ in outcomes if code != 0]
    print(
        f"=== {len(outcomes) - len(failed)}/{len(outcomes)} benchmarks passed"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
