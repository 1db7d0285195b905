"""The one shape every tool the agent can call has, built-in or from an MCP server, and the set a chat grants.

A tool is its ``ToolSpec`` (name, description, JSON schema of its arguments: what the model sees and
the grammar is built from), its ``effect`` (``read`` tools may be pre-approved; ``write`` and ``execute``
always ask first) and ``run``, which gets arguments already validated against the schema and a
``CancelToken`` it should check while it works (a tool that ignores it is abandoned at its timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from macapp.core.engines.tool_calls import ToolSpec
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken

EFFECTS = ("read", "write", "execute")  # anything not "read" asks the user before it runs


@dataclass(frozen=True)
class ToolResult:
    """What a tool gives back: text the model reads as data, and whether it is an error message."""

    text: str
    is_error: bool = False


class Tool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    @property
    def effect(self) -> str:
        """``read`` | ``write`` | ``execute``."""
        ...

    def check(self, arguments: dict) -> str | None:
        """Why this call cannot run whatever the user says (a path outside the granted folders), before anyone is
        asked to approve it; None when it can."""
        ...

    def run(self, arguments: dict, cancel: CancelToken) -> ToolResult: ...


@dataclass(frozen=True)
class FunctionTool:
    """A tool made of a spec, an effect and a function of (arguments, cancel)."""

    spec: ToolSpec
    effect: str
    function: Callable[[dict[str, Any], CancelToken], ToolResult]
    checker: Callable[[dict[str, Any]], str | None] | None = None

    def check(self, arguments: dict) -> str | None:
        return self.checker(arguments) if self.checker is not None else None

    def run(self, arguments: dict, cancel: CancelToken) -> ToolResult:
        return self.function(arguments, cancel)


class Toolbox:
    """The tools granted for one conversation, by name: the model can call these and nothing else."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.effect not in EFFECTS:
            raise UserError(f"Tool {tool.spec.name!r} has effect {tool.effect!r}; it must be one of {EFFECTS}")
        if tool.spec.name in self._tools:
            raise UserError(f"Two tools are named {tool.spec.name!r}; tool names must be unique in a chat")
        self._tools[tool.spec.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self._tools.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
