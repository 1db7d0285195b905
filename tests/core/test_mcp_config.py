"""``mcp.json``: the format Cursor and LM Studio use; each bad entry is its own clear error, the rest load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macapp.core import paths
from macapp.core.agent.mcp_config import add_server, add_url_server, load_mcp_config, remove_server
from macapp.core.errors import UserError


def write(doc) -> None:
    paths.mcp_config_file().write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")


def test_no_file_means_no_servers():
    config = load_mcp_config()
    assert config.servers == () and config.problems == ()
    assert config.path == paths.data_dir() / "mcp.json"


def test_reads_cursor_format_stdio_and_http():
    write(
        {
            "mcpServers": {
                "time": {
                    "command": "uvx",
                    "args": ["mcp-server-time", "--local-timezone=UTC"],
                    "env": {"TZ": "UTC"},
                    "autoApprove": ["get_current_time"],
                },  # another client's key: ignored
                "web": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer t"}, "type": "http"},
            }
        }
    )
    config = load_mcp_config()
    assert config.problems == ()
    time, web = config.servers
    assert (time.name, time.transport, time.command, time.args, time.env) == (
        "time",
        "stdio",
        "uvx",
        ("mcp-server-time", "--local-timezone=UTC"),
        {"TZ": "UTC"},
    )
    assert (web.name, web.transport, web.url, web.headers) == (
        "web",
        "http",
        "https://example.com/mcp",
        {"Authorization": "Bearer t"},
    )
    assert time.describe() == "uvx mcp-server-time --local-timezone=UTC"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("uvx mcp-server-time", "must be an object"),
        ({}, 'needs "command"'),
        ({"command": "x", "url": "http://h/mcp"}, "not both"),
        ({"command": ""}, '"command" must be a non-empty string'),
        ({"command": "x", "args": "--flag"}, '"args" must be a list of strings'),
        ({"command": "x", "args": ["a", 3]}, '"args" must be a list of strings'),
        ({"command": "x", "env": {"PORT": 8080}}, '"env" must be an object of strings'),
        ({"url": "ftp://host/mcp"}, "http:// or https://"),
        ({"url": "localhost:8000/mcp"}, "http:// or https://"),
        ({"url": "http://h/mcp", "headers": ["Authorization: x"]}, '"headers" must be an object of strings'),
        ({"url": "http://h/sse", "type": "sse"}, "SSE transport is not supported"),
        ({"command": "x", "type": "websocket"}, 'unknown "type"'),
    ],
)
def test_a_bad_entry_names_the_server_and_the_problem_and_never_stops_the_others(entry, says):
    write({"mcpServers": {"broken": entry, "good": {"command": "python3", "args": ["-m", "x"]}}})
    config = load_mcp_config()
    assert [s.name for s in config.servers] == ["good"]
    [problem] = config.problems
    assert isinstance(problem, UserError) and problem.server == "broken"
    assert str(problem).startswith("MCP server 'broken': ") and says in str(problem)
    assert "\n" not in str(problem)
    with pytest.raises(UserError, match="broken"):
        config.server("broken")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"mcpServers": {"a": {"command": "x",}}}', "not valid JSON: .* line 1, column"),
        ('["a"]', "must hold a JSON object"),
        ('{"mcpServers": ["time"]}', '"mcpServers" .* must be an object'),
    ],
)
def test_a_file_that_is_not_an_mcp_json_is_one_clear_error(text, says):
    write(text)
    with pytest.raises(UserError, match=says):
        load_mcp_config()


def test_add_and_remove_keep_the_other_entries_as_they_were():
    write({"mcpServers": {"mine": {"command": "node", "args": ["s.js"], "disabled": True}}, "other": 1})
    added = add_server("time", "python3", ["-m", "mcp_server_time"], env={"TZ": "UTC"})
    assert (added.name, added.command, added.args, added.env) == (
        "time",
        "python3",
        ("-m", "mcp_server_time"),
        {"TZ": "UTC"},
    )
    add_url_server("web", "http://127.0.0.1:1/mcp", {"X-Key": "k"})
    doc = json.loads(paths.mcp_config_file().read_text())
    assert doc["other"] == 1 and doc["mcpServers"]["mine"] == {"command": "node", "args": ["s.js"], "disabled": True}
    assert [s.name for s in load_mcp_config().servers] == ["mine", "time", "web"]

    with pytest.raises(UserError, match="already an MCP server named 'time'"):
        add_server("time", "other")
    assert remove_server("time") == {"command": "python3", "args": ["-m", "mcp_server_time"], "env": {"TZ": "UTC"}}
    with pytest.raises(UserError, match="no MCP server named 'time'.*known: mine, web"):
        remove_server("time")
    assert [s.name for s in load_mcp_config().servers] == ["mine", "web"]


def test_add_refuses_a_bad_entry_before_writing():
    with pytest.raises(UserError, match='"url" must be an http'):
        add_url_server("web", "not a url")
    assert not paths.mcp_config_file().exists()
    write("{broken")
    with pytest.raises(UserError, match="not valid JSON"):
        add_server("time", "python3")
    assert paths.mcp_config_file().read_text() == "{broken"  # never overwritten


def test_env_variables_and_the_home_folder_are_filled_in_as_in_cursor(monkeypatch):
    monkeypatch.setenv("GH_TOKEN", "ghp-123")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    write(
        {
            "mcpServers": {
                "gh": {
                    "command": "${userHome}/bin/gh-mcp",
                    "args": ["--token=${env:GH_TOKEN}"],
                    "env": {"GITHUB_TOKEN": "${env:GH_TOKEN}", "LITERAL": "$GH_TOKEN"},
                },
                "web": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer ${env:GH_TOKEN}"}},
                "unset": {"command": "x", "env": {"KEY": "${env:NOT_SET_ANYWHERE}"}},
            }
        }
    )
    config = load_mcp_config()
    gh, web = config.servers
    assert gh.command == str(Path.home() / "bin" / "gh-mcp") and gh.args == ("--token=ghp-123",)
    assert gh.env == {"GITHUB_TOKEN": "ghp-123", "LITERAL": "$GH_TOKEN"}
    assert web.headers == {"Authorization": "Bearer ghp-123"}
    [problem] = config.problems
    assert problem.server == "unset" and "$NOT_SET_ANYWHERE is not set" in str(problem)
    assert "${env:GH_TOKEN}" in paths.mcp_config_file().read_text()  # the file keeps the reference
