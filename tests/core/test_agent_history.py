"""An agent run saved in the chat history: its steps come back after the store is closed and reopened."""

from __future__ import annotations

import pytest

from macapp.core.agent.approvals import ApprovalRequest
from macapp.core.agent.builtin import builtin_toolbox
from macapp.core.agent.guard import Grants
from macapp.core.agent.history import grants_of, run_in_chat
from macapp.core.chat.store import ChatStore
from macapp.core.engines.fake import FakeEngine
from macapp.core.progress import drain


@pytest.fixture
def engine() -> FakeEngine:
    eng = FakeEngine()
    drain(eng.load())
    return eng


def drive(stream, decision="always"):
    events = []
    while True:
        try:
            event = next(stream)
        except StopIteration as done:
            return events, done.value
        events.append(event)
        if isinstance(event, ApprovalRequest):
            event.answer(decision)


def test_steps_are_saved_and_shown_again_after_a_restart(engine, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("Bees dance to share where flowers are.\n")
    grants = Grants(tools=("read_file", "write_file"), folders=(str(work),))
    engine.enqueue_call("read_file", {"path": "notes.txt"}).enqueue_call("read_file", {"nope": 1})
    engine.enqueue_call("write_file", {"path": "summary.txt", "content": "Bees dance."})
    engine.enqueue(["I wrote ", "summary.txt."])
    db = tmp_path / "chats.db"
    with ChatStore(db) as store:
        conv = store.create_conversation("Bees", system_prompt="Be brief.")
        _, result = drive(
            run_in_chat(
                store, conv.id, "Summarise notes.txt into summary.txt", engine, builtin_toolbox(grants), grants=grants
            )
        )
    assert result.stop_reason == "answer" and (work / "summary.txt").read_text() == "Bees dance."
    assert engine.prompts[0][0]["content"].startswith("Be brief.")  # the chat's system prompt, then the agent's

    with ChatStore(db) as store:  # a restart: everything comes back from the file
        user, answer = store.thread(conv.id)
        assert (user.role, user.content) == ("user", "Summarise notes.txt into summary.txt")
        assert (answer.role, answer.content, answer.status, answer.finish_reason) == (
            "assistant",
            "I wrote summary.txt.",
            "done",
            "answer",
        )
        steps = store.tool_steps(answer.id)
        assert [(s.position, s.tool, s.status, s.approval) for s in steps] == [
            (1, "read_file", "ok", "pre-approved"),
            (2, "read_file", "invalid", "not needed"),
            (3, "write_file", "ok", "always"),
        ]
        assert steps[0].arguments == {"path": "notes.txt"} and "Bees dance to share" in steps[0].result
        assert [s.call_id for s in steps] == [s.call.id for s in result.steps]
        assert all(s.duration_s >= 0 for s in steps) and steps[2].effect == "write"
        saved = grants_of(store.get_conversation(conv.id))
        assert saved.always == {"write_file"} and saved.folders == (str(work),)  # "always" outlives the run
        store.delete_conversation(conv.id)
        assert store.tool_steps(answer.id) == []  # steps go with their message


def test_a_run_stopped_by_its_caller_keeps_the_steps_taken(engine, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("a")
    grants = Grants(tools=("read_file",), folders=(str(work),))
    engine.enqueue_call("read_file", {"path": "a.txt"}).enqueue(["never"])
    with ChatStore(tmp_path / "chats.db") as store:
        conv = store.create_conversation()
        stream = run_in_chat(store, conv.id, "read a", engine, builtin_toolbox(grants), grants=grants)
        for event in stream:
            if type(event).__name__ == "ToolStep":
                break
        stream.close()  # the window closed mid-run
        answer = store.thread(conv.id)[-1]
        assert answer.status == "interrupted" and [s.status for s in store.tool_steps(answer.id)] == ["ok"]
