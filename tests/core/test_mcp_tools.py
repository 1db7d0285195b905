"""MCP servers as agent tools, against real servers: the reference ``mcp-server-time`` (PyPI) over stdio,
a server that misbehaves on purpose (tests/fixtures/mcp_servers.py) and one served over streamable HTTP
on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psutil
import pytest

from macapp.core.agent.approvals import ApprovalRequest, Approvals
from macapp.core.agent.loop import run_agent
from macapp.core.agent.mcp import connect_configured, connect_servers, effect_of, tool_name
from macapp.core.agent.mcp_config import McpServerConfig, add_server, add_url_server
from macapp.core.agent.tools import Toolbox
from macapp.core.engines.fake import FakeEngine
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, drain
from tests.fixtures.mcp_servers import notes_server

ROOT = __file__.rsplit("/tests/", 1)[0]
TIME = McpServerConfig("time", command=sys.executable, args=("-m", "mcp_server_time"))
ODD = McpServerConfig(
    "odd",
    command=sys.executable,
    args=("-m", "tests.fixtures.mcp_servers"),
    env={"PYTHONPATH": ROOT, "GREETING": "hello"},
)


@pytest.fixture(scope="module")
def time_server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the server's log goes to a test folder, not the real home
        mp.setenv("MACAPP_HOME", str(tmp_path_factory.mktemp("mcp-home")))
        with connect_servers([TIME], connect_timeout_s=60) as found:
            assert found.problems == []
            yield found


@pytest.fixture
def odd_server():
    with connect_servers([ODD], connect_timeout_s=60) as found:
        assert found.problems == []
        yield {t.remote_name: t for t in found.tools}


def test_the_time_servers_tools_have_their_schemas_and_are_read_only(time_server):
    tools = {t.spec.name: t for t in time_server.tools}
    assert set(tools) == {"time__get_current_time", "time__convert_time"}
    current = tools["time__get_current_time"]
    assert current.effect == "read" and current.remote_name == "get_current_time"
    assert current.spec.parameters["required"] == ["timezone"]
    assert current.spec.parameters["properties"]["timezone"]["type"] == "string"
    assert "time" in current.spec.description.lower()
    assert len(Toolbox(time_server.tools)) == 2  # they travel the built-in tools' path


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York", "Australia/Adelaide"])
def test_get_current_time_answers_in_the_timezone_asked(time_server, zone):
    tool = next(t for t in time_server.tools if t.remote_name == "get_current_time")
    result = tool.run({"timezone": zone}, CancelToken())
    assert not result.is_error, result.text
    answer = json.loads(result.text)
    assert answer["timezone"] == zone
    when = datetime.fromisoformat(answer["datetime"])
    now = datetime.now(ZoneInfo(zone))
    assert when.utcoffset() == now.utcoffset()
    assert abs(when - now) < timedelta(minutes=2)
    assert answer["day_of_week"] == when.strftime("%A")


def test_a_bad_argument_gives_the_servers_error_as_an_error_result(time_server):
    tool = next(t for t in time_server.tools if t.remote_name == "get_current_time")
    result = tool.run({"timezone": "Mars/Olympus_Mons"}, CancelToken())
    assert result.is_error and "Mars/Olympus_Mons" in result.text
    missing = tool.run({}, CancelToken())
    assert missing.is_error and "timezone" in missing.text
    assert not tool.run({"timezone": "UTC"}, CancelToken()).is_error  # the session goes on


def test_a_server_that_does_not_exist_or_exits_at_once_is_a_clear_problem_and_others_still_connect():
    quits = McpServerConfig(
        "quits",
        command=sys.executable,
        args=("-c", "import sys; sys.stderr.write('fatal: no API key configured\\n'); sys.exit(2)"),
    )
    missing = McpServerConfig("missing", command="orchard-no-such-mcp-server")
    started = time.monotonic()
    with connect_servers([missing, quits, TIME], connect_timeout_s=60) as found:
        assert [t.server for t in found.tools] == ["time", "time"]
        gone, exited = found.problems
    assert time.monotonic() - started < 30
    assert isinstance(gone, UserError) and "'missing'" in str(gone)
    assert "no program 'orchard-no-such-mcp-server'" in str(gone)
    assert "'quits' exited before it was ready" in str(exited)
    assert "fatal: no API key configured" in str(exited)  # its stderr says why
    assert "\n" not in str(gone) + str(exited)


def test_effects_come_from_the_annotations_and_default_to_asking(odd_server):
    effects = {name: tool.effect for name, tool in odd_server.items()}
    assert effects == {
        "environment": "read",
        "pid": "read",
        "hang": "execute",
        "die": "execute",
        "append_note": "write",
    }
    assert effect_of(None) == "execute"


def test_the_child_gets_a_minimal_environment_plus_its_own(monkeypatch):
    # a secret set in the app's environment before the server starts never reaches it
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with connect_servers([ODD]) as found:
        [env_tool] = [t for t in found.tools if t.remote_name == "environment"]
        names = set(env_tool.run({}, CancelToken()).text.split())
    assert {"PATH", "HOME", "GREETING", "PYTHONPATH"} <= names
    assert "OPENAI_API_KEY" not in names and "MACAPP_HOME" not in names and "HF_ENDPOINT" not in names
    assert names <= {"PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL", "TERM", "GREETING", "PYTHONPATH"}


def test_a_hanging_call_times_out_and_cancel_ends_it_within_a_second(odd_server):
    hang = odd_server["hang"]
    started = time.monotonic()
    result = hang.connection.call("hang", {}, CancelToken(), timeout_s=1.0)
    assert result.is_error and "did not answer hang within 1 s" in result.text
    assert 1.0 <= time.monotonic() - started < 3.0

    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        hang.run({}, token)
    assert time.monotonic() - started < 0.3 + 1.0


def test_a_server_that_dies_mid_call_is_an_error_not_a_hang(odd_server):
    started = time.monotonic()
    result = odd_server["die"].run({}, CancelToken())
    assert result.is_error and "'odd' stopped before answering die" in result.text
    later = odd_server["append_note"].run({"text": "x"}, CancelToken())
    assert later.is_error and "stopped" in later.text
    assert time.monotonic() - started < 5


def test_closing_stops_the_child_process():
    with connect_servers([ODD]) as found:
        [pid_tool] = [t for t in found.tools if t.remote_name == "pid"]
        pid = int(pid_tool.run({}, CancelToken()).text)
        child = psutil.Process(pid)
        assert child.is_running()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    result = pid_tool.run({}, CancelToken())
    assert result.is_error and "stopped" in result.text


def test_tool_names_are_namespaced_valid_and_short():
    assert tool_name("time", "get_current_time") == "time__get_current_time"
    assert tool_name("My Server!", "files.read") == "My_Server__files_read"
    long_a, long_b = tool_name("s" * 40, "t" * 40 + "a"), tool_name("s" * 40, "t" * 40 + "b")
    assert len(long_a) <= 64 and len(long_b) <= 64 and long_a != long_b


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server():
    """``notes_server`` over streamable HTTP on a free loopback port; records each request's Authorization."""
    import uvicorn

    seen: list[bytes | None] = []
    app = notes_server().streamable_http_app()

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]).get(b"authorization"))
        await app(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test MCP server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp", seen
    server.should_exit = True
    thread.join(10)


def test_streamable_http_server_tools_run_with_the_configured_headers(http_server):
    url, seen = http_server
    add_url_server("notes", url, {"Authorization": "Bearer t0k"})
    with connect_configured() as found:
        assert found.problems == []
        tools = {t.spec.name: t for t in found.tools}
        assert {n: t.effect for n, t in tools.items()} == {"notes__count_words": "read", "notes__add_note": "write"}
        result = tools["notes__count_words"].run({"text": "one two three"}, CancelToken())
        assert (result.is_error, result.text) == (False, "3")
        assert tools["notes__add_note"].run({"text": "a"}, CancelToken()).text == "1 notes"
        assert tools["notes__add_note"].run({"text": "b"}, CancelToken()).text == "2 notes"  # one session
        bad = tools["notes__count_words"].run({"text": 5}, CancelToken())
        assert bad.is_error
    assert seen and all(value == b"Bearer t0k" for value in seen)


def test_an_unreachable_url_and_bad_entries_are_problems_of_their_own():
    add_url_server("down", f"http://127.0.0.1:{free_port()}/mcp")
    add_server("ok", sys.executable, ["-m", "mcp_server_time"])
    with connect_configured(["down", "ok", "ghost"], connect_timeout_s=60) as found:
        assert {t.server for t in found.tools} == {"ok"}
        messages = [str(p) for p in found.problems]
    assert any("'ghost'" in m and "no MCP server named" in m for m in messages)
    assert any("'down'" in m and "can't be reached" in m for m in messages)


SILENT = McpServerConfig("silent", command=sys.executable, args=("-c", "import time; time.sleep(120)"))


def test_a_server_that_never_answers_times_out_starting_and_a_cancel_ends_the_wait_within_a_second():
    started = time.monotonic()
    with connect_servers([SILENT], connect_timeout_s=1.0) as found:
        [problem] = found.problems
    assert "'silent' did not finish starting within 1 s" in str(problem) and found.tools == []
    assert time.monotonic() - started < 12  # the SDK's stop sequence included

    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        connect_servers([SILENT], token, connect_timeout_s=60)
    assert time.monotonic() - started < 0.3 + 1.0


def test_mcp_tools_travel_the_agent_loop_with_its_approvals(time_server, odd_server):
    engine = FakeEngine()
    drain(engine.load())
    engine.enqueue_call("time__get_current_time", {"timezone": "Asia/Tokyo"})
    engine.enqueue_call("time__get_current_time", {"timezone": "Mars/Olympus_Mons"})
    engine.enqueue_call("odd__append_note", {"text": "hi"}).enqueue_call("odd__append_note", {"text": "hi"})
    engine.enqueue(["It is evening in Tokyo."])
    toolbox = Toolbox([*time_server.tools, odd_server["append_note"]])
    stream = run_agent(
        engine, [{"role": "user", "content": "What time is it in Tokyo?"}], toolbox, approvals=Approvals()
    )
    asked, decisions = [], iter(["deny", "allow_once"])
    while True:
        try:
            event = next(stream)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(event, ApprovalRequest):
            asked.append((event.call.name, event.effect))
            event.answer(next(decisions))
    tokyo, mars, denied, allowed = result.steps
    assert (tokyo.status, tokyo.approval, tokyo.effect) == ("ok", "pre-approved", "read")
    assert json.loads(tokyo.result)["datetime"].endswith("+09:00")
    assert mars.status == "error" and "Mars/Olympus_Mons" in mars.result
    assert (denied.status, denied.effect, allowed.status) == ("denied", "write", "ok")
    assert allowed.result == "appended 'hi'" and asked == [("odd__append_note", "write")] * 2
    assert result.answer == "It is evening in Tokyo."
