"""The agent in the Chat page, driven by the scripted FakeEngine: step rows, approval cards (deny, allow
once, always), Stop while a card waits, the Tools settings saved with the conversation, MCP problems."""

from __future__ import annotations

import json
import time

import pytest
from PySide6.QtCore import Qt

from macapp.core import paths
from macapp.core.agent.guard import Grants
from macapp.core.agent.history import grants_of
from macapp.core.chat.store import ChatStore
from macapp.core.engines.fake import FakeEngine
from macapp.core.progress import drain
from macapp.core.settings import Settings
from macapp.ui.chat.agent_jobs import window_toolbox
from macapp.ui.chat.agent_steps import ApprovalCard, StepRow
from macapp.ui.chat.page import ChatPage


@pytest.fixture
def engine() -> FakeEngine:
    eng = FakeEngine("fake-agent", n_ctx=8192)
    drain(eng.load())
    eng.label = "fake-agent"  # what the header shows for a model
    return eng


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("Bees dance to show where the flowers are.\n")
    return folder


def _open_page(qtbot, store, engine) -> ChatPage:
    page = ChatPage(Settings(default_ctx=2048), store)
    qtbot.addWidget(page)
    page.resize(1100, 760)
    page.show()
    page.open_history()
    page.host.engine = engine  # as a finished load leaves it
    page.host.loaded.emit(engine)
    page.host.loadEnded.emit()
    return page


@pytest.fixture
def store():
    with ChatStore() as chats:
        yield chats


@pytest.fixture
def page(qtbot, store, engine, work):
    """A chat page answering with the fake engine, Tools on, ``work`` granted for reading and writing files."""
    page = _open_page(qtbot, store, engine)
    tools = page.drawer.tools
    qtbot.mouseClick(page.composer_box.tools_button, Qt.MouseButton.LeftButton)  # the composer's switch
    tools.add_folder(str(work))
    for name, box in tools.tool_boxes.items():
        box.setChecked(name in ("read_file", "list_folder", "write_file"))
    yield page
    page.shutdown()


def _send(qtbot, page: ChatPage, text: str) -> None:
    page.composer.setPlainText(text)
    qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)


def _wait_run(qtbot, page: ChatPage, text: str):
    with qtbot.waitSignal(page.agentFinished, timeout=15_000) as blocker:
        _send(qtbot, page, text)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    return blocker.args[0]


def _answer(page: ChatPage):
    return next(b for b in reversed(page.transcript.bubbles()) if b.role == "assistant")


def _rows(bubble) -> list[StepRow]:
    return list(bubble.steps.rows.values()) if bubble.steps is not None else []


def _card(qtbot, page: ChatPage) -> ApprovalCard:
    qtbot.waitUntil(
        lambda: (
            page.transcript.stream is not None
            and page.transcript.stream.steps is not None
            and bool(page.transcript.stream.steps.pending_cards())
        ),
        timeout=10_000,
    )
    return page.transcript.stream.steps.pending_cards()[0]


def test_a_read_only_call_runs_and_its_step_row_shows(qtbot, page, engine):
    engine.enqueue_call("read_file", {"path": "notes.txt"}).enqueue(["Bees ", "dance."])
    result = _wait_run(qtbot, page, "What do the notes say?")
    assert result.stop_reason == "answer" and [s.status for s in result.steps] == ["ok"]
    answer = _answer(page)
    assert answer.text() == "Bees dance." and answer.message.status == "done"
    [row] = _rows(answer)
    assert (row.tool, row.status, row.summary.text()) == ("read_file", "ok", "notes.txt")
    assert row.state.text() == "done" and row.duration.text().endswith(("ms", "s"))
    assert not row.details.isVisible()
    qtbot.mouseClick(row.toggle, Qt.MouseButton.LeftButton)  # expanded: the arguments and the result
    qtbot.waitUntil(row.details.isVisible, timeout=5_000)
    assert "path: notes.txt" in row.details.text()
    assert "Bees dance to show where the flowers are." in row.details.text()
    assert not answer.steps.cards  # reading never asks
    assert [m.role for m in page.store.thread(page.cid)] == ["user", "assistant"]
    assert "tools" in engine.prompts[0][0]["content"].lower()  # the model was told it has tools


def test_a_write_asks_first_and_deny_writes_nothing(qtbot, page, engine, work):
    engine.enqueue_call("write_file", {"path": "out/summary.txt", "content": "Bees dance."}).enqueue(["Not written."])
    _send(qtbot, page, "Write a summary")
    card = _card(qtbot, page)
    assert card.question.text() == "Allow write_file to write?"
    assert "path: out/summary.txt" in card.arguments.text() and "content: Bees dance." in card.arguments.text()
    assert page.busy and not (work / "out").exists()  # the loop waits for the user
    with qtbot.waitSignal(page.agentFinished, timeout=10_000) as blocker:
        qtbot.mouseClick(card.deny_button, Qt.MouseButton.LeftButton)
    assert [(s.status, s.approval) for s in blocker.args[0].steps] == [("denied", "denied")]
    assert not (work / "out").exists()
    [row] = _rows(_answer(page))
    assert row.status == "denied" and row.state.text() == "denied"
    assert "denied" in engine.prompts[-1][-1]["content"]  # the model read that the user said no


def test_allow_once_writes_and_the_next_write_asks_again(qtbot, page, engine, work):
    engine.enqueue_call("write_file", {"path": "a.txt", "content": "one"}).enqueue(["Done."])
    _send(qtbot, page, "write a")
    with qtbot.waitSignal(page.agentFinished, timeout=10_000):
        qtbot.mouseClick(_card(qtbot, page).allow_button, Qt.MouseButton.LeftButton)
    assert (work / "a.txt").read_text() == "one"
    [row] = _rows(_answer(page))
    assert row.status == "ok" and row.state.text() == "done · allowed once"
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    engine.enqueue_call("write_file", {"path": "b.txt", "content": "two"}).enqueue(["Done."])
    _send(qtbot, page, "write b")
    card = _card(qtbot, page)  # once means once
    with qtbot.waitSignal(page.agentFinished, timeout=10_000):
        card.decide("deny")
    assert not (work / "b.txt").exists()


def test_always_means_the_next_write_in_this_chat_does_not_ask(qtbot, page, engine, work):
    engine.enqueue_call("write_file", {"path": "a.txt", "content": "one"}).enqueue(["Done."])
    _send(qtbot, page, "write a")
    with qtbot.waitSignal(page.agentFinished, timeout=10_000):
        qtbot.mouseClick(_card(qtbot, page).always_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    assert grants_of(page.store.get_conversation(page.cid)).always == {"write_file"}
    assert page.drawer.tools.grants().always == {"write_file"}

    cards: list[ApprovalCard] = []
    engine.enqueue_call("write_file", {"path": "b.txt", "content": "two"}).enqueue(["Done again."])
    page.transcript.stream_steps = _recording(page.transcript.stream_steps, cards)
    result = _wait_run(qtbot, page, "write b")
    assert (work / "b.txt").read_text() == "two" and not cards
    assert [(s.status, s.approval) for s in result.steps] == [("ok", "always")]


def test_an_always_answer_is_shown_in_the_drawer_and_ask_again_takes_it_back(qtbot, page, engine, work):
    engine.enqueue_call("write_file", {"path": "a.txt", "content": "one"}).enqueue(["Done."])
    _send(qtbot, page, "write a")
    with qtbot.waitSignal(page.agentFinished, timeout=10_000):
        qtbot.mouseClick(_card(qtbot, page).always_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    tools = page.drawer.tools
    assert tools.always_row.isVisibleTo(tools) and "write_file" in tools.always_label.text()

    qtbot.mouseClick(tools.ask_again_button, Qt.MouseButton.LeftButton)
    assert not tools.always_row.isVisibleTo(tools)
    qtbot.waitUntil(lambda: grants_of(page.store.get_conversation(page.cid)).always == set(), timeout=5_000)

    engine.enqueue_call("write_file", {"path": "b.txt", "content": "two"}).enqueue(["Done again."])
    _send(qtbot, page, "write b")
    card = _card(qtbot, page)  # it asks again
    with qtbot.waitSignal(page.agentFinished, timeout=10_000):
        card.decide("deny")
    assert not (work / "b.txt").exists()


def _recording(stream_steps, cards):
    def wrapped():
        panel = stream_steps()
        if panel is not None:
            cards.extend(panel.cards)
        return panel

    return wrapped


def test_stop_while_a_card_waits_ends_the_run(qtbot, page, engine, work):
    engine.enqueue_call("write_file", {"path": "a.txt", "content": "one"}).enqueue(["never"])
    _send(qtbot, page, "write a")
    card = _card(qtbot, page)
    assert page.send_button.text() == "Stop"
    started = time.monotonic()
    with qtbot.waitSignal(page.agentFinished, timeout=5_000) as blocker:
        qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    assert time.monotonic() - started < 1.0
    assert blocker.args[0].stop_reason == "cancelled"
    assert card.decision == "stopped" and card.outcome.text().startswith("Stopped")
    assert not card.allow_button.isVisible()
    assert not (work / "a.txt").exists() and engine.pending == 1  # the model was not asked again
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    saved = page.store.thread(page.cid)[-1]
    assert saved.status == "cancelled"
    assert [s.status for s in page.store.tool_steps(saved.id)] == ["cancelled"]
    assert page.send_button.text() == "Send" and page.drawer.tools.isEnabled()


def test_grants_and_steps_come_back_when_the_chat_is_reopened(qtbot, page, engine, store, work, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    tools = page.drawer.tools
    qtbot.mouseClick(page.header.gear, Qt.MouseButton.LeftButton)  # the drawer opens
    tools.add_folder(str(other))
    assert not tools.shell_warning.isVisible()
    qtbot.mouseClick(tools.shell_box, Qt.MouseButton.LeftButton)  # the shell is off until switched on
    assert tools.shell_box.isChecked() and tools.shell_warning.isVisible()
    engine.enqueue_call("list_folder", {"path": "."}).enqueue(["Two files."])
    _wait_run(qtbot, page, "what is here?")
    cid = page.cid
    page.new_chat()  # a new chat starts with tools off and nothing granted
    assert not tools.enabled and not page.composer_box.tools_button.isChecked() and tools.folder_chips() == []

    again = _open_page(qtbot, store, engine)  # as after a restart
    again.open_conversation(cid)
    shown = again.drawer.tools
    assert shown.enabled and again.composer_box.tools_button.isChecked()
    assert [c.folder for c in shown.folder_chips()] == [str(work.resolve()), str(other.resolve())]
    assert shown.shell_box.isChecked() and not shown.shell_warning.isHidden()
    assert {n for n, b in shown.tool_boxes.items() if b.isChecked()} == {"read_file", "list_folder", "write_file"}
    [row] = _rows(_answer(again))  # the step, from the history
    assert (row.tool, row.status) == ("list_folder", "ok") and "notes.txt" in row.result
    qtbot.mouseClick(shown.folder_chips()[1].remove_button, Qt.MouseButton.LeftButton)
    assert grants_of(store.get_conversation(cid)).folders == (str(work.resolve()),)
    again.drawer.numbers["temperature"].setValue(0.3)  # saving the sampling values keeps the grants
    saved = store.get_conversation(cid)
    assert saved.settings["temperature"] == pytest.approx(0.3) and grants_of(saved).enabled
    again.shutdown()


def test_an_mcp_server_that_fails_is_a_note_and_the_run_goes_on(qtbot, page, engine):
    paths.mcp_config_file().write_text(
        json.dumps({"mcpServers": {"gone": {"command": "/nonexistent/mcp-server"}, "broken": {"args": ["no command"]}}})
    )
    tools = page.drawer.tools
    tools.load_servers()
    assert list(tools.server_boxes) == ["gone"]
    assert any("broken" in n.text() for n in tools.server_notes)  # a bad entry is shown, not offered
    tools.server_boxes["gone"].setChecked(True)
    engine.enqueue(["Answered without it."])
    result = _wait_run(qtbot, page, "hi")
    assert result.stop_reason == "answer" and _answer(page).text() == "Answered without it."
    assert page.notice.isVisible() and "gone" in page.notice.label.text() and "gone" in tools.problems.text()


def test_tools_without_what_they_need_are_left_out_with_a_reason(tmp_path):
    missing = tmp_path / "moved-away"
    toolbox, problems = window_toolbox(
        Grants(tools=("read_file", "current_time", "search_documents"), folders=(str(missing),)), collection=None
    )
    assert toolbox.names == ("current_time",)
    assert problems == [
        f"{missing} is not a folder any more, so it was left out",
        "read_file needs a folder: add one in the Tools settings",
    ]  # search waits for documents


def test_the_panel_keeps_one_builtin_tool_on_and_the_mcp_tools_a_chat_picked(qtbot):
    from macapp.ui.chat.agent_tools import ToolsPanel

    panel = ToolsPanel()
    qtbot.addWidget(panel)
    panel.set_grants(Grants(tools=("read_file", "list_folder", "time__get_current_time"), always={"write_file"}))
    assert {n for n, b in panel.tool_boxes.items() if b.isChecked()} == {"read_file", "list_folder"}
    panel.tool_boxes["list_folder"].setChecked(False)  # an empty list would mean every tool: the last stays on
    assert not panel.tool_boxes["read_file"].isEnabled() and panel.tool_boxes["list_folder"].isEnabled()
    grants = panel.grants()
    assert grants.tools == ("read_file", "time__get_current_time") and grants.always == {"write_file"}
    assert not grants.enabled and not grants.shell  # off until switched on


def test_a_model_that_never_stops_calling_ends_at_the_step_limit_and_says_so(qtbot, page, engine):
    for _ in range(8):  # AgentLimits().max_steps rounds of calls, then one round without tools
        engine.enqueue_call("list_folder", {"path": "."})
    engine.enqueue(["I looked eight times."])
    page.drawer.tools.require_box.setChecked(True)  # saved with the chat: the first round must call
    result = _wait_run(qtbot, page, "look around")
    assert result.stop_reason == "max_steps" and len(result.steps) == 8 and engine.pending == 0
    answer = _answer(page)
    assert len(_rows(answer)) == 8 and "step limit reached" in answer.stats.text()
    assert grants_of(page.store.get_conversation(page.cid)).require_tool


def test_stop_while_a_server_starts_gives_the_message_back(qtbot, page, engine):
    import sys

    paths.mcp_config_file().write_text(
        json.dumps(
            {"mcpServers": {"silent": {"command": sys.executable, "args": ["-c", "import time; time.sleep(30)"]}}}
        )
    )  # never answers
    page.drawer.tools.load_servers()
    page.drawer.tools.server_boxes["silent"].setChecked(True)
    _send(qtbot, page, "what time is it?")
    qtbot.wait(300)
    assert page.busy
    started = time.monotonic()
    with qtbot.waitSignal(page.agentFinished, timeout=5_000) as blocker:
        page.stop()
    assert time.monotonic() - started < 1.5 and blocker.args[0] is None
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    assert page.composer.toPlainText() == "what time is it?" and page.transcript.pending is None
    assert page.store.thread(page.cid) == []  # nothing was saved
