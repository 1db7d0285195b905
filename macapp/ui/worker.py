"""The one way the UI runs core work off the GUI thread (modelled on superqt's workers).

A ``Worker`` is a ``QRunnable`` on the global thread pool. It wraps a plain function or a
generator that yields progress dataclasses, and reports through Qt signals that are delivered
on the GUI thread::

    worker = Worker(scan_library, settings)
    worker.signals.returned.connect(show_entries)
    worker.signals.errored.connect(show_error)
    worker.start()

Signals, in order: ``started``; ``yielded(value)`` for each value a generator yields; then
exactly one of ``returned(value)``, ``errored(exception)`` or ``aborted``; then ``finished``.
``UserError`` is reported as is (show ``exc.message``); ``Cancelled`` ends the work silently
with ``aborted``; any other exception is a bug: it is logged with its traceback and reported.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, run_to_end

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """Signals of a Worker (a QRunnable cannot have signals itself)."""

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception; UserError carries .message and .hint
    aborted = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Run ``fn(*args, **kwargs)`` on a pool thread; a generator's yields become ``yielded``.

    Args:
        fn: a function, or a generator function whose values are progress dataclasses.
        token: the CancelToken ``cancel()`` sets; a new one when omitted.
        pass_token: call ``fn(..., token=token)`` so long work can check it between steps.
        pool: the thread pool (default: the global one). Serialize scarce work (one loaded
            model) by giving those workers a pool with one thread.
    """

    _running: ClassVar[set[Worker]] = set()  # keeps running workers from being collected

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        token: CancelToken | None = None,
        pass_token: bool = False,
        pool: QThreadPool | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        self.setAutoDelete(False)  # Python owns the object; _running holds it while it runs
        self.signals = WorkerSignals()
        self.token = token or CancelToken()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        if pass_token:
            self._kwargs["token"] = self.token
        self._pool = pool

    @property
    def abort_requested(self) -> bool:
        return self.token.cancelled

    def cancel(self) -> None:
        """Ask the work to stop; generators stop at their next yield, functions when they check."""
        self.token.cancel()

    def start(self) -> Worker:
        """Queue the worker on its pool; returns self so calls chain."""
        if self in Worker._running:
            raise RuntimeError("this worker is already running")
        Worker._running.add(self)
        self.signals.finished.connect(self._forget)
        (self._pool or QThreadPool.globalInstance()).start(self)
        return self

    def _forget(self) -> None:
        Worker._running.discard(self)

    def run(self) -> None:  # on the pool thread
        signals = self.signals
        signals.started.emit()
        try:
            self.token.raise_if_cancelled()
            result = self._fn(*self._args, **self._kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
        except Cancelled:
            signals.aborted.emit()
        except UserError as exc:
            signals.errored.emit(exc)
        except Exception as exc:  # a worker's boundary: any bug is logged and shown on the page that asked
            log.exception("worker %s failed", getattr(self._fn, "__qualname__", self._fn))
            signals.errored.emit(exc)
        else:
            signals.returned.emit(result)
        finally:
            signals.finished.emit()

    def _drain(self, gen: Any) -> Any:
        """Forward a generator's values; checks for cancellation between them; returns its return value."""
        return run_to_end(gen, self.signals.yielded.emit, self.token)


class Latest:
    """Latest request wins: each ``ticket()`` makes every earlier ticket stale, so the answer to an older
    question (a page render, a listing, a count) that arrives after a newer one was asked is dropped.

    ``worker.signals.returned.connect(latest.only_if_current(ticket, self._show))`` runs ``_show`` only while
    ``ticket`` is still the newest; ``drop()`` makes every outstanding ticket stale (closing, clearing)."""

    def __init__(self) -> None:
        self._current = 0

    def ticket(self) -> int:
        self._current += 1
        return self._current

    def drop(self) -> None:
        self._current += 1

    def is_current(self, ticket: int) -> bool:
        return ticket == self._current

    def only_if_current(self, ticket: int, fn: Callable[..., object]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if ticket == self._current:
                fn(*args)

        return call


_named_pools: dict[str, QThreadPool] = {}


def named_pool(name: str, threads: int = 1) -> QThreadPool:
    """The process's pool for one kind of work (e.g. "indexing"), created with ``threads`` threads on first use.

    Work that must not overlap gets a one-thread pool of its own, so it neither waits behind nor
    holds up the global pool (library scans, downloads); ``shutdown_workers`` waits for these too.
    """
    pool = _named_pools.get(name)
    if pool is None:
        pool = _named_pools[name] = QThreadPool()
        pool.setMaxThreadCount(threads)
        pool.setObjectName(f"{name}-pool")
    return pool


def all_pools() -> list[QThreadPool]:
    """The global pool and every named pool (tests wait for them all)."""
    return [QThreadPool.globalInstance(), *_named_pools.values()]


def running_workers() -> set[Worker]:
    """Workers started and not yet finished (the window cancels them on close)."""
    return set(Worker._running)


def shutdown_workers(timeout_ms: int = 3000) -> bool:
    """Cancel every worker, drop the ones not started yet, wait for the rest; True if all ended."""
    for worker in running_workers():
        worker.cancel()
    pools = all_pools()
    for pool in pools:
        pool.clear()
    done = all([pool.waitForDone(timeout_ms) for pool in pools])
    Worker._running.clear()
    return done


def error_text(exc: BaseException) -> str:
    """What the UI shows for an ``errored`` exception: a UserError's message, else a short bug note."""
    if isinstance(exc, UserError):
        return exc.message if not exc.hint else f"{exc.message} — {exc.hint}"
    return f"Something went wrong: {type(exc).__name__}: {exc} (details in the log)"
