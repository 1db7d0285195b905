"""``macapp mcp``: mcp.json from the command line, listed by connecting to the real ``mcp-server-time``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from macapp.core import paths
from tests.cli.inprocess import run, run_json


def test_add_list_and_remove(capsys):
    assert "No MCP servers yet" in run(capsys, "mcp")[1]
    code, out, err = run(
        capsys, "mcp", "add", "time", "--env", "TZ=UTC", "--json", "--", sys.executable, "-m", "mcp_server_time"
    )  # after --, everything is the command's
    assert code == 0, err
    added = json.loads(out)
    assert added == {
        "name": "time",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "mcp_server_time"],
        "env": ["TZ"],
        "url": None,
        "headers": [],
    }
    web = run_json(
        capsys, "mcp", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization: Bearer k"
    )
    assert web["headers"] == ["Authorization"] and "Bearer k" not in json.dumps(web)  # values may be keys
    saved = json.loads(paths.mcp_config_file().read_text())["mcpServers"]
    assert saved["web"]["headers"] == {"Authorization": "Bearer k"} and saved["time"]["env"] == {"TZ": "UTC"}

    listed = run_json(capsys, "mcp", "list")
    time_row, web_row = listed["servers"]
    assert time_row["connected"] and time_row["error"] is None
    assert {(t["name"], t["effect"]) for t in time_row["tools"]} == {
        ("time__get_current_time", "read"),
        ("time__convert_time", "read"),
    }
    assert not web_row["connected"] and "can't be reached" in web_row["error"]

    code, out, _ = run(capsys, "mcp", "list")
    assert code == 0 and "time__get_current_time  [read]" in out and "error: MCP server 'web'" in out
    offline = run_json(capsys, "mcp", "list", "--no-connect")
    assert [r["connected"] for r in offline["servers"]] == [False, False]

    removed = run_json(capsys, "mcp", "remove", "web")
    assert removed["removed"] and removed["server"]["url"] == "http://127.0.0.1:9/mcp"
    assert [r["name"] for r in run_json(capsys, "mcp", "list", "--no-connect")["servers"]] == ["time"]


def test_a_server_that_prints_no_protocol_is_one_line_not_a_traceback(capsys):
    assert run(capsys, "mcp", "add", "chatty", "--", sys.executable, "-c", "print('hello there')")[0] == 0
    listed = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "mcp", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert listed.returncode == 0 and "error: MCP server 'chatty'" in listed.stdout, listed
    assert "Traceback" not in listed.stderr and "JSONRPC" not in listed.stderr, listed.stderr


def test_a_bad_entry_is_listed_with_its_problem(capsys):
    paths.mcp_config_file().write_text(json.dumps({"mcpServers": {"odd": {"command": "x", "args": "y"}}}))
    [row] = run_json(capsys, "mcp", "list")["servers"]
    assert row["name"] == "odd" and '"args" must be a list of strings' in row["error"]


def test_bad_input_is_one_line_and_exit_1(capsys):
    for args, says in [
        (("mcp", "add", "x"), "say how to reach the server"),
        (("mcp", "add", "x", "--url", "http://h/mcp", "--", "cmd"), "not both"),
        (("mcp", "add", "x", "--env", "NOVALUE", "--", "cmd"), "--env 'NOVALUE' must look like NAME=VALUE"),
        (("mcp", "add", "x", "--url", "ftp://h"), "http:// or https://"),
        (("mcp", "remove", "ghost"), "no MCP server named 'ghost'"),
    ]:
        code, _out, err = run(capsys, *args)
        assert code == 1 and says in err and err.count("\n") == 1, (args, err)
    paths.mcp_config_file().write_text("{not json")
    code, _out, err = run(capsys, "mcp", "list")
    assert code == 1 and "not valid JSON" in err
