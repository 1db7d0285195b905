"""LlamaCppEngine on real llama.cpp with tiny generated GGUF models."""

from __future__ import annotations

import llama_cpp
import pytest

from macapp.core.engines.base import SamplingSettings
from macapp.core.engines.llama_engine import LlamaCppEngine
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.estimate import RuntimeSettings
from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf
from macapp.core.progress import CancelToken, drain

USER = [{"role": "user", "content": "hello world, what is the model?"}]


def loaded(path, n_ctx: int = 1024) -> LlamaCppEngine:
    engine = LlamaCppEngine(path, RuntimeSettings(n_ctx=n_ctx))
    for _ in engine.load():
        pass
    return engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = write_tiny_gguf(tmp_path_factory.mktemp("eng") / "tiny.gguf")
    eng = loaded(path)
    yield eng
    eng.unload()


def test_load_reports_progress_and_facts(tiny_models):
    engine = LlamaCppEngine(tiny_models["gqa_f16"], RuntimeSettings(n_ctx=512))
    steps = list(engine.load())
    fractions = [s.fraction for s in steps if s.stage == "loading"]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 2
    assert engine.loaded and engine.n_ctx == 512 and engine.facts.n_head_kv == 1
    engine.unload()
    assert not engine.loaded


def test_streaming_chunks_add_up_to_the_answer(engine):
    chunks, result = drain(engine.stream_chat(USER, SamplingSettings(seed=3, max_tokens=40)))
    assert len(chunks) > 5
    assert "".join(c.text for c in chunks) == result.text and result.text.strip()
    assert [c.completion_tokens for c in chunks] == sorted(c.completion_tokens for c in chunks)
    assert result.finish_reason == "length" and result.completion_tokens == 40
    assert result.prompt_tokens == engine.count_chat_tokens(USER)
    assert result.tokens_per_s > 0


def test_max_tokens_limits_the_answer(engine):
    _, result = drain(engine.stream_chat(USER, SamplingSettings(seed=1, max_tokens=5)))
    assert result.completion_tokens == 5 and result.finish_reason == "length"


def test_cancel_stops_mid_answer_and_keeps_the_text(engine):
    cancel = CancelToken()
    stream = engine.stream_chat(USER, SamplingSettings(seed=2, max_tokens=500), cancel)
    first = next(stream)
    cancel.cancel()
    rest, result = drain(stream)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 10
    assert result.text == first.text + "".join(c.text for c in rest)


def test_same_seed_same_answer_other_seed_other_answer(engine):
    hot = SamplingSettings(temperature=1.0, seed=42, max_tokens=30)
    a = drain(engine.stream_chat(USER, hot))[1].text
    b = drain(engine.stream_chat(USER, hot))[1].text
    c = drain(engine.stream_chat(USER, hot.with_changes(seed=43)))[1].text
    assert a == b
    assert a != c


def test_stop_string_ends_the_answer_before_it(engine):
    settings = SamplingSettings(seed=5, max_tokens=60)
    full = drain(engine.stream_chat(USER, settings))[1].text
    stop = full[20:24]
    assert stop.strip(), full
    chunks, result = drain(engine.stream_chat(USER, settings.with_changes(stop=(stop,))))
    assert result.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]
    assert "".join(c.text for c in chunks) == result.text  # held-back text never leaked out


def test_end_of_turn_token_stops_and_is_not_shown(tmp_path):
    engine = loaded(write_tiny_gguf(tmp_path / "eog.gguf", favour_token=4))  # 4 = <|im_end|>
    _, result = drain(engine.stream_chat(USER, SamplingSettings(seed=1)))
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 0 and "<|im_end|>" not in result.text


def test_token_counting_matches_llama_cpp(engine):
    text = "hello world, the model is a chat model"
    assert engine.count_tokens(text) == len(engine.llama.tokenize(text.encode(), add_bos=False))
    longer = USER + [{"role": "assistant", "content": "the answer"}, {"role": "user", "content": "and you?"}]
    assert engine.count_chat_tokens(longer) > engine.count_chat_tokens(USER) > engine.count_tokens(USER[0]["content"])


def _perf_reset(engine):
    llama_cpp.llama_perf_context_reset(engine.llama.ctx)


def _prompt_tokens_evaluated(engine) -> int:
    data = llama_cpp.llama_perf_context(engine.llama.ctx)
    return data.n_p_eval


def test_prefix_reuse_evaluates_only_new_tokens(tmp_path):
    engine = loaded(write_tiny_gguf(tmp_path / "reuse.gguf"), n_ctx=2048)
    settings = SamplingSettings(seed=7, max_tokens=12)
    history = [{"role": "system", "content": "You are a model of few words."}, *USER]
    _, first = drain(engine.stream_chat(history, settings))
    assert first.prompt_eval_tokens == first.prompt_tokens
    previous = first
    for question in ("and what is the chat?", "how is it, you model?"):
        history = [*history, {"role": "assistant", "content": previous.text}, {"role": "user", "content": question}]
        _perf_reset(engine)
        _, result = drain(engine.stream_chat(history, settings))
        cached = previous.prompt_tokens + previous.completion_tokens
        assert result.prompt_eval_tokens == result.prompt_tokens - cached
        assert _prompt_tokens_evaluated(engine) == result.prompt_eval_tokens  # llama.cpp's own counter agrees
        assert result.prompt_eval_tokens < 40
        previous = result


def test_prompt_longer_than_the_context_is_a_clear_error(tmp_path):
    engine = loaded(write_tiny_gguf(tmp_path / "small.gguf"), n_ctx=256)
    with pytest.raises(UserError, match="context window holds 256"):
        drain(engine.stream_chat([{"role": "user", "content": "hello world " * 300}]))


def test_answer_stops_when_the_context_is_full(tmp_path):
    engine = loaded(write_tiny_gguf(tmp_path / "small.gguf"), n_ctx=256)
    _, result = drain(engine.stream_chat(USER, SamplingSettings(seed=1, max_tokens=0)))
    assert result.finish_reason == "context"
    assert result.prompt_tokens + result.completion_tokens == 256


HOSTILE = "{% for m in messages %}{{ cycler.__init__.__globals__.os.system('touch MARKER') }}{% endfor %}"


def test_hostile_template_runs_nothing_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = loaded(write_tiny_gguf(tmp_path / "hostile.gguf", chat_template=HOSTILE))
    _, result = drain(engine.stream_chat(USER, SamplingSettings(seed=1, max_tokens=5)))
    assert not (tmp_path / "MARKER").exists()
    assert result.completion_tokens == 5
    assert "unsafe" in engine.template_notice and "ChatML" in engine.template_notice


def test_broken_template_falls_back_with_a_message(tmp_path):
    engine = loaded(write_tiny_gguf(tmp_path / "broken.gguf", chat_template="{% for m in messages %}{{ m.content }"))
    _, result = drain(engine.stream_chat(USER, SamplingSettings(seed=1, max_tokens=5)))
    assert result.completion_tokens == 5
    assert "broken" in engine.template_notice and "ChatML" in engine.template_notice


def test_missing_model_file_is_a_clear_error(tmp_path):
    path = write_tiny_gguf(tmp_path / "gone.gguf")
    engine = LlamaCppEngine(path)
    path.unlink()
    with pytest.raises(UserError, match="gone"):
        list(engine.load())


def test_truncated_model_says_so(tmp_path):
    path = write_tiny_gguf(tmp_path / "cut.gguf", TinySpec(n_embd=128, n_ff=256))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 50_000])
    with pytest.raises(UserError, match="truncated|download it again"):
        list(LlamaCppEngine(path).load())


def test_fake_gguf_is_refused(tmp_path):
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"this is not a model at all" * 100)
    with pytest.raises(UserError, match="GGUF"):
        list(LlamaCppEngine(path).load())


@pytest.mark.parametrize(
    "key,value",
    [
        ("llama.block_count", 0),
        ("llama.block_count", 10**9),
        ("llama.context_length", 0),
        ("llama.context_length", 0xFFFFFFFF),
    ],
)
def test_absurd_hyperparameters_are_refused_before_llama_cpp_sees_them(tmp_path, key, value):
    # llama.cpp aborts the whole process (SIGABRT) on these; we must refuse first.
    path = write_tiny_gguf(tmp_path / "absurd.gguf", extra_kv={key: value})
    with pytest.raises(UserError, match="not a usable model"):
        list(LlamaCppEngine(path).load())


def test_cancelled_load_raises_cancelled_and_leaves_nothing_loaded(tiny_models):
    engine = LlamaCppEngine(tiny_models["gqa_q8_bigvocab"], RuntimeSettings(n_ctx=512))
    cancel = CancelToken()
    steps = engine.load(cancel)
    next(steps)  # checking
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(steps)
    assert not engine.loaded


def test_open_engine_chooses_llama_cpp_for_a_gguf_with_its_label_capabilities_and_threads(tmp_path):
    from macapp.core.engines import open_engine

    path = write_tiny_gguf(tmp_path / "tiny-open.gguf")
    engine = open_engine(str(path), n_ctx=512, n_threads=7)  # the window's choice of threads reaches llama.cpp
    assert isinstance(engine, LlamaCppEngine) and engine.n_threads == 7 and engine.label == "tiny-open.gguf"
    assert engine.capabilities.grammar and engine.capabilities.adapters and engine.capabilities.tools
    assert not engine.capabilities.vision
