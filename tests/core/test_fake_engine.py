"""The scriptable FakeEngine keeps the Engine contract, so tests of the logic around a model can trust it."""

from __future__ import annotations

import threading

import pytest

from macapp.core.engines.base import EngineCapabilities, GenerationChunk, SamplingSettings
from macapp.core.engines.fake import FakeEngine
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress, drain

HI = [{"role": "user", "content": "hi there"}]


def loaded(**options) -> FakeEngine:
    engine = FakeEngine(**options)
    drain(engine.load())
    return engine


def test_load_reports_progress_to_the_end_and_honours_cancel():
    engine = FakeEngine()
    steps, _ = drain(engine.load())
    assert all(isinstance(p, Progress) for p in steps) and steps[-1].fraction == 1.0
    assert [p.fraction for p in steps] == sorted(p.fraction for p in steps) and engine.loaded
    cancel = CancelToken()
    cancel.cancel()
    stopped = FakeEngine()
    with pytest.raises(Cancelled):
        drain(stopped.load(cancel))
    assert not stopped.loaded
    failing = FakeEngine(load_error=UserError("m.gguf could not be loaded: bad magic"))
    with pytest.raises(UserError, match="bad magic"):
        drain(failing.load())
    assert not failing.loaded


def test_enqueued_chunks_stream_in_order_and_the_prompts_are_recorded():
    engine = loaded().enqueue(["Hello", " world"]).enqueue(["Second"], finish_reason="length")
    chunks, result = drain(engine.stream_chat(HI))
    assert [c.text for c in chunks] == ["Hello", " world"] and [c.completion_tokens for c in chunks] == [1, 2]
    assert result.text == "Hello world" and result.finish_reason == "stop" and result.completion_tokens == 2
    assert result.prompt_tokens == engine.count_chat_tokens(HI) > engine.count_tokens("hi there")
    follow_up = [*HI, {"role": "assistant", "content": result.text}, {"role": "user", "content": "again"}]
    _, second = drain(engine.stream_chat(follow_up, SamplingSettings(seed=3)))
    assert second.text == "Second" and second.finish_reason == "length"
    assert engine.prompts == [HI, follow_up] and engine.samplings[1].seed == 3 and engine.pending == 0
    with pytest.raises(UserError, match="no answer queued"):
        drain(engine.stream_chat(HI))


def test_max_tokens_stop_strings_and_the_context_end_an_answer():
    engine = loaded(n_ctx=64)
    engine.enqueue(["a", "b", "c", "d"])
    assert drain(engine.stream_chat(HI, SamplingSettings(max_tokens=2)))[1].text == "ab"
    engine.enqueue(["one ", "two. END", " three"])
    chunks, result = drain(engine.stream_chat(HI, SamplingSettings(stop=("END",))))
    assert result.text == "one two. " == "".join(c.text for c in chunks) and result.finish_reason == "stop"
    room = 64 - engine.count_chat_tokens(HI)
    engine.enqueue(["x"] * (room + 5))
    full = drain(engine.stream_chat(HI, SamplingSettings(max_tokens=0)))[1]
    assert full.finish_reason == "context" and full.completion_tokens == room
    with pytest.raises(UserError, match="context window holds 64"):
        drain(engine.stream_chat([{"role": "user", "content": "word " * 80}]))


def test_cancel_stops_between_chunks_and_keeps_the_partial_answer():
    engine = loaded(chunk_delay_s=0.05).enqueue([f"w{i} " for i in range(100)])
    cancel = CancelToken()
    stream = engine.stream_chat(HI, cancel=cancel)
    first = next(stream)
    threading.Timer(0.08, cancel.cancel).start()
    rest, result = drain(stream)
    assert isinstance(first, GenerationChunk) and result.finish_reason == "cancelled"
    assert 1 <= result.completion_tokens < 10 and result.text == first.text + "".join(c.text for c in rest)


def test_an_unloaded_engine_refuses_to_answer():
    engine = FakeEngine().enqueue(["never"])
    with pytest.raises(UserError, match="No model is loaded"):
        drain(engine.stream_chat(HI))
    drain(engine.load())
    engine.unload()
    assert not engine.loaded and engine.pending == 1


class _Adapter:
    """An adapter as the tuning layer hands one to an engine (``engines.base.AdapterFiles``)."""

    def folder(self):
        raise AssertionError("an engine without adapters must not ask for the files")

    gguf_lora = folder


def test_an_engine_refuses_what_its_capabilities_do_not_declare():
    engine = loaded()
    assert engine.capabilities == EngineCapabilities() and engine.template is None
    engine.use_adapter(None)  # the base alone: nothing to refuse
    with pytest.raises(UserError, match="fake models can't take a local adapter"):
        engine.use_adapter(_Adapter())
    with pytest.raises(UserError, match="can't take a grammar"):
        drain(engine.enqueue(["hi"]).stream_chat(HI, grammar='root ::= "x"'))
    with pytest.raises(UserError, match="can't take native tool calls"):
        engine.count_chat_tokens(HI, tools=[{"type": "function", "function": {"name": "f"}}])
    assert engine.label == "fake-model"
