"""The user's MCP servers: an ``mcp.json`` in Orchard's data folder, in the format Cursor and LM Studio use.

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "Europe/Paris"}},
        "web": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ..."}}}}

A bad entry is reported on its own (a ``UserError`` naming the server and the problem) and never stops
the others. Keys other clients add (``disabled``, ``autoApprove``, ...) are kept and otherwise ignored.
As in Cursor, ``${env:NAME}`` and ``${userHome}`` in a value are replaced when the file is read, so a key
can stay in the environment instead of the file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from macapp.core import paths
from macapp.core.errors import UserError

_HTTP_TYPES = {"http", "streamable-http", "streamableHttp"}  # what Cursor, VS Code and LM Studio write
_VARIABLE = re.compile(r"\$\{(env:[A-Za-z_][A-Za-z0-9_]*|userHome)\}")


@dataclass(frozen=True)
class McpServerConfig:
    """One server: a program to start (stdio) or the URL of a streamable HTTP endpoint."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, hash=False)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def describe(self) -> str:
        """The command line or the URL, for a listing."""
        if self.command:
            return " ".join([self.command, *self.args])
        return self.url or ""


@dataclass(frozen=True)
class McpConfig:
    """What ``mcp.json`` holds: the usable servers, and one error per entry that is not."""

    path: Path
    servers: tuple[McpServerConfig, ...] = ()
    problems: tuple[McpServerError, ...] = ()

    def server(self, name: str) -> McpServerConfig:
        for server in self.servers:
            if server.name == name:
                return server
        for problem in self.problems:
            if problem.server == name:
                raise problem
        known = ", ".join(s.name for s in self.servers) or "none yet"
        raise UserError(f"no MCP server named {name!r} in {self.path}", hint=f"known: {known}")


class McpServerError(UserError):
    """A problem with one server (its entry, or reaching it); ``server`` names it."""

    def __init__(self, server: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.server = server


class McpEntryError(McpServerError):
    """A server entry of ``mcp.json`` that can't be used."""

    def __init__(self, server: str, problem: str):
        super().__init__(server, f"MCP server {server!r}: {problem}")


def load_mcp_config(path: Path | None = None) -> McpConfig:
    """The servers in ``mcp.json`` (none when the file does not exist); a file that isn't JSON is a ``UserError``."""
    path = path or paths.mcp_config_file()
    entries = _read_entries(path)
    servers, problems = [], []
    for name, entry in entries.items():
        try:
            servers.append(parse_server(name, entry))
        except McpEntryError as exc:
            problems.append(exc)
    return McpConfig(path, tuple(servers), tuple(problems))


def parse_server(name: str, entry: Any) -> McpServerConfig:
    """One entry of ``mcpServers``; ``McpEntryError`` says what is wrong with it."""
    if not name.strip():
        raise McpEntryError(name, "a server needs a non-empty name")
    if not isinstance(entry, dict):
        raise McpEntryError(name, 'its entry must be an object like {"command": ..., "args": [...]}')
    kind = entry.get("type")
    command, url = entry.get("command"), entry.get("url", entry.get("serverUrl"))
    if kind == "sse":
        raise McpEntryError(name, "the older SSE transport is not supported; use the server's streamable HTTP URL")
    if kind is not None and kind != "stdio" and kind not in _HTTP_TYPES:
        raise McpEntryError(name, f'unknown "type" {kind!r} (use "stdio" or "http")')
    if command is not None and url is not None:
        raise McpEntryError(name, 'give "command" (a program to start) or "url" (a server to reach), not both')
    if command is None and url is None:
        raise McpEntryError(name, 'it needs "command" (a program to start) or "url" (a streamable HTTP server)')
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise McpEntryError(name, '"command" must be a non-empty string')
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpEntryError(name, '"args" must be a list of strings')
        return McpServerConfig(
            name,
            command=_expand(name, command),
            args=tuple(_expand(name, a) for a in args),
            env=_strings(name, entry, "env"),
        )
    if isinstance(url, str):
        url = _expand(name, url)
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise McpEntryError(name, f'"url" must be an http:// or https:// address (got {url!r})')
    return McpServerConfig(name, url=url, headers=_strings(name, entry, "headers"))


def add_server(
    name: str, command: str, args: list[str] | None = None, env: dict[str, str] | None = None, path: Path | None = None
) -> McpServerConfig:
    """Save a stdio server under ``name`` (nothing is started); the other entries are kept as they were."""
    entry: dict[str, Any] = {"command": command, "args": list(args or [])}
    if env:
        entry["env"] = dict(env)
    return _add(name, entry, path)


def add_url_server(
    name: str, url: str, headers: dict[str, str] | None = None, path: Path | None = None
) -> McpServerConfig:
    """Save a streamable HTTP server under ``name`` (nothing is contacted)."""
    entry: dict[str, Any] = {"url": url}
    if headers:
        entry["headers"] = dict(headers)
    return _add(name, entry, path)


def remove_server(name: str, path: Path | None = None) -> dict[str, Any]:
    """Forget the server called ``name``; returns its entry as it was saved."""
    path = path or paths.mcp_config_file()
    doc = _read_doc(path)
    servers = doc.get("mcpServers", {})
    if name not in servers:
        known = ", ".join(servers) or "none yet"
        raise UserError(f"no MCP server named {name!r} in {path}", hint=f"known: {known}")
    entry = servers.pop(name)
    _write_doc(path, doc)
    return entry


def _add(name: str, entry: dict[str, Any], path: Path | None) -> McpServerConfig:
    server = parse_server(name, entry)  # refuses a bad entry before anything is written
    path = path or paths.mcp_config_file()
    doc = _read_doc(path)
    servers = doc.setdefault("mcpServers", {})
    if name in servers:
        raise UserError(f"there is already an MCP server named {name!r}", hint="remove it first, or pick another name")
    servers[name] = entry
    _write_doc(path, doc)
    return server


def _strings(name: str, entry: dict[str, Any], key: str) -> dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise McpEntryError(name, f'"{key}" must be an object of strings, like {{"NAME": "value"}}')
    return {k: _expand(name, v) for k, v in value.items()}


def _expand(name: str, value: str) -> str:
    """``${env:NAME}`` and ``${userHome}`` replaced; a variable that is not set is an error, not an empty key."""

    def replace(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable == "userHome":
            return str(Path.home())
        found = os.environ.get(variable[4:])
        if found is None:
            raise McpEntryError(name, f"${{{variable}}} is used but ${variable[4:]} is not set")
        return found

    return _VARIABLE.sub(replace, value)


def _read_doc(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"mcpServers": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text", hint=str(exc)) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except OSError as exc:
        raise UserError(f"can't read {path}: {exc.strerror or exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f'{path} must hold a JSON object like {{"mcpServers": {{...}}}}')
    if not isinstance(doc.get("mcpServers", {}), dict):
        raise UserError(f'"mcpServers" in {path} must be an object of servers by name')
    return doc


def _read_entries(path: Path) -> dict[str, Any]:
    return _read_doc(path).get("mcpServers", {})


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mcp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
