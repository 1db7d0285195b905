"""LoRA training through Orchard (``train_lora``: child process + JSON progress) against ``python -m mlx_lm lora``.

Same generated mlx model (hidden 256, 4 blocks, vocabulary ~1000), same chat data (train/valid
folder), same settings (iterations, batch, rank, layers, learning rate, prompt masking, reports,
checkpoints, seed), runs interleaved in one invocation. Tokens/s are the trainer's own reports
(the first report, which includes compiling the step, is dropped), median per run, then median of
runs. Peak memory is mlx's peak (``mx.get_peak_memory``, what counts against Metal's working set)
at the end of each training process: the app's runner reports it; ``mlx_lm lora`` runs unchanged
under ``runpy`` with an exit hook that prints it. ``wall_ratio`` (mlx_lm's seconds from first to
last report over the app's) is informational: it includes evaluation and checkpoint time.

Usage: ``python -m bench.tune_overhead [--runs N] [--iters N]``; the last line reads
``train_tokens_per_s_ratio=… peak_mem_ratio=… … ok=…``; exit 1 if either target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TPS_TARGET = 0.95
MEM_TARGET = 1.05
SETTINGS = dict(
    batch_size=4,
    rank=8,
    layers=4,
    learning_rate=1e-4,
    max_seq_length=256,
    steps_per_report=10,
    steps_per_eval=1000,
    save_every=20,
    seed=0,
    mask_prompt=True,
)
_REF_HOOK = (
    "import atexit, runpy, sys\n"
    "import mlx.core as mx\n"
    "atexit.register(lambda: print('PEAK_MEMORY', mx.get_peak_memory(), flush=True))\n"
    "sys.argv = ['mlx_lm'] + sys.argv[1:]\n"
    "runpy.run_module('mlx_lm', run_name='__main__', alter_sys=True)\n"
)
_REPORT = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+\S\s+([\d,]+)\s+[\d.]+k\s*$")  # iter, loss, arrow, tok/s, tokens
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def build(root: Path) -> tuple[Path, Path]:
    """The model folder and a data folder with train.jsonl / valid.jsonl (chat examples)."""
    from macapp.core.tuning.tiny_mlx import _WORDS, write_tiny_mlx

    model = write_tiny_mlx(root / "model", hidden=256, layers=4, heads=4, kv_heads=4, ff=704, vocab=1000, seed=1)
    rng = random.Random(0)

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))

    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(model)

    def example() -> str:
        """A chat of 66-96 tokens: every batch pads to 97, so the compiled step is built once (mlx's CPU
        compiler is slow; a new padded length mid-run would time the compiler, not training)."""
        while True:
            messages = [
                {"role": "user", "content": words(5, 20) + "?"},
                {"role": "assistant", "content": words(5, 25) + "."},
            ]
            if 66 <= len(tokenizer.apply_chat_template(messages, return_dict=False)) <= 96:
                return json.dumps({"messages": messages})

    data = root / "data"
    data.mkdir()
    for name, count in (("train", 96), ("valid", 8)):
        (data / f"{name}.jsonl").write_text("\n".join(example() for _ in range(count)) + "\n", encoding="utf-8")
    return model, data


def steady(rates: list[float]) -> float:
    return statistics.median(rates[1:] or rates)


def run_app(model: Path, data: Path, iters: int, name: str) -> tuple[float, int, float]:
    from macapp.core.tuning.train import TrainOptions, train_lora

    opts = TrainOptions(base=model, data=data, name=name, iters=iters, check_memory=False, **SETTINGS)
    gen = train_lora(opts)
    rates, stamps = [], []
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            result = done.value
            break
        if step.stage == "training":
            rates.append(step.tokens_per_second)
            stamps.append(time.perf_counter())
    return steady(rates), result.peak_memory_bytes, stamps[-1] - stamps[0]


def run_reference(model: Path, data: Path, iters: int, out: Path) -> tuple[float, int, float]:
    cmd = [
        sys.executable,
        "-c",
        _REF_HOOK,
        "lora",
        "--model",
        str(model),
        "--train",
        "--data",
        str(data),
        "--iters",
        str(iters),
        "--batch-size",
        str(SETTINGS["batch_size"]),
        "--num-layers",
        str(SETTINGS["layers"]),
        "--learning-rate",
        str(SETTINGS["learning_rate"]),
        "--max-seq-length",
        str(SETTINGS["max_seq_length"]),
        "--steps-per-report",
        str(SETTINGS["steps_per_report"]),
        "--steps-per-eval",
        str(SETTINGS["steps_per_eval"]),
        "--save-every",
        str(SETTINGS["save_every"]),
        "--seed",
        str(SETTINGS["seed"]),
        "--mask-prompt",
        "--adapter-path",
        str(out),
        "-c",
        str(_lora_config(out)),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    rates, stamps, peak, tail = [], [], None, []
    for line in proc.stdout:
        tail = (tail + [line])[-20:]
        if match := _REPORT.match(_ANSI.sub("", line)):
            rates.append(float(match.group(3).replace(",", "")))
            stamps.append(time.perf_counter())
        elif line.startswith("PEAK_MEMORY"):
            peak = int(line.split()[1])
    if proc.wait() != 0 or peak is None or len(rates) < 2:
        raise SystemExit("mlx_lm lora failed:\n" + "".join(tail))
    return steady(rates), peak, stamps[-1] - stamps[0]


def _lora_config(out: Path) -> Path:
    """rank (not a command-line flag of mlx_lm lora) goes in its YAML config; scale and dropout as the app's."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(f"lora_parameters:\n  rank: {SETTINGS['rank']}\n  scale: 20.0\n  dropout: 0.0\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MACAPP_HOME"] = str(root / "home")
        model, data = build(root)
        app_tps, ref_tps, app_mem, ref_mem, app_wall, ref_wall = [], [], [], [], [], []
        for i in range(args.runs):
            for who in ("app", "ref") if i % 2 == 0 else ("ref", "app"):
                if who == "app":
                    tps, mem, wall = run_app(model, data, args.iters, f"bench-{i}")
                    app_tps.append(tps), app_mem.append(mem), app_wall.append(wall)
                else:
                    tps, mem, wall = run_reference(model, data, args.iters, root / "ref" / f"run-{i}")
                    ref_tps.append(tps), ref_mem.append(mem), ref_wall.append(wall)
            print(
                f"run {i + 1}: app {app_tps[-1]:.0f} tok/s, peak {app_mem[-1] / 1e6:.1f} MB; "
                f"mlx_lm {ref_tps[-1]:.0f} tok/s, peak {ref_mem[-1] / 1e6:.1f} MB",
                flush=True,
            )
    tps_ratio = statistics.median(app_tps) / statistics.median(ref_tps)
    mem_ratio = statistics.median(app_mem) / statistics.median(ref_mem)
    wall_ratio = statistics.median(ref_wall) / statistics.median(app_wall)
    ok = tps_ratio >= TPS_TARGET and mem_ratio <= MEM_TARGET
    print(
        f"train_tokens_per_s_ratio={tps_ratio:.3f} peak_mem_ratio={mem_ratio:.3f} wall_ratio={wall_ratio:.3f} "
        f"app_tps={statistics.median(app_tps):.0f} mlx_lm_tps={statistics.median(ref_tps):.0f} "
        f"targets=>={TPS_TARGET},<={MEM_TARGET} ok={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
