"""Long work in a terminal: one way to show progress and one way to cancel it.

``follow`` drives a progress generator (``core.progress.run_to_end``) and shows it on stderr, so stdout stays
clean for ``--json`` and pipes: a live rich bar when stderr is a terminal, plain lines otherwise (at most one a
second, plus the lines a command marks as landmarks, e.g. the line that ends each file), so logs and CI see
it. ``ctrl_c_cancels`` turns the first Ctrl-C into a cooperative cancel of the work's ``CancelToken`` and a
second one into an interrupt; the commands report ``Cancelled`` as exit code 130 (``cli.main``).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from macapp.core.progress import CancelToken, run_to_end

LINE_EVERY_S = 1.0  # without a terminal, a progress line at most this often (landmark lines always print)


@dataclass(frozen=True)
class BarState:
    """What the live bar shows for one step."""

    done: float | None
    total: float | None
    description: str
    detail: str = ""


def note(text: str) -> None:
    """A line for the person watching (stderr: never mixed into the command's output)."""
    print(text, file=sys.stderr, flush=True)


@contextmanager
def ctrl_c_cancels(token: CancelToken, saying: str = "cancelling…") -> Iterator[None]:
    """First Ctrl-C cancels ``token`` cooperatively (the work rolls back or keeps its checkpoint); a second
    one interrupts at once. Outside the main thread (where signals cannot be caught) nothing changes."""

    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        note(saying)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def follow(
    stream: Generator,
    label: str,
    *,
    line: Callable[[Any], str | None],
    bar: Callable[[Any], BarState | None] | None = None,
    landmark: Callable[[Any], bool] = lambda step: False,
    columns: Literal["count", "transfer", "detail"] = "count",
    every: float = LINE_EVERY_S,
    cancel: CancelToken | None = None,
) -> Any:
    """Run ``stream`` to its end and return its value, showing each step on stderr.

    On a terminal, ``bar(step)`` feeds a transient rich bar (``columns``: a count and percentage, bytes with
    speed and time left, or a free ``detail`` text); without ``bar`` or without a terminal, ``line(step)``
    prints plain lines, at most one per ``every`` seconds, and always for steps ``landmark`` picks."""
    if bar is not None and sys.stderr.isatty():
        return _with_bar(stream, label, bar, columns, cancel)
    printed_at = -float("inf")

    def show(step) -> None:
        nonlocal printed_at
        if not landmark(step) and time.monotonic() - printed_at < every:
            return
        text = line(step)
        if text is not None:
            note(text)
            printed_at = time.monotonic()

    return run_to_end(stream, show, cancel)


def _with_bar(stream, label, bar, columns, cancel) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from macapp.cli.output import err_console

    shown: tuple = (BarColumn(), TaskProgressColumn())
    if columns == "transfer":
        shown = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    elif columns == "detail":
        shown = (BarColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(TextColumn("{task.description}"), *shown, console=err_console(), transient=True) as progress:
        task = progress.add_task(label, total=None, detail="")

        def show(step) -> None:
            state = bar(step)
            if state is not None:
                progress.update(
                    task,
                    completed=state.done,
                    total=state.total,
                    description=state.description or label,
                    detail=state.detail,
                )

        return run_to_end(stream, show, cancel)
