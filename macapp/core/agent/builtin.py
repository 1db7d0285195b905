"""The built-in tools: search the chat's documents, read / list / write files, run a command, the date and time.

File tools work only inside the folders a chat grants (``Folders.resolve``). ``run_command`` is off
unless granted; it runs ``/bin/sh -c`` in the working folder with a time limit, an output cap and an
environment holding only ``PATH``, ``HOME`` (the working folder) and ``LANG``, so no secret in the
user's environment (API keys, tokens) reaches it. ``builtin_toolbox`` builds the tools a ``Grants`` allows.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from macapp.core.agent.guard import Folders, Grants, PathRefused
from macapp.core.agent.tools import FunctionTool, Tool, Toolbox, ToolResult
from macapp.core.engines.tool_calls import ToolSpec
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken

MAX_READ_BYTES = 64_000  # read_file returns at most this much of a file (the loop cuts observations further)
MAX_LIST_ENTRIES = 200
MAX_WRITE_BYTES = 1_000_000
SHELL_TIME_LIMIT_S = 20.0  # below the loop's default tool timeout, so the command's own limit speaks first
SHELL_OUTPUT_CAP = 16_000  # bytes of stdout+stderr kept; the rest is counted, not kept
SAFE_PATH = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
SEARCH_K = 5
BUILTIN_NAMES = ("search_documents", "read_file", "list_folder", "write_file", "run_command", "current_time")
NEEDS_FOLDER = ("read_file", "list_folder", "write_file", "run_command")

_PATH = {"type": "string", "description": "a path inside a granted folder (relative to the working folder)"}


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    return ToolSpec(
        name,
        description,
        {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
    )


def current_time_tool() -> Tool:
    def now(arguments: dict, cancel: CancelToken) -> ToolResult:
        moment = datetime.now().astimezone()
        return ToolResult(
            f"{moment:%A %d %B %Y, %H:%M:%S} ({moment.tzname()}, UTC{moment:%z}); "
            f"ISO 8601: {moment.isoformat(timespec='seconds')}"
        )

    return FunctionTool(_spec("current_time", "The current local date, time and time zone.", {}, []), "read", now)


def _inside(folders: Folders, key: str, default: str | None = None):
    """A check that ``arguments[key]`` is a path inside the granted folders (the guard's reason when not)."""

    def check(arguments: dict) -> str | None:
        try:
            folders.resolve(arguments.get(key) or default or "")
        except PathRefused as exc:
            return str(exc)
        return None

    return check


def read_file_tool(folders: Folders) -> Tool:
    def read(arguments: dict, cancel: CancelToken) -> ToolResult:
        path = folders.resolve(arguments["path"])
        if not path.is_file():
            return ToolResult(f"{arguments['path']} is not a file", is_error=True)
        with path.open("rb") as f:
            data = f.read(MAX_READ_BYTES + 1)
        if b"\x00" in data[:8192]:
            return ToolResult(f"{arguments['path']} is a binary file; only text files can be read", is_error=True)
        text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
        more = f"\n[the file goes on past {MAX_READ_BYTES} bytes]" if len(data) > MAX_READ_BYTES else ""
        return ToolResult(text + more)

    return FunctionTool(
        _spec("read_file", "Read a text file.", {"path": _PATH}, ["path"]), "read", read, _inside(folders, "path")
    )


def list_folder_tool(folders: Folders) -> Tool:
    def listing(arguments: dict, cancel: CancelToken) -> ToolResult:
        path = folders.resolve(arguments.get("path") or ".")
        if not path.is_dir():
            return ToolResult(f"{arguments.get('path')} is not a folder", is_error=True)
        entries = sorted(path.iterdir(), key=lambda p: p.name.casefold())
        lines = []
        for entry in entries[:MAX_LIST_ENTRIES]:
            if entry.is_dir():
                lines.append(f"{entry.name}/")
            else:
                lines.append(f"{entry.name} ({entry.stat().st_size} bytes)" if entry.exists() else entry.name)
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(f"[{len(entries) - MAX_LIST_ENTRIES} more entries]")
        return ToolResult(f"{folders.shown(path)}:\n" + ("\n".join(lines) or "(empty)"))

    spec = _spec(
        "list_folder",
        "List the files and folders in a folder.",
        {"path": {**_PATH, "description": "a folder inside a granted folder ('.' is the working folder)"}},
        [],
    )
    return FunctionTool(spec, "read", listing, _inside(folders, "path", "."))


def write_file_tool(folders: Folders) -> Tool:
    def write(arguments: dict, cancel: CancelToken) -> ToolResult:
        path = folders.resolve(arguments["path"])
        data = arguments["content"].encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            return ToolResult(
                f"The content is {len(data)} bytes; at most {MAX_WRITE_BYTES} can be written", is_error=True
            )
        if path.is_dir():
            return ToolResult(f"{arguments['path']} is a folder", is_error=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # whole or not at all
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ToolResult(f"Wrote {len(data)} bytes to {folders.shown(path)}")

    spec = _spec(
        "write_file",
        "Write a text file (replacing it if it exists).",
        {"path": _PATH, "content": {"type": "string", "description": "the whole new text of the file"}},
        ["path", "content"],
    )
    return FunctionTool(spec, "write", write, _inside(folders, "path"))


@dataclass(frozen=True)
class ShellLimits:
    time_limit_s: float = SHELL_TIME_LIMIT_S
    output_cap: int = SHELL_OUTPUT_CAP


def shell_environment(workdir: Path) -> dict[str, str]:
    """The whole environment a command gets: nothing inherited but the language."""
    return {"PATH": SAFE_PATH, "HOME": str(workdir), "LANG": os.environ.get("LANG") or "C.UTF-8"}


def run_command_tool(folders: Folders, limits: ShellLimits | None = None) -> Tool:
    limits = limits or ShellLimits()

    def run(arguments: dict, cancel: CancelToken) -> ToolResult:
        workdir = folders.working
        proc = subprocess.Popen(
            ["/bin/sh", "-c", arguments["command"]],
            cwd=workdir,
            env=shell_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        kept, dropped = bytearray(), [0]
        stdout = cast(io.BufferedReader, proc.stdout)  # stdout=PIPE with default buffering; typed as IO | None

        def drain() -> None:
            while chunk := stdout.read1(65536):
                room = limits.output_cap - len(kept)
                kept.extend(chunk[: max(room, 0)])
                dropped[0] += max(len(chunk) - max(room, 0), 0)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        deadline = time.monotonic() + limits.time_limit_s
        stopped = ""
        while proc.poll() is None:
            if cancel.wait(0.05):
                stopped = "cancelled"
            elif time.monotonic() >= deadline:
                stopped = f"stopped after its time limit of {limits.time_limit_s:g} s"
            if stopped:
                _kill_group(proc)
                break
        proc.wait()
        reader.join(1.0)
        output = kept.decode("utf-8", errors="replace")
        notes = [f"[output cut: {dropped[0]} more bytes]"] if dropped[0] else []
        if stopped:
            return ToolResult("\n".join([f"The command was {stopped}.", output, *notes]).strip(), is_error=True)
        return ToolResult(
            "\n".join([f"exit code {proc.returncode}", output, *notes]).strip(), is_error=proc.returncode != 0
        )

    spec = _spec(
        "run_command",
        "Run a shell command in the working folder; returns its exit code and output.",
        {"command": {"type": "string", "description": "a /bin/sh command line"}},
        ["command"],
    )
    return FunctionTool(spec, "execute", run)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
    except ProcessLookupError:
        pass


def search_documents_tool(collection: str, *, embedder=None, index=None) -> Tool:
    """Search ``collection`` (this chat's documents); each hit names its file and exact page."""

    def search(arguments: dict, cancel: CancelToken) -> ToolResult:
        from macapp.core.docs.retrieve import query

        nonlocal embedder
        if embedder is None:
            from macapp.core.docs.embedder import load_embedder

            embedder = load_embedder()
        passages = query(
            collection, arguments["query"], k=arguments.get("k") or SEARCH_K, embedder=embedder, index=index
        )
        if not passages:
            return ToolResult(f"Nothing in the documents of {collection!r} matches that.")
        hits = [
            f"[{n}] {p.file}, page {p.page}: {' '.join((p.quote or p.text).split())}"
            for n, p in enumerate(passages, start=1)
        ]
        return ToolResult("\n\n".join(hits))

    spec = _spec(
        "search_documents",
        "Search this chat's documents; each result names its file and page.",
        {
            "query": {"type": "string", "description": "what to look for", "minLength": 1},
            "k": {"type": "integer", "description": "how many results (1-10)", "minimum": 1, "maximum": 10},
        },
        ["query"],
    )
    return FunctionTool(spec, "read", search)


def builtin_toolbox(
    grants: Grants, *, collection: str | None = None, embedder=None, index=None, shell: ShellLimits | None = None
) -> Toolbox:
    """The built-in tools ``grants`` allows; a granted tool that lacks what it needs is a ``UserError``.

    ``grants.tools`` empty means every built-in tool whose needs are met (folders for file tools, a
    collection for search); ``run_command`` needs ``grants.shell`` either way.
    """
    unknown = [n for n in grants.tools if n not in BUILTIN_NAMES and "__" not in n]  # "server__tool": MCP's
    if unknown:
        raise UserError(f"No built-in tool is named {', '.join(unknown)}", hint=f"tools: {', '.join(BUILTIN_NAMES)}")
    folders = Folders.of(grants.folders)
    explicit = bool(grants.tools)
    wanted = (
        [n for n in BUILTIN_NAMES if n in grants.tools]
        if explicit
        else [
            n
            for n in BUILTIN_NAMES
            if (n not in NEEDS_FOLDER or folders.roots)
            and (n != "search_documents" or collection)
            and (n != "run_command" or grants.shell)
        ]
    )

    def search_tool() -> Tool:
        assert collection, "checked below before it is built"
        return search_documents_tool(collection, embedder=embedder, index=index)

    tools: list[Tool] = []
    for name in wanted:
        if name in NEEDS_FOLDER and not folders.roots:
            raise UserError(f"{name} needs a granted folder", hint="grant one with --allow-folder DIR")
        if name == "run_command" and not grants.shell:
            raise UserError("run_command is off unless the shell is granted", hint="--allow-shell")
        if name == "search_documents" and not collection:
            raise UserError("search_documents needs this chat's documents", hint="--collection NAME")
        tools.append(
            {
                "current_time": current_time_tool,
                "read_file": lambda: read_file_tool(folders),
                "list_folder": lambda: list_folder_tool(folders),
                "write_file": lambda: write_file_tool(folders),
                "run_command": lambda: run_command_tool(folders, shell),
                "search_documents": search_tool,
            }[name]()
        )
    return Toolbox(tools)
