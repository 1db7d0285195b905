"""Measure what loading a GGUF and filling its context really costs, in a fresh process.

Run as ``python -m bench.memprobe MODEL --ctx N [--kv-type f16|q8_0] [--flash-attn]``; prints
one JSON line: RSS before the load, the peak RSS while loading and filling the context
(Linux ``VmHWM``, reset after imports via ``/proc/self/clear_refs``), the difference, and the
buffers llama.cpp logged (model, KV, compute, output). Weights are read without mmap so every
weight byte is resident, as on a Mac where Metal maps the whole file.

The measurement runs in a worker process whose stderr (llama.cpp's log) goes to a temp file;
the log is parsed for the buffer sizes. If the worker fails (a Python error, an abort in
llama.cpp, a signal), the tail of that log is printed to the real stderr and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

LOG_TAIL_LINES = 25


class ProbeError(RuntimeError):
    """The worker failed; ``log_tail`` holds the last lines of its llama.cpp log."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


_BUF = re.compile(r"(\w+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB")


def parse_buffers(log: str) -> dict[str, float]:
    """Sum llama.cpp's logged buffers by kind, in bytes."""
    out: dict[str, float] = {}
    for _dev, kind, mib in _BUF.findall(log):
        out[kind] = out.get(kind, 0.0) + float(mib) * 1024 * 1024
    return out


def _measure(model: str, ctx: int, kv_type: str, flash_attn: bool, n_batch: int, n_threads: int) -> dict:
    """The worker: load, fill the context, report RSS figures (llama.cpp logs to our stderr)."""
    import llama_cpp  # noqa: F401  (import costs are part of the baseline, not the model)
    import numpy as np

    # Load exactly as the app does (same settings object the estimate reads).
    from macapp.core.engines.llama_loader import open_llama
    from macapp.core.models.estimate import RuntimeSettings

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS") * 1024
    settings = RuntimeSettings(n_ctx=ctx, n_batch=n_batch, n_ubatch=n_batch, kv_type=kv_type, flash_attn=flash_attn)
    llm = open_llama(model, settings, use_mmap=False, n_threads=n_threads, verbose=True, seed=0)
    after_load = _status_kb("VmRSS") * 1024
    n_ctx = llm.n_ctx()  # llama.cpp pads the cache to 256 cells; the Python side holds ``ctx`` tokens
    rng = np.random.default_rng(0)
    tokens = rng.integers(261, llm.n_vocab(), size=min(ctx, n_ctx) - 1).tolist()
    llm.eval(tokens)
    after_fill = _status_kb("VmRSS") * 1024
    peak = _status_kb("VmHWM") * 1024
    llm.close()  # its teardown logs go to the worker's log, not the caller's terminal
    return {
        "model": model,
        "ctx": ctx,
        "n_ctx": n_ctx,
        "kv_type": kv_type,
        "flash_attn": flash_attn,
        "rss_before": before,
        "rss_after_load": after_load,
        "rss_after_fill": after_fill,
        "peak": peak,
        "delta": peak - before,
    }


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def probe(
    model: str,
    ctx: int,
    kv_type: str = "f16",
    flash_attn: bool = True,
    n_batch: int = 512,
    n_threads: int = 2,
    timeout: float | None = None,
) -> dict:
    """Measure ``model`` at ``ctx`` in a fresh worker process; raise ProbeError if it fails."""
    args = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        model,
        "--ctx",
        str(ctx),
        "--kv-type",
        kv_type,
        "--n-batch",
        str(n_batch),
        "--threads",
        str(n_threads),
    ] + (["--flash-attn"] if flash_attn else [])
    with tempfile.TemporaryFile(mode="w+", suffix=".log") as log_file:
        try:
            proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=log_file, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            log_file.seek(0)
            raise ProbeError(f"memprobe worker timed out after {timeout:g} s", _tail(log_file.read())) from exc
        log_file.seek(0)
        log = log_file.read()
    if proc.returncode != 0:
        how = (
            f"killed by {signal.Signals(-proc.returncode).name}"
            if proc.returncode < 0
            else f"exit code {proc.returncode}"
        )
        raise ProbeError(f"memprobe worker failed ({how}) on {model} ctx={ctx}", _tail(log))
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise ProbeError(f"memprobe worker printed no result: {proc.stdout[-200:]!r}", _tail(log)) from exc
    result["logged"] = parse_buffers(log)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--kv-type", default="f16", choices=["f16", "q8_0"])
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(_measure(a.model, a.ctx, a.kv_type, a.flash_attn, a.n_batch, a.threads)), flush=True)
        return
    try:
        result = probe(a.model, a.ctx, a.kv_type, a.flash_attn, a.n_batch, a.threads)
    except ProbeError as exc:
        print(f"memprobe: {exc}; last lines of its log:\n{exc.log_tail}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
