"""The user's MCP servers as agent tools, through the official SDK (``mcp``).

Each server gets a ``McpConnection``: a background thread running its own event loop that holds one
``ClientSession`` over stdio (a child process) or streamable HTTP. Its tools become ``McpTool``s, the
same shape as the built-in tools (``macapp.core.agent.tools.Tool``), named ``server__tool`` so two
servers can't clash; ``McpTool.run`` blocks until the answer, a timeout or the ``CancelToken``.

A child process gets a minimal environment (the SDK's PATH, HOME, USER, LOGNAME, SHELL and TERM, plus
LANG and the entry's ``env``), never the app's own secrets; its stderr goes to ``logs/mcp/NAME.log``.
``McpTools.close()`` (also run at exit) ends every session and stops every child.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from macapp.core import paths
from macapp.core.agent.mcp_config import McpServerConfig, McpServerError, load_mcp_config
from macapp.core.agent.tools import ToolResult
from macapp.core.engines.structured import gbnf_for_schema
from macapp.core.engines.tool_calls import ToolSpec
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 60.0  # start, handshake and tool list; `npx`/`uvx` may fetch the server the first time
CALL_TIMEOUT_S = 120.0  # a call's own limit; the agent loop usually stops it sooner (its per-tool timeout)
CLOSE_TIMEOUT_S = 8.0  # the SDK's stop sequence: close stdin, 2 s, SIGTERM, 2 s, SIGKILL
POLL_S = 0.05  # how often a waiting caller looks at its CancelToken
MAX_LIST_PAGES = 50  # a server whose tools/list never ends can't hang the connection
_SEP = "__"  # between the server's and the tool's name: time__get_current_time
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_live: weakref.WeakSet[McpConnection] = weakref.WeakSet()


def effect_of(annotations: Any) -> str:
    """The approval class from a tool's MCP annotations: read-only is ``read``, additive-only ``write``,
    anything else (destructive, or unannotated) ``execute``. They are the server's hints, so nothing but
    an explicit read-only hint skips the question."""
    if annotations is None:
        return "execute"
    if annotations.read_only_hint is True:
        return "read"
    if annotations.destructive_hint is False:
        return "write"
    return "execute"


def tool_name(server: str, tool: str) -> str:
    """``server__tool`` with what a function name can't hold replaced, at most 64 characters."""
    name = f"{_UNSAFE.sub('_', server).strip('_') or 'server'}{_SEP}{_UNSAFE.sub('_', tool) or 'tool'}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


def result_text(result: Any) -> str:
    """The text a ``CallToolResult`` carries, for the model: text blocks as they are, other blocks named."""
    parts = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} ({block.mime_type}), not shown]")
        elif kind == "resource":
            inner = block.resource
            parts.append(getattr(inner, "text", None) or f"[resource {inner.uri}, {inner.mime_type or 'binary'}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


@dataclass(frozen=True)
class McpTool:
    """One tool of an MCP server, shaped like every other agent tool."""

    spec: ToolSpec
    effect: str
    server: str
    remote_name: str  # the name the server knows it by
    connection: McpConnection = field(repr=False, compare=False)
    timeout_s: float = CALL_TIMEOUT_S

    def check(self, arguments: dict) -> str | None:
        return None  # the server decides; its refusal comes back as an error result

    def run(self, arguments: dict, cancel: CancelToken) -> ToolResult:
        return self.connection.call(self.remote_name, arguments, cancel, self.timeout_s)


class McpConnection:
    """One live session with one server, on its own thread and event loop: ``start``, then ``wait_ready``."""

    def __init__(self, config: McpServerConfig, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.config = config
        self.connect_timeout_s = connect_timeout_s
        self.tools: list[McpTool] = []
        self.problems: list[str] = []  # tools left out (a schema no grammar can express)
        self.error: McpServerError | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._scope: Any = None  # the anyio CancelScope that holds the session; cancelled by close()
        self._close_requested = False
        self._log_path = paths.logs_dir() / "mcp" / f"{_UNSAFE.sub('_', config.name) or 'server'}.log"
        self._thread = threading.Thread(target=self._serve, name=f"mcp-{config.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def alive(self) -> bool:
        return self._ready.is_set() and self.error is None and not self._stopped.is_set()

    def start(self) -> None:
        _live.add(self)
        self._thread.start()

    def wait_ready(self, cancel: CancelToken | None = None) -> None:
        """Block until the tools are listed; ``McpServerError`` if the server could not be reached."""
        deadline = time.monotonic() + self.connect_timeout_s + CLOSE_TIMEOUT_S
        while not self._ready.wait(POLL_S):
            if cancel is not None and cancel.cancelled:
                self.close(wait=False)  # the server stops in the background; a cancel answers at once
                raise Cancelled()
            if time.monotonic() > deadline:  # the SDK's own limits failed to end the attempt
                self.close()
                raise McpServerError(
                    self.name, f"MCP server {self.name!r} did not start within {self.connect_timeout_s:g} s"
                )
        if self.error is not None:
            raise self.error

    def call(self, tool: str, arguments: dict, cancel: CancelToken, timeout_s: float = CALL_TIMEOUT_S) -> ToolResult:
        """Run ``tool`` on the server and wait; ``Cancelled`` when ``cancel`` fires (the call is abandoned)."""
        if not self.alive or self._loop is None:
            return ToolResult(self._gone_message(tool), is_error=True)
        try:
            future = asyncio.run_coroutine_threadsafe(self._session.call_tool(tool, arguments), self._loop)
        except RuntimeError:  # the loop ended since `alive` was read
            return ToolResult(self._gone_message(tool), is_error=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result = future.result(timeout=POLL_S)
                break
            except concurrent.futures.TimeoutError:
                if cancel.cancelled:
                    future.cancel()
                    raise Cancelled() from None
                if time.monotonic() >= deadline:
                    future.cancel()
                    return ToolResult(
                        f"MCP server {self.name!r} did not answer {tool} within {timeout_s:g} s", is_error=True
                    )
                if self._stopped.is_set():
                    future.cancel()
                    return ToolResult(self._gone_message(tool), is_error=True)
            except concurrent.futures.CancelledError:
                return ToolResult(self._gone_message(tool), is_error=True)
            except Exception as exc:  # noqa: BLE001 - the SDK's McpError, anyio's and httpx's: each is the tool's error
                if self._is_connection_lost(exc):
                    return ToolResult(self._gone_message(tool), is_error=True)
                return ToolResult(f"MCP server {self.name!r} refused {tool}: {_one_line(exc)}", is_error=True)
        return ToolResult(result_text(result), is_error=bool(result.is_error))

    def close(self, wait: bool = True) -> None:
        """End the session and stop the server's process (``wait``: until the SDK's stop sequence is done)."""
        self._close_requested = True
        loop, scope = self._loop, self._scope
        if loop is not None and scope is not None:
            try:
                loop.call_soon_threadsafe(scope.cancel)
            except RuntimeError:  # the loop has ended already
                pass
        if wait and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            _live.discard(self)  # else the exit handler waits for it

    # -- the connection's own thread

    def _serve(self) -> None:
        import anyio

        try:
            anyio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - the connection thread's end: every way it ends is its error
            if not self._ready.is_set():
                self.error = self._connect_error(exc)
            else:
                log.info("MCP server %r: session ended: %s", self.name, _one_line(_root_cause(exc)))
        finally:
            if not self._ready.is_set() and self.error is None:
                self.error = McpServerError(self.name, f"MCP server {self.name!r} was closed before it was ready")
            self._stopped.set()
            self._ready.set()

    async def _main(self) -> None:
        import anyio
        from mcp import ClientSession

        self._loop = asyncio.get_running_loop()
        with anyio.CancelScope() as self._scope:
            if self._close_requested:
                self._scope.cancel()
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._log_path, "w", encoding="utf-8") as errlog:
                async with self._transport(errlog) as (read, write), ClientSession(read, write) as session:
                    with anyio.fail_after(self.connect_timeout_s):
                        await session.initialize()
                        listed = await self._list_tools(session)
                    self._session = session
                    self.tools = self._make_tools(listed)
                    self._ready.set()
                    await anyio.sleep_forever()

    def _transport(self, errlog: Any) -> Any:
        from mcp import StdioServerParameters, stdio_client

        config = self.config
        if config.command:
            env = {"LANG": os.environ["LANG"]} if os.environ.get("LANG") else {}
            params = StdioServerParameters(command=config.command, args=list(config.args), env={**env, **config.env})
            return stdio_client(params, errlog=errlog)
        return _http_transport(config.url or "", config.headers)

    @staticmethod
    async def _list_tools(session: Any) -> list[Any]:
        from mcp.types import PaginatedRequestParams

        listed, cursor = [], None
        for _ in range(MAX_LIST_PAGES):
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return listed

    def _make_tools(self, listed: Iterable[Any]) -> list[McpTool]:
        tools, taken = [], set()
        for tool in listed:
            name = tool_name(self.name, tool.name)
            if name in taken:  # two remote names that only differ in characters a function name can't hold
                name = tool_name(self.name, f"{tool.name}_{hashlib.sha256(tool.name.encode()).hexdigest()[:6]}")
            try:
                schema = dict(tool.input_schema or {"type": "object", "properties": {}})
                spec = ToolSpec(name, tool.description or tool.title or "", schema)
                gbnf_for_schema(schema)  # the agent builds its grammar from it: refuse it here, named
            except UserError as exc:
                self.problems.append(f"{tool.name}: {exc}")
                log.warning("MCP server %r: tool %r left out: %s", self.name, tool.name, exc)
                continue
            taken.add(name)
            tools.append(McpTool(spec, effect_of(tool.annotations), self.name, tool.name, self))
        return tools

    # -- messages

    def _connect_error(self, exc: BaseException) -> McpServerError:
        cause = _root_cause(exc)
        config, what = self.config, f"MCP server {self.name!r}"

        def error(message: str, hint: str | None = None) -> McpServerError:
            return McpServerError(self.name, f"{what} {message}", hint)

        if isinstance(cause, FileNotFoundError) and config.command:
            return error(
                f"can't start: there is no program {config.command!r}",
                'check "command" in mcp.json; it is looked up on PATH',
            )
        if isinstance(cause, PermissionError) and config.command:
            return error(f"can't start: {config.command!r} is not an executable program")
        if isinstance(cause, TimeoutError):
            return error(f"did not finish starting within {self.connect_timeout_s:g} s", self._stderr_hint())
        if config.command and self._is_connection_lost(cause):
            return error("exited before it was ready", self._stderr_hint())
        if config.url:
            return error(f"at {config.url} can't be reached: {_one_line(cause)}")
        log.warning("MCP server %r failed to connect", self.name, exc_info=exc)
        return error(f"failed to connect: {_one_line(cause)}", self._stderr_hint())

    def _gone_message(self, tool: str) -> str:
        hint = self._stderr_hint()
        return f"MCP server {self.name!r} stopped before answering {tool}" + (f" ({hint})" if hint else "")

    @staticmethod
    def _is_connection_lost(exc: BaseException) -> bool:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        if isinstance(exc, MCPError):
            return exc.error.code == CONNECTION_CLOSED
        return isinstance(exc, (BrokenPipeError, EOFError, ConnectionError))

    def _stderr_hint(self) -> str | None:
        """The last lines the server wrote on stderr, on one line."""
        if not self.config.command:
            return None
        try:
            lines = [line.strip() for line in self._log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            return None
        lines = [line[:200] for line in lines if line][-3:]
        return f"its last words: {' / '.join(lines)}; log: {self._log_path}" if lines else f"log: {self._log_path}"


def _http_transport(url: str, headers: dict[str, str]) -> Any:
    from contextlib import asynccontextmanager

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def transport():
        timeout = httpx2.Timeout(30.0, read=CALL_TIMEOUT_S)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
            streamable_http_client(url, http_client=http) as streams,
        ):
            yield streams[0], streams[1]

    return transport()


def _root_cause(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, which anyio task groups raise."""
    while group := getattr(exc, "exceptions", None):  # an ExceptionGroup (a backport on Python 3.10)
        inner = [e for e in group if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(group))[0]
    return exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


@dataclass
class McpTools:
    """The connected servers' tools, and one error per server that could not be used; ``close()`` ends them."""

    connections: list[McpConnection] = field(default_factory=list)
    problems: list[McpServerError] = field(default_factory=list)

    @property
    def tools(self) -> list[McpTool]:
        return [tool for c in self.connections if c.alive for tool in c.tools]

    def close(self) -> None:
        closers = [threading.Thread(target=c.close, daemon=True) for c in self.connections]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(CLOSE_TIMEOUT_S + 1)

    def __enter__(self) -> McpTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_servers(
    servers: Iterable[McpServerConfig], cancel: CancelToken | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> McpTools:
    """Connect to every server at once; one that fails is a problem in the answer, never an exception."""
    found = McpTools()
    connections = [McpConnection(s, connect_timeout_s) for s in servers]
    for connection in connections:
        connection.start()
    try:
        for connection in connections:
            try:
                connection.wait_ready(cancel)
                found.connections.append(connection)
            except McpServerError as exc:
                found.problems.append(exc)
    except Cancelled:
        for connection in connections:
            connection.close(wait=False)
        raise
    return found


def connect_configured(
    names: Iterable[str] | None = None, cancel: CancelToken | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> McpTools:
    """Connect to the servers in ``mcp.json`` (only ``names`` when given); its bad entries are problems too."""
    config = load_mcp_config()
    wanted = None if names is None else set(names)
    servers = [s for s in config.servers if wanted is None or s.name in wanted]
    problems = [p for p in config.problems if wanted is None or p.server in wanted]
    if wanted is not None:
        known = {s.name for s in config.servers} | {p.server for p in config.problems}
        problems += [McpServerError(n, f"no MCP server named {n!r} in {config.path}") for n in sorted(wanted - known)]
    found = connect_servers(servers, cancel, connect_timeout_s)
    found.problems[:0] = problems
    return found


@atexit.register
def _close_all() -> None:
    """Leave no server running when the app exits without closing its sessions."""
    McpTools(list(_live)).close()
