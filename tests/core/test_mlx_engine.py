"""MlxEngine on real mlx-lm (CPU) with a tiny generated model and a really trained LoRA adapter."""

from __future__ import annotations

import json
import shutil

import pytest

from macapp.core.engines.base import SamplingSettings
from macapp.core.engines.mlx_engine import MlxEngine
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, drain
from macapp.core.tuning.tiny_mlx import write_tiny_mlx
from tests.fixtures.tiny_adapter import ANSWER, QUESTION, train_tiny_adapter

ASK = [{"role": "user", "content": QUESTION}]
USER = [{"role": "user", "content": "hello world, what is the model?"}]
GREEDY = SamplingSettings(temperature=0.0, top_k=0, repeat_penalty=1.0, max_tokens=24, seed=0)


def loaded(path, adapter=None, **options) -> MlxEngine:
    engine = MlxEngine(path, adapter, **options)
    for _ in engine.load():
        pass
    return engine


def answer(engine, messages, sampling=GREEDY) -> str:
    return drain(engine.stream_chat(messages, sampling))[1].text


@pytest.fixture(scope="module")
def adapter(tiny_mlx, tmp_path_factory):
    return train_tiny_adapter(tiny_mlx, tmp_path_factory.mktemp("adapter") / "sky")


@pytest.fixture(scope="module")
def engine(tiny_mlx):
    eng = loaded(tiny_mlx)
    yield eng
    eng.unload()


def test_load_reports_progress_and_unload_frees(tiny_mlx):
    engine = MlxEngine(tiny_mlx)
    steps = list(engine.load())
    fractions = [s.fraction for s in steps if s.stage == "loading"]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 5
    assert engine.loaded and engine.n_ctx == 2048 and engine.name == "mlx"
    engine.unload()
    assert not engine.loaded
    with pytest.raises(UserError, match="No model is loaded"):
        engine.count_tokens("hello")


def test_cancelled_load_raises_cancelled(tiny_mlx):
    cancel = CancelToken()
    steps = MlxEngine(tiny_mlx).load(cancel)
    next(steps)
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(steps)


def test_streaming_chunks_add_up_to_the_answer(engine):
    chunks, result = drain(engine.stream_chat(USER, GREEDY))
    assert len(chunks) > 5
    assert "".join(c.text for c in chunks) == result.text and result.text.strip()
    assert [c.completion_tokens for c in chunks] == sorted(c.completion_tokens for c in chunks)
    assert result.finish_reason == "length" and result.completion_tokens == 24
    assert result.prompt_tokens == engine.count_chat_tokens(USER)
    assert result.tokens_per_s > 0 and result.prompt_s > 0


def test_max_tokens_limits_the_answer(engine):
    result = drain(engine.stream_chat(USER, GREEDY.with_changes(max_tokens=5)))[1]
    assert result.completion_tokens == 5 and result.finish_reason == "length"


def test_cancel_stops_mid_answer_and_keeps_the_text(engine):
    cancel = CancelToken()
    stream = engine.stream_chat(USER, GREEDY.with_changes(max_tokens=500), cancel)
    first = next(stream)
    cancel.cancel()
    rest, result = drain(stream)
    assert result.finish_reason == "cancelled" and result.completion_tokens < 10
    assert result.text == first.text + "".join(c.text for c in rest)


def test_same_seed_same_answer_other_seed_other_answer(engine):
    hot = SamplingSettings(temperature=1.0, seed=42, max_tokens=20)
    assert answer(engine, USER, hot) == answer(engine, USER, hot)
    assert answer(engine, USER, hot) != answer(engine, USER, hot.with_changes(seed=7))


def test_a_small_context_ends_the_answer_or_refuses_the_prompt(tiny_mlx):
    small = loaded(tiny_mlx, n_ctx=40)
    prompt = small.count_chat_tokens(USER)
    result = drain(small.stream_chat(USER, GREEDY.with_changes(max_tokens=0)))[1]
    assert result.finish_reason == "context" and result.completion_tokens == 40 - prompt
    with pytest.raises(UserError, match="context window holds 40"):
        drain(small.stream_chat([{"role": "user", "content": "hello world " * 40}], GREEDY))


def test_the_next_turn_reuses_the_last_exchange(engine):
    first = drain(engine.stream_chat(USER, GREEDY))[1]
    follow_up = [*USER, {"role": "assistant", "content": first.text}, {"role": "user", "content": "and the file?"}]
    second = drain(engine.stream_chat(follow_up, GREEDY))[1]
    assert second.prompt_eval_tokens < second.prompt_tokens - first.prompt_tokens - first.completion_tokens + 3


def test_a_trimmed_cache_answers_as_a_fresh_engine(tiny_mlx, engine):
    def turn(reply: str) -> list[dict]:
        return [*USER, {"role": "assistant", "content": reply}, {"role": "user", "content": "and the file?"}]

    drain(engine.stream_chat(turn("the model is small."), GREEDY))
    other = drain(engine.stream_chat(turn("hello world."), GREEDY))[1]  # shares the prompt up to the reply
    assert 0 < other.prompt_eval_tokens < other.prompt_tokens - engine.count_chat_tokens(USER) + 3
    assert answer(loaded(tiny_mlx), turn("hello world.")) == other.text
    again = drain(engine.stream_chat(turn("hello world."), GREEDY))[1]  # the same prompt: all but one token cached
    assert again.prompt_eval_tokens == 1 and again.text == other.text


def test_the_adapter_changes_greedy_output_and_stops_at_the_end_of_turn(tiny_mlx, adapter, engine):
    tuned = loaded(tiny_mlx, adapter)
    result = drain(tuned.stream_chat(ASK, GREEDY))[1]
    assert result.text == ANSWER and result.finish_reason == "stop"
    assert answer(engine, ASK) != ANSWER
    stopped = drain(tuned.stream_chat(ASK, GREEDY.with_changes(stop=("blue",))))[1]
    assert stopped.text == "the sky is " and stopped.finish_reason == "stop"


def test_set_adapter_switches_without_reloading_the_base(tiny_mlx, adapter, engine):
    plain = answer(engine, ASK)
    switching = loaded(tiny_mlx)
    assert answer(switching, ASK) == plain
    switching.set_adapter(adapter)
    assert answer(switching, ASK) == ANSWER
    switching.set_adapter(None)
    assert answer(switching, ASK) == plain and switching.adapter_dir is None
    switching.set_adapter(adapter)
    assert answer(switching, ASK) == ANSWER and switching.adapter_dir == adapter


def test_missing_or_foreign_models_and_adapters_are_user_errors(tiny_mlx, adapter, tmp_path):
    with pytest.raises(UserError, match="folder is gone"):
        list(MlxEngine(tmp_path / "nope").load())
    with pytest.raises(UserError, match="not an MLX model folder"):
        list(MlxEngine(tmp_path).load())
    alien = shutil.copytree(tiny_mlx, tmp_path / "alien")
    config = json.loads((alien / "config.json").read_text())
    (alien / "config.json").write_text(json.dumps({**config, "model_type": "no_such_architecture"}))
    with pytest.raises(UserError, match="could not be loaded"):
        list(MlxEngine(alien).load())
    wider = write_tiny_mlx(tmp_path / "wider", hidden=96)
    with pytest.raises(UserError, match="does not fit"):
        list(MlxEngine(wider, adapter).load())
    engine = loaded(wider)
    with pytest.raises(UserError, match="does not fit"):
        engine.set_adapter(adapter)
    assert answer(engine, ASK, GREEDY.with_changes(max_tokens=3))  # the base still runs, unadapted
    with pytest.raises(UserError, match="not an mlx-lm adapter folder"):
        engine.set_adapter(tmp_path)
