"""Start-up time: process start to the main window's first paint, against a bare Qt window.

Each run spawns a fresh process (offscreen, empty ``MACAPP_HOME`` and HF cache) with
``MACAPP_EXIT_AFTER_PAINT=1``; the app prints ``first_paint_s=`` counted from ``MACAPP_T0``, the
``time.time()`` taken just before the spawn. Three things are measured, interleaved run by run:

- the app from source, ``python -m macapp`` (what ``make run`` starts): target median < 1 s;
- the bundled executable that ``make bundle`` builds (``dist/Orchard/Orchard``, or
  ``dist/Orchard.app/Contents/MacOS/Orchard`` on a Mac), **cold**: before each of its runs the
  kernel's page cache is dropped (``/proc/sys/vm/drop_caches``, when this user may write it), so
  every library of the bundle comes from disk, as after a reboot: target median < 2 s. Where the
  cache can't be dropped the runs are fresh processes on a warm cache, and the line says so;
- the baseline: a fresh python that creates a QApplication and an empty QMainWindow and paints it,
  warm for the source app's ratio and (with the bundle) cold for the bundle's ``bundle_ratio``.

Usage: ``python -m bench.startup [--runs N] [--target-s S] [--bundle PATH | --no-bundle]``; the last
line reads ``startup_median_s=… bundle_cold_median_s=… baseline_median_s=… ratio=…
bundle_baseline_median_s=… bundle_ratio=… target_s=1.0 bundle_target_s=2.0 ok=True``; exit 1 if a target
is missed or the bundle is missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = """
import os, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

class Window(QMainWindow):
    painted = False

    def paintEvent(self, event):
        super().paintEvent(event)
        if not self.painted:
            self.painted = True
            print(f"first_paint_s={time.time() - float(os.environ['MACAPP_T0']):.4f}", flush=True)
            QTimer.singleShot(0, app.quit)

app = QApplication(sys.argv[:1])
window = Window()
window.resize(1180, 760)
window.show()
sys.exit(app.exec())
"""


def app_command() -> list[str]:
    """``python -m macapp`` (what ``make run`` starts); the UI entry directly while the CLI is missing."""
    if (ROOT / "macapp" / "cli" / "main.py").exists():
        return [sys.executable, "-m", "macapp"]
    return [sys.executable, "-c", "import sys; from macapp.ui.app import run_gui; sys.exit(run_gui([]))"]


def default_bundle() -> Path:
    mac = ROOT / "dist" / "Orchard.app" / "Contents" / "MacOS" / "Orchard"
    return mac if sys.platform == "darwin" else ROOT / "dist" / "Orchard" / "Orchard"


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (Linux, root); False where that is not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def measure(cmd: list[str], home: Path) -> tuple[float, float]:
    """(first paint, process wall time) in seconds for one fresh process."""
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        MACAPP_HOME=str(home / "orchard"),
        HF_HUB_CACHE=str(home / "hf"),
        HOME=str(home),
        MACAPP_EXIT_AFTER_PAINT="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # As on a user's machine, the bytecode compiled by the warm-up run is reused (some sandboxes set
    # PYTHONDONTWRITEBYTECODE, which recompiles every module on every start: +~110 ms here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (home / "hf").mkdir(parents=True, exist_ok=True)
    env["MACAPP_T0"] = repr(time.time())
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("first_paint_s="):
            return float(line.split()[0].split("=", 1)[1]), wall
    raise RuntimeError(
        f"{' '.join(cmd[:3])} printed no first_paint_s (exit {proc.returncode}):\n"
        f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="runs of each (at least 5)")
    ap.add_argument("--target-s", type=float, default=1.0, help="the source app's median must stay under this")
    ap.add_argument("--bundle-target-s", type=float, default=2.0, help="the bundle's cold median must stay under this")
    ap.add_argument("--bundle", type=Path, default=default_bundle(), help="the bundled executable (make bundle)")
    ap.add_argument("--no-bundle", action="store_true", help="measure the source app and the baseline only")
    args = ap.parse_args(argv)
    runs = max(5, args.runs)
    cmd = app_command()
    bundle = None if args.no_bundle else args.bundle
    if bundle is not None and not bundle.is_file():
        print(f"no bundle at {bundle}: run `make bundle` first (or pass --no-bundle)", flush=True)
        return 1
    print(
        f"app: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}"
        + (f"; bundle: {bundle}" if bundle else ""),
        flush=True,
    )
    measure(cmd, Path(tempfile.mkdtemp(prefix="orchard-bench-")))  # warm the OS file cache once
    app_times, bundle_times, base_times, cold_base_times = [], [], [], []
    cold = False
    for i in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="orchard-bench-") as tmp:
            line = f"run {i}:"
            if bundle is not None:  # cold runs first; the warm runs below then re-warm the cache
                cold = drop_page_cache()
                bundle_paint, bundle_wall = measure([str(bundle)], Path(tmp) / "bundle")
                drop_page_cache()
                cold_base, _ = measure([sys.executable, "-c", BASELINE], Path(tmp) / "cold-base")
                bundle_times.append(bundle_paint)
                cold_base_times.append(cold_base)
                kind = " cold" if cold else ""
                line += (
                    f" bundle{kind} first_paint_s={bundle_paint:.3f} (process {bundle_wall:.3f} s)"
                    f"  baseline{kind} {cold_base:.3f} |"
                )
                measure(cmd, Path(tmp) / "rewarm")
            app_paint, app_wall = measure(cmd, Path(tmp) / "app")
            base_paint, base_wall = measure([sys.executable, "-c", BASELINE], Path(tmp) / "base")
            line += (
                f" app first_paint_s={app_paint:.3f} (process {app_wall:.3f} s)"
                f"  baseline first_paint_s={base_paint:.3f} (process {base_wall:.3f} s)"
            )
        app_times.append(app_paint)
        base_times.append(base_paint)
        print(line, flush=True)
    app_median, base_median = statistics.median(app_times), statistics.median(base_times)
    ok = app_median < args.target_s
    summary = f"startup_median_s={app_median:.3f} "
    if bundle is not None:
        bundle_median = statistics.median(bundle_times)
        ok = ok and bundle_median < args.bundle_target_s
        summary += f"bundle_{'cold' if cold else 'warm'}_median_s={bundle_median:.3f} "
    summary += f"baseline_median_s={base_median:.3f} ratio={app_median / base_median:.2f} "
    if bundle is not None:
        cold_base = statistics.median(cold_base_times)
        summary += f"bundle_baseline_median_s={cold_base:.3f} bundle_ratio={bundle_median / cold_base:.2f} "
    summary += f"target_s={args.target_s:g} "
    if bundle is not None:
        summary += f"bundle_target_s={args.bundle_target_s:g} "
    print(summary + f"ok={ok}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
