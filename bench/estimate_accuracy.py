"""How close the memory estimate is to what llama.cpp really uses, on generated models.

A matrix of random-weight llama models (about 50 MB to 1.5 GB on disk: MHA and GQA, tied and
untied embeddings, f32 / f16 / q8_0 weights) x context sizes, flash attention on (the app's
default) plus a few cases with flash attention off and with a q8_0 KV cache. Each case is
measured by ``bench.memprobe`` in a fresh process (peak RSS increase of loading the model
without mmap and filling its context) and compared with ``estimate_memory`` for the same
settings. As a baseline, the same comparison is made for the sum of the buffers llama.cpp logs
(model + KV + compute + output).

Usage: ``python -m bench.estimate_accuracy [--quick] [--cache] [--verbose]``. The last line is
``max_abs_err_pct=X.XX median_abs_err_pct=Y.YY``; the exit code is 1 if a probe failed or the
maximum error is above ``--max-err`` (default 5%). Per-case details (every component) are
written to ``bench/out/estimate_accuracy.json`` (``-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (bench/run_all.py) or with -m from the repo root
    sys.path.insert(0, str(ROOT))

from bench.memprobe import ProbeError, probe  # noqa: E402
from macapp.core.models import tiny_gguf  # noqa: E402
from macapp.core.models.estimate import RuntimeSettings, estimate_memory  # noqa: E402
from macapp.core.models.library import model_facts  # noqa: E402
from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf  # noqa: E402

MiB = 1024 * 1024
OUT_DIR = ROOT / "bench" / "out"
CACHE_DIR = OUT_DIR / "estimate_models"
PROBE_TIMEOUT_S = 900
ALL_CTX = (512, 2048, 4096, 8192)


@dataclass(frozen=True)
class Shape:
    """One generated model; its trained context is the largest context it is measured at."""

    name: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    vocab: int
    qtype: str
    tied: bool
    ctxs: tuple[int, ...] = ALL_CTX

    def spec(self, max_ctx: int) -> TinySpec:
        return TinySpec(
            n_embd=self.n_embd,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_head_kv=self.n_head_kv,
            n_ff=self.n_ff,
            ctx=max_ctx,
            qtype=self.qtype,
            tied=self.tied,
            vocab_size=self.vocab,
            name=f"bench-{self.name}",
        )

    @property
    def label(self) -> str:
        attn = "MHA" if self.n_head == self.n_head_kv else "GQA"
        return (
            f"{attn} e{self.n_embd} L{self.n_layer} h{self.n_head}/{self.n_head_kv} "
            f"hd{self.n_embd // self.n_head} {self.qtype}{' tied' if self.tied else ''}"
        )


@dataclass(frozen=True)
class Case:
    shape: Shape
    ctx: int
    flash_attn: bool = True
    kv_type: str = "f16"


# Smallest to largest file. head_dim 64 or 128, n_ff ~2.75 x n_embd, vocab 32000 beyond the smallest.
SHAPES = {
    s.name: s
    for s in (
        Shape("A", 512, 3, 8, 8, 1408, 4000, "f32", False),  # ~55 MB
        Shape("B", 1024, 4, 16, 4, 2816, 32000, "q8_0", True),  # ~83 MB
        Shape("C", 1024, 8, 8, 8, 2816, 32000, "f16", False),  # ~320 MB
        Shape("D", 2048, 6, 32, 8, 5632, 32000, "q8_0", False),  # ~410 MB
        Shape("G", 3072, 4, 24, 8, 8192, 32000, "q8_0", False),  # ~610 MB
        Shape("E", 2048, 8, 16, 4, 5632, 32000, "f16", True),  # ~810 MB
        Shape("F", 2048, 6, 16, 16, 5632, 32000, "f32", True, ctxs=(512, 2048, 4096)),  # ~1.4 GB (8192: too slow)
    )
}


def full_matrix() -> list[Case]:
    cases = [Case(s, c) for s in SHAPES.values() for c in s.ctxs]
    cases += [Case(SHAPES["A"], 3000), Case(SHAPES["D"], 1000)]  # n_ctx not a multiple of 256
    cases += [
        Case(SHAPES[n], c, flash_attn=False)
        for n, c in (("A", 2048), ("A", 8192), ("C", 2048), ("C", 8192), ("E", 2048), ("E", 4096))
    ]
    cases += [
        Case(SHAPES[n], c, kv_type="q8_0") for n, c in (("B", 2048), ("B", 8192), ("D", 2048), ("D", 4096), ("F", 4096))
    ]
    return cases


def quick_matrix() -> list[Case]:
    a, b = SHAPES["A"], SHAPES["B"]
    return [
        Case(a, 512),
        Case(a, 2048),
        Case(b, 512),
        Case(b, 2048),
        Case(a, 2048, flash_attn=False),
        Case(b, 2048, kv_type="q8_0"),
    ]


def _spec_key(spec: TinySpec) -> str:
    """Cache key: the spec and the generator's source (a changed generator makes new files)."""
    blob = json.dumps(asdict(spec), sort_keys=True) + Path(tiny_gguf.__file__).read_text()
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def model_path(shape: Shape, max_ctx: int, folder: Path) -> tuple[Path, float]:
    """The model file for ``shape`` (generated unless cached) and the seconds spent generating it."""
    spec = shape.spec(max_ctx)
    path = folder / f"{shape.name}-{_spec_key(spec)}.gguf"
    if path.exists():
        return path, 0.0
    t0 = time.monotonic()
    tmp = path.with_suffix(".gguf.part")
    write_tiny_gguf(tmp, spec)
    os.replace(tmp, path)
    return path, time.monotonic() - t0


def err_pct(estimate: float, measured: float) -> float:
    return (estimate - measured) / measured * 100


def run_case(case: Case, path: Path) -> dict:
    t0 = time.monotonic()
    measured = probe(
        str(path),
        case.ctx,
        kv_type=case.kv_type,
        flash_attn=case.flash_attn,
        n_batch=512,
        n_threads=2,
        timeout=PROBE_TIMEOUT_S,
    )
    settings = RuntimeSettings(
        n_ctx=case.ctx, n_batch=512, n_ubatch=512, kv_type=case.kv_type, flash_attn=case.flash_attn, backend="cpu"
    )
    est = estimate_memory(model_facts(path), settings)
    logged = measured["logged"]
    logged_sum = sum(logged.get(k, 0.0) for k in ("model", "KV", "compute", "output"))
    before = measured["rss_before"]
    return {
        "shape": case.shape.name,
        "label": case.shape.label,
        "file_bytes": path.stat().st_size,
        "ctx": case.ctx,
        "n_ctx": measured["n_ctx"],
        "flash_attn": case.flash_attn,
        "kv_type": case.kv_type,
        "estimate": {
            "weights": est.weights_bytes,
            "kv": est.kv_cache_bytes,
            "compute": est.compute_bytes,
            "overhead": est.overhead_bytes,
            "total": est.total_bytes,
        },
        "logged": logged,
        "logged_sum": logged_sum,
        "measured": {
            "delta": measured["delta"],
            "after_load": measured["rss_after_load"] - before,
            "after_fill": measured["rss_after_fill"] - before,
        },
        "err_pct": err_pct(est.total_bytes, measured["delta"]),
        "logged_err_pct": err_pct(logged_sum, measured["delta"]),
        "probe_s": time.monotonic() - t0,
    }


HEADER = (
    f"{'shape':<38} {'file MiB':>8} {'ctx':>5} {'fa':>3} {'kv':>4} {'est MiB':>8} {'meas MiB':>8} "
    f"{'err %':>6} {'logged MiB':>10} {'log err %':>9}"
)


def format_row(r: dict) -> str:
    shape = f"{r['shape']}: {r['label']}"
    return (
        f"{shape:<38} {r['file_bytes'] / MiB:>8.1f} {r['ctx']:>5} {'on' if r['flash_attn'] else 'off':>3} "
        f"{r['kv_type']:>4} {r['estimate']['total'] / MiB:>8.1f} {r['measured']['delta'] / MiB:>8.1f} "
        f"{r['err_pct']:>+6.2f} {r['logged_sum'] / MiB:>10.1f} {r['logged_err_pct']:>+9.2f}"
    )


def format_detail(r: dict) -> str:
    e, lg, m = r["estimate"], r["logged"], r["measured"]

    def mib(x: float) -> str:
        return f"{x / MiB:.1f}"

    return (
        f"    est w={mib(e['weights'])} kv={mib(e['kv'])} compute={mib(e['compute'])} "
        f"overhead={mib(e['overhead'])} | logged model={mib(lg.get('model', 0))} KV={mib(lg.get('KV', 0))} "
        f"compute={mib(lg.get('compute', 0))} output={mib(lg.get('output', 0))} | rss load={mib(m['after_load'])} "
        f"fill={mib(m['after_fill'])} peak={mib(m['delta'])} | {r['probe_s']:.0f} s"
    )


def summary(errors: list[float]) -> tuple[float, float]:
    abs_err = [abs(x) for x in errors]
    return (max(abs_err), statistics.median(abs_err)) if abs_err else (float("nan"), float("nan"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small subset (two small models)")
    ap.add_argument("--cache", action="store_true", help=f"keep generated models in {CACHE_DIR.relative_to(ROOT)}")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every component of each case")
    ap.add_argument("--max-err", type=float, default=5.0, help="exit 1 above this max error %% (0: never)")
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    cases = quick_matrix() if args.quick else full_matrix()
    by_shape: dict[str, list[Case]] = {}
    for case in cases:
        by_shape.setdefault(case.shape.name, []).append(case)
    results: list[dict] = []
    failures: list[str] = []
    gen_s = 0.0
    print(f"{len(cases)} cases on {len(by_shape)} models (one fresh llama.cpp process each, 2 threads)")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="orchard-estimate-") as tmp:
        folder = CACHE_DIR if args.cache else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(by_shape, key=list(SHAPES).index):
            group = sorted(by_shape[name], key=lambda c: (not c.flash_attn, c.kv_type, c.ctx))
            max_ctx = max(max(SHAPES[name].ctxs), *(c.ctx for c in group))
            path, secs = model_path(SHAPES[name], max_ctx, folder)
            gen_s += secs
            try:
                for case in group:
                    try:
                        r = run_case(case, path)
                    except ProbeError as exc:
                        failures.append(f"{name} ctx={case.ctx} fa={case.flash_attn} kv={case.kv_type}: {exc}")
                        print(f"FAILED {failures[-1]}\n{exc.log_tail}", flush=True)
                        continue
                    results.append(r)
                    print(format_row(r), flush=True)
                    if args.verbose:
                        print(format_detail(r), flush=True)
            finally:
                if not args.cache:
                    path.unlink(missing_ok=True)  # free the disk before the next (bigger) model

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"estimate_accuracy{'-quick' if args.quick else ''}.json").write_text(json.dumps(results, indent=1))
    ours = summary([r["err_pct"] for r in results])
    base = summary([r["logged_err_pct"] for r in results])
    print(
        f"cases={len(results)} failed={len(failures)} runtime_s={time.monotonic() - t_start:.0f} "
        f"(generating models: {gen_s:.0f} s)"
    )
    status = 0
    if failures:
        print(f"FAIL: {len(failures)} probe(s) failed: " + "; ".join(failures))
        status = 1
    if args.max_err and ours[0] > args.max_err:
        print(f"FAIL: max error {ours[0]:.2f}% is above {args.max_err:g}%")
        status = 1
    print(f"baseline_logged_sum: max_abs_err_pct={base[0]:.2f} median_abs_err_pct={base[1]:.2f}")
    print(f"improvement_ratio={base[0] / ours[0] if ours[0] else float('inf'):.2f}")
    print(f"max_abs_err_pct={ours[0]:.2f} median_abs_err_pct={ours[1]:.2f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
