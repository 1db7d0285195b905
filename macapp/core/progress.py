"""Progress reporting and cooperative cancellation for long work.

Long operations are generators that yield ``Progress`` (or a subclass) and check a
``CancelToken`` between steps; ``token.raise_if_cancelled()`` raises ``Cancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from macapp.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One step of long work: ``done`` of ``total`` units (``total`` None when unknown)."""

    stage: str
    done: float = 0
    total: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


class CancelToken:
    """Thread-safe cancel flag shared between the UI/CLI and a worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if cancelled meanwhile."""
        return self._event.wait(timeout)


def drain(stream: Generator) -> tuple[list[Any], Any]:
    """``(items yielded, value returned)`` of a long-work generator run to the end (no UI watching)."""
    items = []
    while True:
        try:
            items.append(next(stream))
        except StopIteration as done:
            return items, done.value
