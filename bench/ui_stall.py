"""The longest event-loop stall while an answer streams into the Chat page at full speed.

Setup: a tiny random-weight llama GGUF (``macapp.core.models.tiny_gguf``, trained context 4096)
that llama.cpp runs at thousands of tokens per second, far faster than any real model: the worst
case for the GUI (chunk signals, store writes, Markdown re-renders all at their highest rate). A
``ChatPage`` (offscreen, 1180 x 760, the app's style sheet) loads it at n_ctx 4096, and each run
sends a message in a new chat with ``max_tokens`` 2000 and a fixed seed, so every answer is ~2000
tokens (~4,100 characters) of text. A ``--tick-ms`` (default 1) PreciseTimer on the GUI thread
records its ticks; a tick's lateness is its gap minus the interval. ``ui_max_stall_ms`` is the
worst lateness while any answer streamed (from the send to the page's ``turnFinished``, plus 50
ms for the final render): it includes creating the question's and the answer's bubbles.

Baseline, in the same run and window: the worst lateness while the loaded page sits idle for
``--idle-s`` seconds before the answers. Also printed: tokens/s in the window against the same
answers from the engine alone (same thread count, no GUI, in a child process: llama.cpp's OpenMP
threads started from this process's main thread would stay and slow the page's engine thread).

Measured (2-CPU VM, quiet, 10 runs): ui_max_stall_ms 11.2-13.8, p99 lateness ~3 ms, idle 0.0-0.9 ms; the
window keeps ~0.8 of the engine's speed (~2,100 of ~2,650 tokens/s). The worst ticks are the send
(first bubbles of the process) and the end of an answer (final render, the branch re-read); a
flush is ~1.5 ms. With other processes busy on the same 2 CPUs the figure reaches 20-30 ms (the
idle baseline moves too): the GUI thread then waits for a CPU, not for the page. Before the
engine behind the window kept a CPU free (2 llama.cpp threads on 2 CPUs), stalls were 10-25 ms
quiet and over 100 ms with anything else running.

Usage: ``python -m bench.ui_stall [--runs 5] [--max-tokens 2000] [--tick-ms 1] [--idle-s 1]``.
The line before last reads ``idle_max_stall_ms=… p99_stall_ms=… speed_ratio=… target_ms=16 ok=…``;
the last line is ``ui_max_stall_ms=X.X``. The exit code is 1 if the target is missed.
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
TARGET_MS = 16.0
N_CTX = 4096
PROMPT = "hello world, what is the model? answer in detail"


def engine_alone(model: Path, max_tokens: int, runs: int) -> float:
    """Median tokens/s of the same answers from the engine with no window (the speed to match).

    Same thread count as the page's engine. Runs in a child process: llama.cpp's OpenMP threads
    started from this process's main thread would stay and slow the window's engine thread down
    (measured: ~8x on 2 CPUs).
    """
    code = (
        "import sys; from pathlib import Path; from bench.ui_stall import _engine_alone; "
        f"print(_engine_alone(Path(sys.argv[1]), {int(max_tokens)}, {int(runs)}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    return float(out.stdout.strip().splitlines()[-1])


def _engine_alone(model: Path, max_tokens: int, runs: int) -> float:
    from macapp.core.engines.base import SamplingSettings
    from macapp.core.engines.llama_engine import LlamaCppEngine
    from macapp.core.hardware import default_backend
    from macapp.core.models.estimate import RuntimeSettings
    from macapp.ui.chat.jobs import window_threads

    engine = LlamaCppEngine(model, RuntimeSettings(n_ctx=N_CTX), n_threads=window_threads(default_backend()))
    for _ in engine.load():
        pass
    speeds = []
    try:
        for run in range(runs):
            stream = engine.stream_chat(
                [{"role": "user", "content": PROMPT}], SamplingSettings(max_tokens=max_tokens, seed=run)
            )
            while True:
                try:
                    next(stream)
                except StopIteration as done:
                    speeds.append(done.value.tokens_per_s)
                    break
    finally:
        engine.unload()
    return statistics.median(speeds)


def _quiet_offscreen(_kind, _context, message: str) -> None:
    """Qt's messages on stderr, except the offscreen platform's note that windows have no size hints."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def measure(model: Path, args: argparse.Namespace) -> dict[str, float]:
    """Stream ``args.runs`` answers into a ChatPage while the heartbeat ticks; the stalls and speeds."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from macapp.core.chat.store import ChatStore
    from macapp.core.hardware import detect
    from macapp.core.models.library import add_model_file
    from macapp.core.settings import Settings
    from macapp.ui.chat.page import ChatPage
    from macapp.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_theme(app)
    qInstallMessageHandler(_quiet_offscreen)
    store = ChatStore()
    page = ChatPage(Settings(default_ctx=N_CTX), store)
    page.resize(1180, 760)
    page.show()
    page.open_history()
    page.set_library([add_model_file(model)], detect())

    def wait(condition, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > end:
                raise RuntimeError("the chat page did not finish in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)

    def idle(seconds: float) -> None:
        end = time.monotonic() + seconds
        wait(lambda: time.monotonic() >= end, seconds + 1)

    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    spans: list[tuple[float, float]] = []
    speeds: list[float] = []
    finished: list[object] = []
    page.turnFinished.connect(finished.append)
    try:
        page.load_model()
        wait(lambda: page.engine is not None and not page.loading, 30)
        page.drawer.numbers["max_tokens"].setValue(args.max_tokens)
        idle(0.3)  # first paints and the context count settle
        timer.start()
        idle_start = time.perf_counter()
        idle(args.idle_s)
        idle_end = time.perf_counter()
        for run in range(args.runs):
            page.new_chat()
            page.drawer.seed.setText(str(run))
            idle(0.2)
            start = time.perf_counter()
            page.send_message(PROMPT)
            wait(lambda n=run: len(finished) > n and not page.busy, 120)
            end = time.perf_counter() + 0.05
            idle(0.1)
            spans.append((start, end))
            turn = finished[run]
            speeds.append(turn.result.tokens_per_s)
            print(
                f"run {run + 1}: {turn.result.completion_tokens} tokens at {turn.result.tokens_per_s:,.0f} tokens/s"
                f" ({turn.result.finish_reason}), {len(turn.result.text):,} characters",
                flush=True,
            )
    finally:
        timer.stop()
        page.shutdown()
        store.close()
        page.close()
    late = [((b - a) * 1000 - args.tick_ms, b) for a, b in zip(ticks, ticks[1:])]
    busy = sorted(x for x, t in late if any(s <= t <= e for s, e in spans)) or [0.0]
    quiet = [x for x, t in late if idle_start < t <= idle_end] or [0.0]
    return {
        "max_ms": busy[-1],
        "p99_ms": busy[int(0.99 * (len(busy) - 1))],
        "idle_max_ms": max(quiet),
        "ticks": len(busy),
        "tokens_per_s": statistics.median(speeds),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="answers streamed into the window (default 5)")
    ap.add_argument("--max-tokens", type=int, default=2000, help="tokens per answer (default 2000)")
    ap.add_argument("--tick-ms", type=int, default=1, help="heartbeat interval in ms (default 1)")
    ap.add_argument("--idle-s", type=float, default=1.0, help="idle seconds measured as the baseline (default 1)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="orchard-bench-ui-stall-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(
            MACAPP_HOME=str(tmp / "orchard"), HF_HUB_CACHE=str(tmp / "hf"), HOME=str(tmp), QT_QPA_PLATFORM="offscreen"
        )
        sys.path.insert(0, str(ROOT))
        from macapp.core.models.tiny_gguf import write_tiny_gguf

        model = write_tiny_gguf(tmp / "tiny-chat.gguf", ctx=N_CTX)
        alone = engine_alone(model, args.max_tokens, 3)
        print(
            f"setup: tiny llama GGUF, n_ctx {N_CTX}, {args.runs} answers of {args.max_tokens} tokens, "
            f"{args.tick_ms} ms heartbeat, {os.cpu_count()} CPUs; the engine alone: {alone:,.0f} tokens/s",
            flush=True,
        )
        result = measure(model, args)
    ratio = result["tokens_per_s"] / alone if alone else 0.0
    ok = result["max_ms"] < TARGET_MS
    print(
        f"streaming: {result['ticks']} ticks, p99 lateness {result['p99_ms']:.1f} ms; "
        f"{result['tokens_per_s']:,.0f} tokens/s in the window"
    )
    print(
        f"idle_max_stall_ms={result['idle_max_ms']:.1f} p99_stall_ms={result['p99_ms']:.1f} "
        f"speed_ratio={ratio:.2f} target_ms={TARGET_MS:.0f} ok={ok}"
    )
    print(f"ui_max_stall_ms={result['max_ms']:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
