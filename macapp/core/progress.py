"""Progress reporting and cooperative cancellation for long work.

Long operations are generators that yield ``Progress`` (or a subclass) and check a
``CancelToken`` between steps; ``token.raise_if_cancelled()`` raises ``Cancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
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


def run_to_end(
    stream: Generator, on_progress: Callable[[Any], object] | None = None, cancel: CancelToken | None = None
) -> Any:
    """The one way to drive long work: pass each step to ``on_progress``, check ``cancel`` between steps, and
    return the generator's value. The generator is closed on the way out, so a cancel or an error inside
    ``on_progress`` lets it roll back (its ``finally`` blocks run) before the caller goes on."""
    try:
        while True:
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                step = next(stream)
            except StopIteration as done:
                return done.value
            if on_progress is not None:
                on_progress(step)
    finally:
        stream.close()


def drain(stream: Generator) -> tuple[list[Any], Any]:
    """``(steps yielded, value returned)`` of a long-work generator run to the end (no UI watching)."""
    steps: list[Any] = []
    return steps, run_to_end(stream, steps.append)
