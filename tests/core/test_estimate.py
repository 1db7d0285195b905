"""The memory estimate against what real llama.cpp allocates and what the process really uses."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from macapp.core.models.estimate import (
    RuntimeSettings,
    estimate_memory,
    kv_cache_bytes,
    max_ctx_that_fits,
    padded_ctx,
    verdict_for,
)
from macapp.core.models.facts import read_facts
from tests.conftest import SHAPES

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def probe(model: Path, ctx: int, kv: str, flash_attn: bool) -> dict:
    """Load the model in a fresh process with real llama.cpp, fill the context, report memory."""
    cmd = [sys.executable, "-m", "bench.memprobe", str(model), "--ctx", str(ctx), "--kv-type", kv]
    if flash_attn:
        cmd.append("--flash-attn")
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


CASES = [(name, kv, fa) for name in sorted(SHAPES) for kv, fa in (("f16", True), ("q8_0", True), ("f16", False))]


@pytest.mark.slow
@pytest.mark.parametrize("name, kv, flash_attn", CASES)
def test_estimate_matches_llama_cpp(tiny_models, name, kv, flash_attn):
    model = tiny_models[name]
    facts = read_facts(model)
    ctx = 1024
    measured = probe(model, ctx, kv, flash_attn)
    logged = measured["logged"]
    est = estimate_memory(facts, RuntimeSettings(n_ctx=ctx, kv_type=kv, flash_attn=flash_attn))
    # weights and KV cache are what llama.cpp logs (it prints MiB with two decimals)
    assert abs(est.weights_bytes - logged["model"]) <= 0.006 * MiB
    assert abs(est.kv_cache_bytes - logged["KV"]) <= 0.006 * MiB
    # the Metal model of the compute buffer is llama.cpp's reserved buffer
    metal = estimate_memory(facts, RuntimeSettings(n_ctx=ctx, kv_type=kv, flash_attn=flash_attn, backend="metal"))
    assert metal.compute_bytes == pytest.approx(logged["compute"], rel=0.2)
    # and the CPU total is what the process really grew by (bench/estimate_accuracy.py: within 5% at scale)
    assert est.total_bytes == pytest.approx(measured["delta"], rel=0.10)
    # summing the logged buffers misses the work buffer and the runtime's own memory
    assert abs(est.total_bytes - measured["delta"]) < abs(sum(logged.values()) - measured["delta"])


@pytest.mark.slow
@pytest.mark.parametrize("ctx", [1024, 4096])
def test_sliding_window_kv_matches_llama_cpp(tmp_path, ctx):
    from macapp.core.models.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(
        tmp_path / "gemma2.gguf",
        arch="gemma2",
        n_embd=128,
        n_head=4,
        n_head_kv=2,
        n_ff=256,
        n_layer=4,
        sliding_window=512,
        ctx=8192,
    )
    facts = read_facts(model)
    assert facts.sliding_window == 512 and facts.swa_layers == [True, False, True, False]
    measured = probe(model, ctx, "f16", True)
    est = estimate_memory(facts, RuntimeSettings(n_ctx=ctx))
    assert est.kv_cache_bytes == measured["logged"]["KV"]  # SWA layers keep window + ubatch cells
    full = estimate_memory(facts, RuntimeSettings(n_ctx=ctx, swa_full=True))
    assert (full.kv_cache_bytes > est.kv_cache_bytes) == (ctx > 1024)
    assert est.total_bytes == pytest.approx(measured["delta"], rel=0.10)


def test_kv_cache_formula_gqa_and_types(tiny_models):
    facts = read_facts(tiny_models["gqa_f16"])  # 4 heads, 1 KV head, head dim 32, 2 layers
    s = RuntimeSettings(n_ctx=1000)
    assert padded_ctx(1000) == 1024
    assert kv_cache_bytes(facts, s) == 2 * 1024 * 1 * (32 + 32) * 2
    assert kv_cache_bytes(facts, replace(s, kv_type="q8_0")) == 2 * 1024 * 1 * 64 * 34 // 32


def test_sliding_window_layers_cache_only_the_window(tiny_models):
    facts = replace(read_facts(tiny_models["mha_f32"]), sliding_window=1024, swa_layers=[True, False])
    full = kv_cache_bytes(facts, RuntimeSettings(n_ctx=8192, swa_full=True))
    swa = kv_cache_bytes(facts, RuntimeSettings(n_ctx=8192))
    per_cell = 2 * 32 * 2 * 2  # kv heads x (k+v) x f16 for one layer
    assert full == 2 * 8192 * per_cell
    assert swa == 8192 * per_cell + padded_ctx(1024 + 512) * per_cell


def test_verdict_thresholds():
    assert verdict_for(80, 100) == "fits"
    assert verdict_for(91, 100) == "tight"
    assert verdict_for(100, 100) == "tight"
    assert verdict_for(101, 100) == "too_big"


def test_max_ctx_that_fits_is_the_boundary(tiny_models):
    facts = read_facts(tiny_models["gqa_q8_bigvocab"])  # trained context 4096
    s = RuntimeSettings(n_ctx=2048)
    budget = estimate_memory(facts, s).total_bytes
    assert max_ctx_that_fits(facts, s, budget) == 2048
    assert max_ctx_that_fits(facts, s, budget - 1) == 1792
    assert max_ctx_that_fits(facts, s, 10**12) == 4096  # never beyond the trained context
    assert max_ctx_that_fits(facts, s, 1000) == 0
    est = estimate_memory(facts, s, budget=budget - 1)
    assert est.verdict == "too_big" and est.max_ctx_that_fits == 1792


def test_partial_offload_counts_only_gpu_layers(tiny_models):
    facts = read_facts(tiny_models["gqa_q8_bigvocab"])
    full = estimate_memory(facts, RuntimeSettings(n_ctx=2048, backend="metal"))
    half = estimate_memory(facts, RuntimeSettings(n_ctx=2048, backend="metal", gpu_layers=1))
    assert half.total_bytes == full.total_bytes
    assert half.gpu_bytes < full.gpu_bytes
    assert half.gpu_bytes >= facts.layer_bytes[-1]


def test_json_keys_are_the_contract(tiny_models):
    est = estimate_memory(read_facts(tiny_models["mha_f32"]), RuntimeSettings(n_ctx=512), budget=10**9)
    keys = {
        "weights_bytes",
        "kv_cache_bytes",
        "compute_bytes",
        "total_bytes",
        "budget_bytes",
        "verdict",
        "max_ctx_that_fits",
    }
    assert keys <= set(est.to_json())
    assert est.total_bytes == est.weights_bytes + est.kv_cache_bytes + est.compute_bytes + est.overhead_bytes
