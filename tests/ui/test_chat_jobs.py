"""The one batcher between a model's stream and the GUI: text merged, everything else at once, the value kept."""

from __future__ import annotations

from macapp.core.agent.loop import AgentText
from macapp.core.engines.base import GenerationChunk
from macapp.ui.chat.agent_jobs import _merge_texts
from macapp.ui.chat.jobs import coalesce


def _stream(events, closed):
    try:
        yield from events
        return "the result"
    finally:
        closed.append(True)


def _drain(gen):
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration as done:
            return out, done.value


def test_chunks_within_the_interval_become_one_and_other_events_keep_their_place():
    closed: list[bool] = []
    events = [GenerationChunk("Hel", 1, 0.1), GenerationChunk("lo", 2, 0.2), "passages", GenerationChunk("!", 3, 0.3)]
    out, value = _drain(coalesce(_stream(events, closed), interval=3600))
    assert out == [GenerationChunk("Hello", 2, 0.2), "passages", GenerationChunk("!", 3, 0.3)]
    assert value == "the result" and closed == [True]


def test_with_no_interval_every_chunk_goes_at_once():
    events = [GenerationChunk("a", 1, 0.1), GenerationChunk("b", 2, 0.2)]
    out, _ = _drain(coalesce(_stream(events, []), interval=0))
    assert [c.text for c in out] == ["a", "b"]


def test_the_agents_answer_text_is_batched_the_same_way():
    events = [AgentText("The "), AgentText("answer"), "a tool step", AgentText(".")]
    out, value = _drain(coalesce(_stream(events, []), interval=3600, kind=AgentText, merge=_merge_texts))
    assert out == [AgentText("The answer"), "a tool step", AgentText(".")] and value == "the result"
