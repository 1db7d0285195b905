"""Asking before a tool writes or executes: Allow once / Always for this tool in this chat / Deny.

The loop yields an ``ApprovalRequest`` and waits on it; whoever drives the loop answers it with
``answer(...)``, before the next ``next()`` (a terminal prompt) or from another thread (a window's
button). The "always" answers live in the conversation's ``Grants``, so they are remembered for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from macapp.core.agent.guard import Grants
from macapp.core.engines.tool_calls import ToolCall
from macapp.core.progress import CancelToken

Decision = Literal["allow_once", "always", "deny"]
DECISIONS: tuple[Decision, ...] = ("allow_once", "always", "deny")
POLL_S = 0.05  # how often a wait checks the cancel token (cancel lands well within a second)
# How a step was approved, as saved with it.
NOT_NEEDED, PRE_APPROVED, ALWAYS, ALLOWED_ONCE, DENIED = (
    "not needed",
    "pre-approved",
    "always",
    "allowed once",
    "denied",
)


@dataclass
class ApprovalRequest:
    """A call waiting for the user's decision; ``answer`` it with one of ``DECISIONS``."""

    call: ToolCall
    effect: str
    description: str = ""
    _decision: Decision | None = None
    _answered: threading.Event = field(default_factory=threading.Event, repr=False)

    def answer(self, decision: Decision) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
        self._decision = decision
        self._answered.set()

    @property
    def decision(self) -> Decision | None:
        return self._decision

    def wait(self, cancel: CancelToken) -> Decision | None:
        """The decision, once given; None when ``cancel`` fires first."""
        while not self._answered.wait(POLL_S):
            if cancel.cancelled:
                return None
        return self._decision


class Approvals:
    """Which calls may run without asking, for one conversation (backed by its ``Grants``)."""

    def __init__(self, grants: Grants | None = None) -> None:
        self.grants = grants or Grants()

    def standing(self, name: str, effect: str) -> str | None:
        """How the call is approved already (``PRE_APPROVED``, ``ALWAYS``), or None: ask the user."""
        if effect == "read" and self.grants.preapprove_reads:
            return PRE_APPROVED
        if name in self.grants.always:
            return ALWAYS
        return None

    def record(self, name: str, decision: Decision) -> str:
        """Remember ``decision`` (only "always" outlives the call); the approval as saved with the step."""
        if decision == "always":
            self.grants.always.add(name)
            return ALWAYS
        return ALLOWED_ONCE if decision == "allow_once" else DENIED
