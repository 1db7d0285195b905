"""Start-up time: process start to the main window's first paint, against a bare Qt window.

Each run spawns a fresh ``python -m macapp`` (offscreen, empty ``MACAPP_HOME`` and HF cache) with
``MACAPP_EXIT_AFTER_PAINT=1``; the app prints ``first_paint_s=`` counted from ``MACAPP_T0``, the
``time.time()`` taken just before the spawn. The baseline, measured in the same way and
interleaved with the app runs, is a fresh python that creates a QApplication and an empty
QMainWindow and paints it. Target: the app's median under 1 s.

Usage: ``python -m bench.startup [--runs N] [--target-s S]``; the last line reads
``startup_median_s=… baseline_median_s=… ratio=… target_s=1.0 ok=True``; exit 1 if not ok.
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


def measure(cmd: list[str], home: Path) -> tuple[float, float]:
    """(first paint, process wall time) in seconds for one fresh process."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MACAPP_HOME=str(home / "orchard"),
               HF_HUB_CACHE=str(home / "hf"), HOME=str(home), MACAPP_EXIT_AFTER_PAINT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    (home / "hf").mkdir(parents=True, exist_ok=True)
    env["MACAPP_T0"] = repr(time.time())
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("first_paint_s="):
            return float(line.split()[0].split("=", 1)[1]), wall
    raise RuntimeError(f"{' '.join(cmd[:3])} printed no first_paint_s (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="runs of each (at least 5)")
    ap.add_argument("--target-s", type=float, default=1.0, help="the app's median must stay under this")
    args = ap.parse_args(argv)
    runs = max(5, args.runs)
    cmd = app_command()
    print(f"app: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}", flush=True)
    measure(cmd, Path(tempfile.mkdtemp(prefix="orchard-bench-")))  # warm the OS file cache once
    app_times, base_times = [], []
    for i in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="orchard-bench-") as tmp:
            app_paint, app_wall = measure(cmd, Path(tmp) / "app")
            base_paint, base_wall = measure([sys.executable, "-c", BASELINE], Path(tmp) / "base")
        app_times.append(app_paint)
        base_times.append(base_paint)
        print(f"run {i}: app first_paint_s={app_paint:.3f} (process {app_wall:.3f} s)  "
              f"baseline first_paint_s={base_paint:.3f} (process {base_wall:.3f} s)", flush=True)
    app_median, base_median = statistics.median(app_times), statistics.median(base_times)
    ok = app_median < args.target_s
    print(f"startup_median_s={app_median:.3f} baseline_median_s={base_median:.3f} "
          f"ratio={app_median / base_median:.2f} target_s={args.target_s:g} ok={ok}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
