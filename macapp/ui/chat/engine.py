"""The Chat page's one loaded model and the one thread every call to it runs on.

``EngineHost`` owns a ``QThreadPool`` with a single thread: loading, unloading, counting and
answering all run there in ``Worker``s, one after another, so the engine is never used by two
threads at once and the GUI thread never waits for it. A load is cancelled through the engine's
own token (``load_engine`` frees what it loaded); closing waits for the thread to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from macapp.core.progress import CancelToken
from macapp.ui.chat.jobs import load_engine, unload_engine
from macapp.ui.worker import Worker

if TYPE_CHECKING:
    from macapp.core.engines.base import Engine

log = logging.getLogger(__name__)


class EngineHost(QObject):
    """At most one loaded engine, used from one thread."""

    progress = Signal(object)  # load fraction (0..1) or None
    loaded = Signal(object)  # the engine
    loadFailed = Signal(object)  # the exception (show it with worker.error_text)
    loadEnded = Signal()  # after loaded, loadFailed or a cancelled load

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.engine: Engine | None = None
        self.ref: str | None = None  # what ``engine`` was loaded from (a path or ``remote:NAME/MODEL``)
        self.loading = False
        self._cancel: CancelToken | None = None
        self._closed = False

    def run(self, fn: Callable[..., Any], *args: Any) -> Worker:
        """A Worker (not started) running ``fn(*args)`` on the engine thread."""
        return Worker(fn, *args, pool=self.pool)

    def load(self, ref: str, n_ctx: int, kv_type: str, budget: int | None) -> Worker:
        """Unload the current model and load ``ref``; ``progress``, then ``loaded`` or ``loadFailed``."""
        previous, self.engine, self.ref = self.engine, None, None
        self._cancel = CancelToken()
        self.loading = True
        worker = Worker(load_engine, ref, n_ctx, kv_type, budget, self._cancel, previous, pool=self.pool)
        worker.signals.yielded.connect(lambda step: self.progress.emit(step.fraction))
        worker.signals.returned.connect(lambda engine: self._on_loaded(engine, ref))
        worker.signals.errored.connect(self.loadFailed)
        worker.signals.finished.connect(self._after_load)
        log.info("loading %s at %d tokens of context", ref if ref.startswith("remote:") else Path(ref).name, n_ctx)
        return worker.start()

    def cancel_load(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _on_loaded(self, engine: Engine, ref: str) -> None:
        if self._closed:
            engine.unload()  # closed while it loaded: the engine thread is idle now
            return
        self.engine, self.ref = engine, ref
        self.loaded.emit(engine)

    def _after_load(self) -> None:
        self.loading, self._cancel = False, None
        if not self._closed:
            self.loadEnded.emit()

    def eject(self) -> None:
        """Unload the model on the engine thread (after whatever it is doing)."""
        engine, self.engine, self.ref = self.engine, None, None
        if engine is not None:
            Worker(unload_engine, engine, pool=self.pool).start()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a load, unload the model and wait for the engine thread; True if it ended in time."""
        self._closed = True
        self.cancel_load()
        self.eject()
        done = self.pool.waitForDone(timeout_ms)
        if not done:
            log.warning("the engine thread did not stop within %d ms", timeout_ms)
        return done
