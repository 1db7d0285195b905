"""What a conversation grants the agent, and the confinement of file tools to granted folders.

``Grants`` is the allowlist of one chat: which tools, which folders, whether the shell may run, and
which tools the user approved "always" (saved in the conversation's settings under ``"agent"``).
``Folders`` turns a path the model wrote into a real path inside a granted folder, or refuses it: the
path is resolved first (symlinks followed, ``..`` collapsed), so a relative escape, an absolute path
elsewhere and a symlink pointing out of the folder are all refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from macapp.core.errors import UserError


class PathRefused(UserError):
    """A path outside the folders this chat granted."""


@dataclass(frozen=True)
class Folders:
    """Granted folders, resolved; relative paths are taken from the first (the working folder)."""

    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, folders: Iterable[str | Path]) -> Folders:
        roots = []
        for folder in folders:
            path = Path(folder).expanduser()
            if not path.is_dir():
                raise UserError(f"{folder} is not a folder, so it can't be granted")
            roots.append(path.resolve())
        return cls(tuple(dict.fromkeys(roots)))

    @property
    def working(self) -> Path:
        if not self.roots:
            raise PathRefused("No folder is granted in this chat")
        return self.roots[0]

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` if it lies inside a granted folder; ``PathRefused`` says why not."""
        if not isinstance(path, str) or not path.strip():
            raise PathRefused("The path is empty")
        if not self.roots:
            raise PathRefused("No folder is granted in this chat, so no file can be used")
        try:
            target = Path(path)
            real = (target if target.is_absolute() else self.working / target).resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops
            raise PathRefused(f"{path!r} is not a usable path ({exc})") from exc
        if any(real == root or real.is_relative_to(root) for root in self.roots):
            return real
        granted = ", ".join(str(r) for r in self.roots)
        raise PathRefused(f"{path} is outside the folders granted in this chat ({granted}); it was refused")

    def shown(self, path: Path) -> str:
        """``path`` as the model should see it: relative to the working folder when inside it."""
        try:
            return str(path.relative_to(self.working)) or "."
        except ValueError:
            return str(path)


@dataclass
class Grants:
    """The allowlist of one conversation, and the tools it approved for good."""

    tools: tuple[str, ...] = ()  # tool names granted (built-in ones, or "server__tool" from MCP)
    folders: tuple[str, ...] = ()
    shell: bool = False  # run_command is off unless granted
    always: set[str] = field(default_factory=set)  # "Always for this tool in this chat"
    preapprove_reads: bool = True  # read-only tools run without asking
    servers: tuple[str, ...] = ()  # MCP servers (names in mcp.json) whose tools are granted
    enabled: bool = False  # the chat's Tools switch in the window: its messages go to the agent
    require_tool: bool = False  # the first round must call a tool (small models answer without looking)

    def to_json(self) -> dict[str, Any]:
        return {
            "tools": list(self.tools),
            "folders": list(self.folders),
            "shell": self.shell,
            "always": sorted(self.always),
            "preapprove_reads": self.preapprove_reads,
            "servers": list(self.servers),
            "enabled": self.enabled,
            "require_tool": self.require_tool,
        }

    @classmethod
    def from_json(cls, data: Any) -> Grants:
        data = data if isinstance(data, dict) else {}

        def strings(key: str) -> list[str]:
            value = data.get(key)
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

        return cls(
            tuple(strings("tools")),
            tuple(strings("folders")),
            data.get("shell") is True,
            set(strings("always")),
            data.get("preapprove_reads", True) is not False,
            tuple(strings("servers")),
            data.get("enabled") is True,
            data.get("require_tool") is True,
        )
