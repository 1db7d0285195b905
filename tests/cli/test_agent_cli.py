"""``macapp agent``: approvals answered on stdin, every step printed, --json the whole trace, bad grants refused."""

from __future__ import annotations

import io
import json

import pytest

from macapp.cli import agent as agent_cli
from macapp.cli.main import main
from macapp.core.chat.store import ChatStore
from macapp.core.engines.fake import FakeEngine
from macapp.core.progress import drain


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    """The model the command loads: a scripted FakeEngine (the CLI's own loader is the only thing replaced)."""
    eng = FakeEngine()
    drain(eng.load())
    monkeypatch.setattr(agent_cli, "load_engine", lambda args, quiet=False: eng)
    return eng


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("Bees dance.\n")
    return folder


def run(monkeypatch, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["agent", "fake-model", *args])


def test_approvals_are_asked_on_the_terminal_denied_then_allowed_once(engine, work, monkeypatch, capsys):
    engine.enqueue_call("write_file", {"path": "out.txt", "content": "one"})
    engine.enqueue_call("write_file", {"path": "out.txt", "content": "two"})
    engine.enqueue(["Wrote ", "out.txt."])
    code = run(monkeypatch, "Write out.txt", "--allow-folder", str(work), "--tool", "write_file", stdin="n\nmaybe\ny\n")
    out, err = capsys.readouterr()
    assert code == 0 and (work / "out.txt").read_text() == "two"
    assert err.count("? write_file wants to write:") == 3 and "please answer y, a or n" in err  # asked again
    assert '"content": "one"' in err and "tools: write_file" in err
    assert "→ write_file" in out and "  denied · denied" in out and "  ok · allowed once" in out
    assert out.rstrip().endswith("Wrote out.txt.")


def test_json_prints_the_whole_trace_and_the_run_is_in_the_history(engine, work, monkeypatch, capsys):
    engine.enqueue_call("read_file", {"path": "notes.txt"}).enqueue_call("read_file", {"path": "../x"})
    engine.enqueue(["They dance."])
    code = run(monkeypatch, "What do bees do?", "--allow-folder", str(work), "--yes", "--json")
    out, err = capsys.readouterr()
    trace = json.loads(out)
    assert code == 0 and "wants to" not in err  # --yes: the read-only tool ran without asking
    assert trace["answer"] == "They dance." and trace["stop_reason"] == "answer" and trace["rounds"] == 3
    assert trace["tools"] == ["read_file", "list_folder", "write_file", "current_time"]
    first, second = trace["steps"]
    assert (first["tool"], first["arguments"], first["status"], first["approval"]) == (
        "read_file",
        {"path": "notes.txt"},
        "ok",
        "pre-approved",
    )
    assert "Bees dance." in first["result"] and first["duration_s"] >= 0
    assert second["status"] == "refused" and "outside the folders granted" in second["result"]
    with ChatStore() as store:
        answer = store.thread(trace["conversation_id"])[-1]
        assert answer.content == "They dance."
        assert [s.status for s in store.tool_steps(answer.id)] == ["ok", "refused"]


def test_without_yes_a_read_asks_too_and_end_of_input_denies(engine, work, monkeypatch, capsys):
    engine.enqueue_call("read_file", {"path": "notes.txt"}).enqueue(["I could not read it."])
    assert run(monkeypatch, "Read notes.txt", "--allow-folder", str(work), "--tool", "read_file") == 0
    out, err = capsys.readouterr()
    assert "? read_file wants to read" in err and "(no answer: denied)" in err
    assert "  denied · denied" in out and "Bees dance" not in out


def test_max_steps_is_said(engine, work, monkeypatch, capsys):
    for _ in range(3):
        engine.enqueue_call("read_file", {"path": "notes.txt"})
    assert run(monkeypatch, "loop", "--allow-folder", str(work), "--yes", "--max-steps", "2") == 0
    err = capsys.readouterr().err
    assert "stopped: the step limit (2) was reached" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tool", "run_command", "--allow-folder", "WORK"], "run_command is off unless the shell is granted"),
        (["--allow-folder", "WORK/missing"], "is not a folder"),
        (["--tool", "read_file"], "read_file needs a granted folder"),
        (["--tool", "rm_rf"], "No built-in tool is named rm_rf"),
        (["--max-steps", "0"], "max steps must be at least 1"),
        (["--collection", "nope", "--tool", "search_documents"], "nope"),
    ],
)
def test_bad_grants_are_one_clear_line_before_the_model_loads(engine, work, monkeypatch, capsys, args, message):
    args = [a.replace("WORK", str(work)) for a in args]
    assert run(monkeypatch, "task", *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert engine.prompts == []


def test_require_tool_sends_back_a_first_answer_that_called_nothing(engine, work, monkeypatch, capsys):
    engine.enqueue(["I already know."]).enqueue_call("read_file", {"path": "notes.txt"}).enqueue(["They dance."])
    assert run(monkeypatch, "What do bees do?", "--allow-folder", str(work), "--yes", "--require-tool") == 0
    assert "one was required" in engine.prompts[1][-1]["content"]
    assert capsys.readouterr().out.rstrip().endswith("They dance.")


def test_an_mcp_tool_needs_its_server_granted(engine, monkeypatch, capsys):
    assert run(monkeypatch, "What time is it?", "--tool", "time__get_current_time") == 1
    assert "time__get_current_time is an MCP tool (grant its server: --mcp time)" in capsys.readouterr().err


def test_an_mcp_server_mcp_json_does_not_hold_is_an_error_not_a_warning(engine, monkeypatch, capsys):
    assert run(monkeypatch, "What time is it?", "--mcp", "nosuch") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no MCP server named 'nosuch'") and engine.prompts == []


def test_the_tools_of_an_mcp_server_go_through_the_same_loop(engine, monkeypatch, capsys):
    import sys

    from macapp.core.agent.mcp_config import add_server

    add_server("time", sys.executable, ["-m", "mcp_server_time", "--local-timezone=UTC"], env={"TZ": "UTC"})
    engine.enqueue_call("time__get_current_time", {"timezone": "UTC"}).enqueue(["It is now."])
    code = run(
        monkeypatch, "What time is it in UTC?", "--mcp", "time", "--tool", "time__get_current_time", "--json", "--yes"
    )
    trace = json.loads(capsys.readouterr().out)
    assert code == 0 and trace["tools"] == ["time__get_current_time"]
    (step,) = trace["steps"]
    assert (step["status"], step["approval"], step["effect"]) == ("ok", "pre-approved", "read")
    assert '"timezone": "UTC"' in step["result"]
