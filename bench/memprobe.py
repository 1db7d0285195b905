"""Measure what loading a GGUF and filling its context really costs, in a fresh process.

Run as ``python -m bench.memprobe MODEL --ctx N [--kv-type f16|q8_0] [--flash-attn]``; prints
one JSON line: RSS before the load, the peak RSS while loading and filling the context
(Linux ``VmHWM``, reset after imports via ``/proc/self/clear_refs``), the difference, and the
buffers llama.cpp logged (model, KV, compute, output). Weights are read without mmap so every
weight byte is resident, as on a Mac where Metal maps the whole file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile


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


def probe(model: str, ctx: int, kv_type: str, flash_attn: bool, n_batch: int, n_threads: int) -> dict:
    import llama_cpp  # noqa: F401  (import cost is part of the baseline, not the model)

    log_fd, log_path = tempfile.mkstemp(suffix=".log")
    saved = os.dup(2)
    os.dup2(log_fd, 2)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        before = _status_kb("VmRSS") * 1024
        from llama_cpp import GGML_TYPE_F16, GGML_TYPE_Q8_0, Llama

        kv = {"f16": GGML_TYPE_F16, "q8_0": GGML_TYPE_Q8_0}[kv_type]
        llm = Llama(model_path=model, n_ctx=ctx, n_batch=n_batch, n_ubatch=n_batch, use_mmap=False,
                    flash_attn=flash_attn, type_k=kv, type_v=kv, n_threads=n_threads, verbose=True,
                    seed=0)
        after_load = _status_kb("VmRSS") * 1024
        import numpy as np

        n_vocab = llm.n_vocab()
        rng = np.random.default_rng(0)
        tokens = rng.integers(261, n_vocab, size=llm.n_ctx() - 1).tolist()
        llm.eval(tokens)
        peak = _status_kb("VmHWM") * 1024
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(log_fd)
    with open(log_path) as fh:
        log = fh.read()
    os.unlink(log_path)
    return {"model": model, "ctx": ctx, "n_ctx": llm.n_ctx(), "kv_type": kv_type, "flash_attn": flash_attn,
            "rss_before": before, "rss_after_load": after_load, "peak": peak, "delta": peak - before,
            "logged": parse_buffers(log)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--kv-type", default="f16")
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(json.dumps(probe(a.model, a.ctx, a.kv_type, a.flash_attn, a.n_batch, a.threads)))


if __name__ == "__main__":
    main()
