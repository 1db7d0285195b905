"""ChatSession and plan_context with a real engine and store; a scripted FakeEngine where the words matter."""

from __future__ import annotations

import re

import pytest

from macapp.core.chat.session import ChatSession, ContextPlan, plan_context
from macapp.core.chat.store import ChatStore
from macapp.core.engines.base import GenerationChunk, SamplingSettings
from macapp.core.engines.fake import FakeEngine
from macapp.core.engines.llama_engine import LlamaCppEngine
from macapp.core.errors import UserError
from macapp.core.models.estimate import RuntimeSettings
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.progress import CancelToken
from macapp.core.progress import drain as run_turn


def loaded(path, n_ctx: int) -> LlamaCppEngine:
    engine = LlamaCppEngine(path, RuntimeSettings(n_ctx=n_ctx))
    for _ in engine.load():
        pass
    return engine


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("session") / "tiny.gguf")


def history(turns: int, words: int = 30) -> list[dict]:
    out = []
    for i in range(turns):
        out.append({"role": "user", "content": f"question {i}: " + "hello world " * words})
        out.append({"role": "assistant", "content": f"answer {i}: " + "the model " * words})
    return out


def test_everything_fits_nothing_dropped(model_path):
    engine = loaded(model_path, 2048)
    plan = plan_context(engine, history(2), "Be brief.", max_tokens=100)
    assert plan.dropped == 0 and plan.notice is None
    assert plan.messages[0] == {"role": "system", "content": "Be brief."}
    assert plan.prompt_tokens == engine.count_chat_tokens(plan.messages)


def test_overflow_drops_oldest_turns_keeps_system_prompt(model_path):
    engine = loaded(model_path, 512)
    turns = history(8) + [{"role": "user", "content": "the newest question"}]
    plan = plan_context(engine, turns, "Be brief.", max_tokens=128)
    assert plan.dropped > 0 and plan.dropped % 2 == 0  # whole turns go, oldest first
    assert plan.messages[0]["role"] == "system"
    assert plan.messages[1] == turns[plan.dropped] and plan.messages[1]["role"] == "user"
    assert plan.messages[-1]["content"] == "the newest question"
    assert plan.prompt_tokens <= 512 - plan.reserve
    assert f"{plan.dropped} earlier messages" in plan.notice and "system prompt is kept" in plan.notice
    # it dropped only as many turns as needed (plus slack): one more kept turn would not fit the target
    one_more = plan_context(engine, turns[plan.dropped - 2 :], "Be brief.", max_tokens=128)
    assert one_more.dropped > 0


def test_a_message_too_long_for_the_window_is_a_clear_error(model_path):
    engine = loaded(model_path, 256)
    with pytest.raises(UserError, match="context window holds 256"):
        plan_context(engine, [{"role": "user", "content": "hello world " * 200}], max_tokens=64)


def test_send_streams_saves_and_titles(model_path):
    engine = loaded(model_path, 1024)
    store = ChatStore()
    session = ChatSession(engine, store, system_prompt="Be brief.", sampling=SamplingSettings(seed=1, max_tokens=20))
    events, turn = run_turn(session.send("hello world, what is the model?"))
    assert isinstance(events[0], ContextPlan)
    text = "".join(e.text for e in events if isinstance(e, GenerationChunk))
    assert turn.message.content == text == turn.result.text
    assert turn.message.status == "done" and turn.message.completion_tokens == 20
    assert turn.message.tokens_per_s > 0 and turn.message.model == engine.model_id
    thread = store.thread(session.conversation_id)
    assert [m.role for m in thread] == ["user", "assistant"]
    assert store.get_conversation(session.conversation_id).title.startswith("hello world")
    assert turn.tokens_used == turn.result.prompt_tokens + 20


def test_second_turn_reuses_the_conversation_prefix(model_path):
    engine = loaded(model_path, 2048)
    session = ChatSession(engine, ChatStore(), sampling=SamplingSettings(seed=2, max_tokens=16))
    _, first = run_turn(session.send("hello world"))
    _, second = run_turn(session.send("and what is the chat?"))
    assert second.result.prompt_eval_tokens == second.result.prompt_tokens - first.tokens_used


def test_stop_keeps_the_partial_answer_as_cancelled(model_path):
    engine = loaded(model_path, 1024)
    store = ChatStore()
    session = ChatSession(engine, store, sampling=SamplingSettings(seed=3, max_tokens=500))
    cancel = CancelToken()
    stream = session.send("hello", cancel)
    next(stream)  # the plan
    first = next(stream)
    cancel.cancel()
    _, turn = run_turn(stream)
    assert turn.result.finish_reason == "cancelled"
    assert turn.message.status == "cancelled" and turn.message.content.startswith(first.text)


def test_closing_the_stream_early_marks_the_answer_cancelled(model_path):
    engine = loaded(model_path, 1024)
    store = ChatStore()
    session = ChatSession(engine, store, sampling=SamplingSettings(seed=3, max_tokens=500))
    stream = session.send("hello")
    next(stream)
    chunk = next(stream)
    stream.close()
    reply = store.thread(session.conversation_id)[-1]
    assert reply.role == "assistant" and reply.status == "cancelled" and reply.content == chunk.text


def fake(*answers: str) -> FakeEngine:
    """A loaded FakeEngine with ``answers`` queued (each streamed word by word)."""
    engine = FakeEngine()
    for _ in engine.load():
        pass
    for answer in answers:
        engine.enqueue(re.findall(r"\S+\s*", answer))
    return engine


def test_regenerate_and_edit_keep_versions():
    engine = fake("Hello to you.", "Hi again.", "A document is a file.")
    store = ChatStore()
    session = ChatSession(engine, store, sampling=SamplingSettings(temperature=1.0, max_tokens=12))
    _, first = run_turn(session.send("hello world"))
    _, again = run_turn(session.regenerate())
    assert again.message.id != first.message.id and again.message.version_count == 2
    versions = store.versions(again.message.id)
    assert [(m.id, m.content) for m in versions] == [
        (first.message.id, "Hello to you."),
        (again.message.id, "Hi again."),
    ]
    user = store.thread(session.conversation_id)[0]
    _, edited = run_turn(session.edit_and_resend(user.id, "what is a document?"))
    thread = store.thread(session.conversation_id)
    assert thread[0].content == "what is a document?" and thread[-1].id == edited.message.id
    assert thread[-1].content == "A document is a file."
    assert engine.prompts[-1] == [{"role": "user", "content": "what is a document?"}]  # not the old branch
    assert store.get_message(user.id).content == "hello world"  # the old branch is still there
    with pytest.raises(UserError):
        run_turn(session.send("   "))


def test_regenerate_does_not_show_the_model_its_old_answer():
    engine = fake("First answer.", "Second answer.")
    session = ChatSession(engine, ChatStore(), system_prompt="Be brief.")
    _, first = run_turn(session.send("hello world"))
    _, again = run_turn(session.regenerate())
    assert (
        engine.prompts[0]
        == engine.prompts[1]
        == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]
    )
    assert again.result.prompt_tokens == first.result.prompt_tokens and again.message.content == "Second answer."
