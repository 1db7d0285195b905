"""Who runs what: one owner thread per model, and the registry that maps request ids to owners.

A ``ModelOwner`` is the only thread that ever touches its engine (a llama.cpp context is not
thread-safe). Requests queue on it first come, first served; it loads the model on the first job
(through ``open_engine``, so the memory check applies) and unloads it when no job has come for
``idle_unload_s`` seconds (0 keeps it loaded). The embedder is shared differently: it serialises its
own calls with a lock, so embedding requests run on the event loop's worker threads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from macapp.core.engines.base import Engine
from macapp.core.errors import UserError
from macapp.core.server import DEFAULT_IDLE_UNLOAD_S
from macapp.core.server.errors import APIError, bad_request, internal_error, model_not_found
from macapp.core.server.jobs import Job

log = logging.getLogger(__name__)


class ModelOwner:
    """The thread that owns one model: runs its jobs one at a time, loads on demand, unloads when idle."""

    def __init__(
        self, model_id: str, open_engine: Callable[[], Engine], idle_unload_s: float = DEFAULT_IDLE_UNLOAD_S
    ) -> None:
        self.model_id = model_id
        self.idle_unload_s = idle_unload_s
        self._open = open_engine
        self._engine: Engine | None = None
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._waiting: set[Job] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"model owner {model_id}", daemon=True)
        self._thread.start()

    @property
    def loaded(self) -> bool:
        engine = self._engine
        return engine is not None and engine.loaded

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise APIError(503, "The server is shutting down.", type="server_error")
            self._waiting.add(job)
        self._jobs.put(job)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel queued and running jobs, unload, and end the thread."""
        with self._lock:
            self._closed = True
            for job in self._waiting:
                job.cancel.cancel()
        self._jobs.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            idle = self.idle_unload_s if self.loaded and self.idle_unload_s > 0 else None
            try:
                job = self._jobs.get(timeout=idle)
            except queue.Empty:
                log.info("unloading %s after %.0f s without requests", self.model_id, self.idle_unload_s)
                self._unload()
                continue
            if job is None:
                self._unload()
                return
            try:
                self._execute(job)
            finally:
                with self._lock:
                    self._waiting.discard(job)

    def _execute(self, job: Job) -> None:
        if job.cancel.cancelled:
            job.post("error", APIError(503, "The request was cancelled before it started.", type="server_error"))
            return
        try:
            engine = self._ensure_loaded()
            job.post("done", job.work(engine, job))
        except APIError as exc:
            job.post("error", exc)
        except UserError as exc:
            job.post("error", bad_request(str(exc)))
        except Exception:  # a bug: logged with its context, the client gets a 500
            log.exception("request on %s failed", self.model_id)
            job.post("error", internal_error())

    def _ensure_loaded(self) -> Engine:
        if self._engine is None or not self._engine.loaded:
            engine = self._open()
            log.info("loading %s", self.model_id)
            try:
                for _ in engine.load():
                    pass
            except UserError as exc:
                raise bad_request(
                    f"{self.model_id} could not be loaded: {exc}", param="model", code="model_load_failed"
                ) from exc
            self._engine = engine
        return self._engine

    def _unload(self) -> None:
        if self._engine is not None:
            self._engine.unload()
            self._engine = None


class ModelRegistry:
    """Library models by id (each with its owner, created on first use) and the bundled embedder.

    Args:
        n_ctx: the context models load with (None: the user's default, within each model's own).
        idle_unload_s: unload a model after this long without requests (0: never).
    """

    def __init__(
        self, *, n_ctx: int | None = None, idle_unload_s: float = DEFAULT_IDLE_UNLOAD_S, n_threads: int | None = None
    ) -> None:
        self.n_ctx = n_ctx
        self.n_threads = n_threads  # llama.cpp's CPU threads (None: the user's setting, else automatic)
        self.idle_unload_s = idle_unload_s
        self._owners: dict[str, ModelOwner] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- chat models ---------------------------------------------------------------------------

    def model_cards(self) -> list[dict[str, Any]]:
        """``/v1/models`` entries: every usable library model, then the embedder (scans the library)."""
        from macapp.core.models.library import list_library
        from macapp.core.settings import Settings

        ctx = self.n_ctx or Settings.load().default_ctx
        cards = []
        for entry in list_library():
            if entry.facts is None:
                continue  # a broken file: `macapp models` says why
            cards.append(_card(entry.id, Path(entry.path), context_length=min(ctx, entry.facts.context_length)))
        embedder = embedder_path()
        if embedder.is_file():
            cards.append(_card(embedder_id(), embedder, kind="embedding"))
        return cards

    def resolve(self, ref: str) -> tuple[str, Path]:
        """(short id, path) for what a request names: a short or long library id, a unique file name, or a
        library model's path.

        Paths outside the library are not accepted: a client picks from what the server lists.
        """
        from macapp.core.models.library import library_files, match_files

        matches = match_files(ref, library_files())
        if len(matches) == 1:
            return matches[0].id, matches[0].path
        if matches:
            raise bad_request(f"{ref!r} names {len(matches)} models; use an id from GET /v1/models", param="model")
        if ref == embedder_id():
            raise bad_request(f"{ref} is an embedding model: use /v1/embeddings", param="model")
        raise model_not_found(ref)

    def known_owner(self, ref: str) -> ModelOwner | None:
        """The owner of a model already asked for by this name (no library scan: fine on the event loop)."""
        with self._lock:
            ident = self._aliases.get(ref)
            return self._owners.get(ident) if ident is not None else None

    def owner(self, ref: str) -> ModelOwner:
        """The owner of the model ``ref`` names (may scan the library: call it off the event loop)."""
        known = self.known_owner(ref)
        if known is not None:
            return known
        ident, path = self.resolve(ref)
        with self._lock:
            owner = self._owners.get(ident)
            if owner is None:
                owner = self._owners[ident] = ModelOwner(ident, self._opener(ident, path), self.idle_unload_s)
            self._aliases[ref] = ident
            return owner

    def _opener(self, ident: str, path: Path) -> Callable[[], Engine]:
        def open_model() -> Engine:
            from macapp.core.engines import cpu_threads, open_engine

            engine = open_engine(str(path), n_ctx=self.n_ctx, n_threads=cpu_threads(self.n_threads))
            engine.model_id = ident
            return engine

        return open_model

    def loaded_models(self) -> list[str]:
        with self._lock:
            return [ident for ident, owner in self._owners.items() if owner.loaded]

    # -- embeddings ----------------------------------------------------------------------------

    def embedding_model_ids(self) -> set[str]:
        return {embedder_id()}

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors for ``texts`` and the tokens they took (blocking; the embedder serialises callers)."""
        from macapp.core.docs.embedder import load_embedder

        embedder = load_embedder()
        tokens = sum(min(embedder.count_tokens(t), embedder.max_tokens) for t in texts)
        return embedder.embed(texts), tokens

    def close(self) -> None:
        with self._lock:
            owners = list(self._owners.values())
            self._owners.clear()
            self._aliases.clear()
        for owner in owners:
            owner.close()


def embedder_path() -> Path:
    from macapp.core.docs.embedder import bundled_embedder_path
    from macapp.core.settings import Settings

    chosen = Settings.load().embedder_path
    return Path(chosen).expanduser() if chosen else bundled_embedder_path()


def embedder_id() -> str:
    """The embedder's id in ``/v1/models``: its file name without ``.gguf`` (``all-MiniLM-L6-v2``)."""
    return embedder_path().stem


def _card(ident: str, path: Path, *, context_length: int | None = None, kind: str = "chat") -> dict[str, Any]:
    try:
        created = int(path.stat().st_mtime)
    except OSError:
        created = 0
    card: dict[str, Any] = {
        "id": ident,
        "object": "model",
        "created": created,
        "owned_by": "orchard",
        "orchard_kind": kind,
    }
    if context_length:
        card["context_length"] = context_length
    return card
