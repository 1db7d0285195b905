"""A queue of downloads run one at a time, with pause, resume and cancel, that outlives the app.

One worker thread takes queued jobs in order (several multi-GB downloads at once only fight for
the same Wi-Fi). Pausing or cancelling stops the transfer within a second and keeps the partial
file, so resuming, or pulling the same file later, continues where it stopped; ``discard``
also deletes it. Unfinished jobs are saved to ``downloads.json`` and come back paused after a
restart. Listeners get a snapshot of a job on every change (from the worker thread).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from macapp.core import paths
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.download import download_file, partial_path, resolve_remote_file
from macapp.core.progress import CancelToken

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")


@dataclass
class DownloadJob:
    """One model to download: a file, or every part of a split model."""

    id: int
    repo_id: str
    files: list[str]
    revision: str = "main"
    state: str = "queued"  # queued | running | paused | done | failed | cancelled
    done: int = 0  # bytes of the current file
    total: int | None = None
    file_index: int = 0
    speed: float = 0.0
    eta: float | None = None
    error: str | None = None
    results: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.files[0].rsplit("/", 1)[-1]


class DownloadQueue:
    def __init__(self, on_change: Callable[[DownloadJob], None] | None = None, state_file: Path | None = None):
        self._listeners = [on_change] if on_change else []
        self._state_file = state_file or paths.data_dir() / "downloads.json"
        self._lock = threading.Condition()
        self._jobs: dict[int, DownloadJob] = {}
        self._tokens: dict[int, CancelToken] = {}
        self._stop_reason: dict[int, str] = {}
        self._next_id = 1
        self._closed = False
        self._load()
        self._thread = threading.Thread(target=self._run, name="downloads", daemon=True)
        self._thread.start()

    # --- the API the GUI and CLI call (any thread) ---------------------------------------------
    def add_listener(self, listener: Callable[[DownloadJob], None]) -> None:
        self._listeners.append(listener)

    def add(self, repo_id: str, files: list[str], revision: str = "main") -> DownloadJob:
        with self._lock:
            for job in self._jobs.values():  # the same model again: reuse its job
                if job.repo_id == repo_id and job.files == files and job.state != "done":
                    job.state, job.error = "queued", None
                    self._changed(job)
                    return replace(job)
            job = DownloadJob(self._next_id, repo_id, list(files), revision)
            self._next_id += 1
            self._jobs[job.id] = job
            self._changed(job)
            return replace(job)

    def pause(self, job_id: int) -> None:
        self._stop(job_id, "paused")

    def cancel(self, job_id: int) -> None:
        """Stop and drop from the queue; the partial file stays (pulling again resumes it)."""
        self._stop(job_id, "cancelled")

    def resume(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state in ("paused", "failed", "cancelled"):
                job.state, job.error = "queued", None
                self._changed(job)

    def discard(self, job_id: int) -> None:
        """Cancel and delete the partial files."""
        self.cancel(job_id)
        self.wait_idle(job_id, timeout=5)
        with self._lock:
            job = self._jobs.pop(job_id, None)
            self._save()
        if job:
            for name in job.files:
                try:
                    partial_path(resolve_remote_file(job.repo_id, name, job.revision)).unlink(missing_ok=True)
                except UserError as exc:
                    log.info("could not remove the partial file of %s: %s", name, exc)

    def jobs(self) -> list[DownloadJob]:
        with self._lock:
            return [replace(j) for j in self._jobs.values()]

    def wait_idle(self, job_id: int, timeout: float = 10.0) -> DownloadJob | None:
        """Block until the job is no longer queued or running (tests, the CLI); None if there is no such job."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._jobs.get(job_id) is None or self._jobs[job_id].state not in ACTIVE, timeout
            )
            job = self._jobs.get(job_id)
            return replace(job) if job else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for token in self._tokens.values():
                token.cancel()
            self._lock.notify_all()
        self._thread.join(timeout=5)

    # --- the worker ------------------------------------------------------------------------------
    def _stop(self, job_id: int, state: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state == "running":
                self._stop_reason[job_id] = state
                self._tokens[job_id].cancel()  # the worker sets the state when the transfer stops
            elif job.state in ("queued", "paused", "failed"):
                job.state = state
                self._changed(job)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or any(j.state == "queued" for j in self._jobs.values()))
                if self._closed:
                    return
                job = next(j for j in self._jobs.values() if j.state == "queued")
                job.state = "running"
                token = self._tokens[job.id] = CancelToken()
                self._changed(job)
            self._download(job, token)

    def _download(self, job: DownloadJob, token: CancelToken) -> None:
        try:
            for index, name in enumerate(job.files):
                job.file_index = index
                gen = download_file(job.repo_id, name, job.revision, cancel=token)
                while True:
                    try:
                        progress = next(gen)
                    except StopIteration as stop:
                        job.results.append(str(stop.value))
                        break
                    with self._lock:
                        job.done = int(progress.done)
                        job.total = None if progress.total is None else int(progress.total)
                        job.speed = getattr(progress, "speed", 0.0)
                        job.eta = getattr(progress, "eta", None)
                        self._changed(job, save=False)
            final, error = "done", None
        except Cancelled:
            final, error = self._stop_reason.pop(job.id, "paused"), None
        except UserError as exc:
            final, error = "failed", str(exc)
        except Exception as exc:  # a bug: keep the queue alive and say so
            log.exception("download of %s failed", job.name)
            final, error = "failed", f"unexpected error: {exc}"
        with self._lock:
            job.state, job.error = final, error
            self._tokens.pop(job.id, None)
            self._changed(job)
            self._lock.notify_all()

    def _changed(self, job: DownloadJob, save: bool = True) -> None:
        """Called with the lock held: persist and tell the listeners."""
        if save:
            self._save()
        snapshot = replace(job)
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # one listener's bug stops neither the queue nor the other listeners
                log.exception("download listener failed")
        self._lock.notify_all()

    def _save(self) -> None:
        keep = [asdict(j) for j in self._jobs.values() if j.state not in ("done", "cancelled")]
        tmp = self._state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(keep), encoding="utf-8")
            os.replace(tmp, self._state_file)
        except OSError as exc:
            log.warning("could not save the download queue: %s", exc)

    def _load(self) -> None:
        try:
            saved = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for raw in saved if isinstance(saved, list) else []:
            try:
                job = DownloadJob(**raw)
            except TypeError:
                continue
            if job.state in ACTIVE:  # the app stopped mid-download: wait for the user to resume
                job.state = "paused"
            self._jobs[job.id] = job
            self._next_id = max(self._next_id, job.id + 1)
