"""What an agent turn runs on the Chat page's engine thread: the tools a chat grants, its MCP servers, the run.

``agent_turn`` builds the toolbox from the conversation's ``Grants`` (built-in tools whose needs are
met, and the tools of the granted MCP servers, connected for this run and closed after it), says
which tools it has and what could not be used (``ToolsReady``: a server that fails is a note, never
the end of the run), then runs ``run_in_chat``, which saves the question, each step and the answer.
An ``ApprovalRequest`` it yields reaches the GUI thread while the loop waits for the answer on this
thread; Stop cancels the run's token, which also ends that wait.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from macapp.core.agent.builtin import BUILTIN_NAMES, NEEDS_FOLDER, builtin_toolbox
from macapp.core.agent.guard import Grants
from macapp.core.agent.loop import AgentEvent, AgentResult, AgentText
from macapp.core.agent.tools import Toolbox
from macapp.core.progress import CancelToken
from macapp.ui.chat.jobs import coalesce

if TYPE_CHECKING:
    from macapp.core.chat.store import ChatStore
    from macapp.core.engines.base import Engine, SamplingSettings


@dataclass(frozen=True)
class ToolsReady:
    """The run's tools are ready: their names, and one line per granted tool or server that can't be used."""

    names: tuple[str, ...]
    problems: tuple[str, ...]


def granted_builtins(grants: Grants) -> tuple[str, ...]:
    """The built-in tools the window shows as on: the chat's list, or (none listed) every tool but the shell."""
    chosen = grants.tools or tuple(n for n in BUILTIN_NAMES if n != "run_command")
    names = [n for n in BUILTIN_NAMES if n in chosen and n != "run_command"]
    return (*names, "run_command") if grants.shell else tuple(names)


def window_toolbox(grants: Grants, collection: str | None) -> tuple[Toolbox, list[str]]:
    """The built-in tools ``grants`` allows whose needs are met, and why each other granted one is left out."""
    folders = tuple(f for f in grants.folders if Path(f).expanduser().is_dir())
    problems = [f"{f} is not a folder any more, so it was left out" for f in grants.folders if f not in folders]
    usable = []
    for name in granted_builtins(grants):
        if name in NEEDS_FOLDER and not folders:
            problems.append(f"{name} needs a folder: add one in the Tools settings")
        elif name == "search_documents" and not collection:
            continue  # offered once the chat has documents: nothing is wrong without them
        else:
            usable.append(name)
    if not usable:
        return Toolbox(), problems
    return builtin_toolbox(
        Grants(tools=tuple(usable), folders=folders, shell=grants.shell), collection=collection
    ), problems


def agent_turn(
    store: ChatStore,
    conversation_id: int,
    task: str,
    engine: Engine,
    grants: Grants,
    collection: str | None,
    cancel: CancelToken,
    sampling: SamplingSettings | None = None,
) -> Generator[ToolsReady | AgentEvent, None, AgentResult]:
    """Run the agent on ``task`` in the conversation, on the engine thread.

    Yields:
        ``ToolsReady`` first, then what ``run_in_chat`` yields (answer text in batches).
    """
    from macapp.core.agent.history import run_in_chat

    toolbox, problems = window_toolbox(grants, collection)
    servers = None
    if grants.servers:
        from macapp.core.agent.mcp import connect_configured

        servers = connect_configured(grants.servers, cancel)
        problems += [p.message for p in servers.problems]
        picked = {t for t in grants.tools if "__" in t}  # only these MCP tools, when any are named
        for tool in servers.tools:
            if not picked or tool.spec.name in picked:
                toolbox.add(tool)
    try:
        yield ToolsReady(toolbox.names, tuple(problems))
        stream = run_in_chat(
            store,
            conversation_id,
            task,
            engine,
            toolbox,
            grants=grants,
            sampling=sampling,
            cancel=cancel,
            first_call_required=grants.require_tool and len(toolbox) > 0,
        )
        return (yield from coalesce(stream, kind=AgentText, merge=_merge_texts))
    finally:
        if servers is not None:  # stopping a server takes seconds: the page need not wait for it
            threading.Thread(target=servers.close, name="mcp-close", daemon=True).start()


def _merge_texts(texts: list[AgentText]) -> AgentText:
    return AgentText("".join(t.text for t in texts))
