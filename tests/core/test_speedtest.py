"""The doctor's speed test on real llama.cpp with tiny generated GGUF models."""

from __future__ import annotations

import time

import pytest

from macapp.core.doctor.speedtest import speed_test, speed_test_smallest
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.library import list_library
from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf
from macapp.core.progress import CancelToken, drain
from macapp.core.settings import Settings

CTX = 32768


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """A long context, so the time budget runs out long before the context does."""
    spec = TinySpec(n_embd=128, n_head=4, n_head_kv=4, n_ff=256, n_layer=2, ctx=CTX)
    return write_tiny_gguf(tmp_path_factory.mktemp("speed") / "slow.gguf", spec)


def test_stops_at_the_time_budget(slow_model):
    started = time.perf_counter()
    steps, result = drain(speed_test(str(slow_model), seconds=1.0, n_ctx=CTX, max_tokens=1_000_000))
    wall = time.perf_counter() - started
    assert result.stopped_by == "time" and result.skipped is None
    assert result.tokens > 0 and result.tokens_per_s > 0 and result.prompt_tokens_per_s > 0
    # It stops at the first token past the budget: the overshoot is about one token's time (2 cores are shared here).
    per_token = result.generation_s / result.tokens
    assert 1.0 <= result.generation_s < 1.0 + 0.25 + 3 * per_token, result
    assert wall < result.load_s + result.prompt_s + result.generation_s + 2.0
    assert result.prompt_tokens >= 100 and result.n_ctx == CTX and result.quantization == "F32"
    assert result.load_s > 0 and result.file_name == "slow.gguf" and result.file_size == slow_model.stat().st_size
    assert steps[-1].stage == "generating" and steps[-1].tokens == result.tokens


def test_progress_loads_then_generates(slow_model):
    steps, result = drain(speed_test(str(slow_model), seconds=0.3, n_ctx=CTX))
    stages = [s.stage for s in steps]
    first_generating = stages.index("generating")
    assert first_generating > 0 and set(stages[:first_generating]) == {"loading"}
    assert steps[first_generating - 1].fraction == 1.0
    tokens = [s.tokens for s in steps[first_generating:]]
    assert tokens == sorted(tokens) and tokens[-1] == result.tokens
    assert all(0.0 <= s.fraction <= 1.0 for s in steps[first_generating + 1 :])


def test_max_tokens_ends_before_the_budget(slow_model):
    _, result = drain(speed_test(str(slow_model), seconds=30, n_ctx=CTX, max_tokens=20))
    assert (result.tokens, result.stopped_by) == (20, "max_tokens")
    assert result.generation_s < 5


def test_cancel_while_generating_raises_cancelled(slow_model):
    cancel = CancelToken()
    stream = speed_test(str(slow_model), seconds=30, n_ctx=CTX, max_tokens=1_000_000, cancel=cancel)
    started = None
    with pytest.raises(Cancelled):
        for step in stream:
            if step.stage == "generating" and step.tokens >= 5 and started is None:
                cancel.cancel()
                started = time.perf_counter()
    assert started is not None and time.perf_counter() - started < 2.0


def test_cancel_before_loading_raises_cancelled(slow_model):
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        drain(speed_test(str(slow_model), seconds=5, n_ctx=CTX, cancel=cancel))


def test_non_positive_budget_is_a_user_error(slow_model):
    with pytest.raises(UserError):
        drain(speed_test(str(slow_model), seconds=0))


def test_smallest_library_model_is_tested_or_skipped(tmp_path, tiny_models, slow_model):
    assert drain(speed_test_smallest([]))[1].skipped == "no model installed"
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "big.gguf").write_bytes(slow_model.read_bytes())
    (folder / "broken.gguf").write_bytes(b"GGUF" + bytes(100))
    Settings(model_dirs=[str(folder)], include_lm_studio=False).save()
    assert "can generate" in drain(speed_test_smallest([e for e in list_library() if e.facts is None]))[1].skipped
    (folder / "small.gguf").write_bytes(tiny_models["mha_f32"].read_bytes())
    entries = list_library()
    _, result = drain(speed_test_smallest(entries, seconds=0.2))
    assert result.file_name == "small.gguf" and result.tokens > 0
    _, too_small = drain(speed_test_smallest(entries, seconds=0.2, budget=1000))
    assert too_small.tokens == 0 and "does not fit" in too_small.skipped and "small.gguf" in too_small.skipped
    assert too_small.to_json() == {"skipped": too_small.skipped}
