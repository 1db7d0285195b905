"""Downloads from the Hub into the Hugging Face cache that survive anything: resumable, verified.

``huggingface_hub`` provides the URLs, file metadata, the LFS sha256 (paths-info), its HTTP
session and error types, and the cache layout (``models--org--name/blobs``, ``snapshots``,
``refs``). What it lacks and this module adds (measured on 2.4.0): a partial file that survives
across calls and processes (``blobs/<sha256>.partial``, resumed with a Range request), a sha256
check before the file enters the cache, a disk-space check before the first byte, progress finer
than 10 MiB with speed and ETA, and a cancel that takes effect within a second.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from macapp.core import paths
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.hub import endpoint, hub_errors, is_network_error, safe_repo_path
from macapp.core.progress import CancelToken, Progress
from macapp.core.units import format_bytes

CHUNK = 64 << 10  # httpx yields whole chunks: small enough that cancel lands within ~1 s on slow links
READ_TIMEOUT = 1.0  # a read blocks at most this long, so cancel is noticed within ~1 s
STALL_LIMIT = 60.0  # seconds without a byte before giving up (the partial file stays)
DISK_MARGIN = 64 << 20  # keep this much free beyond the file
RETRY_STATUSES = (408, 429)  # and every 5xx: worth another Range request


class _Hasher:
    """sha256 on its own thread (hashlib releases the GIL): hashing overlaps receiving.

    Chunks are batched to ~1 MiB before the hand-off; ``hexdigest()`` waits for the rest.
    """

    BATCH = 1 << 20

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            self._digest.update(block)

    def update(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= self.BATCH:
            self._queue.put(b"".join(self._pending))
            self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        if self._thread.is_alive():
            if self._pending:
                self._queue.put(b"".join(self._pending))
                self._pending, self._pending_bytes = [], 0
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.close()
        return self._digest.hexdigest()


@dataclass(frozen=True)
class DownloadProgress(Progress):
    """``done``/``total`` are bytes; speed in bytes per second; eta in seconds (None while unknown)."""

    speed: float = 0.0
    eta: float | None = None
    resumed_from: int = 0


@dataclass(frozen=True)
class RemoteFileInfo:
    repo_id: str
    path: str
    commit: str
    size: int
    sha256: str
    url: str


def resolve_remote_file(repo_id: str, path: str, revision: str = "main") -> RemoteFileInfo:
    """Commit, size and LFS sha256 of a file on the Hub (paths-info: the Hub's own hash)."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    safe_repo_path(path)
    api = HfApi(endpoint=endpoint())
    with hub_errors(f"{repo_id}/{path}"):
        url = hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint())
        meta = get_hf_file_metadata(url, endpoint=endpoint())
        infos = api.get_paths_info(repo_id, [path], revision=meta.commit_hash or revision, expand=True)
    info = next((i for i in infos if getattr(i, "path", None) == path), None)
    lfs = getattr(info, "lfs", None)
    sha = getattr(lfs, "sha256", None) if lfs is not None else None
    if not sha:
        raise UserError(f"{repo_id}/{path}: the Hub gives no sha256 for this file, so it cannot be verified")
    commit = meta.commit_hash or revision
    return RemoteFileInfo(repo_id, path, commit, int(getattr(info, "size", None) or meta.size or 0), sha,
                          hf_hub_url(repo_id, path, revision=commit, endpoint=endpoint()))


def repo_storage(repo_id: str, cache: Path | None = None) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return (cache or paths.hf_hub_cache()) / repo_folder_name(repo_id=repo_id, repo_type="model")


def snapshot_path(info: RemoteFileInfo, cache: Path | None = None) -> Path:
    return repo_storage(info.repo_id, cache) / "snapshots" / info.commit / safe_repo_path(info.path)


def partial_path(info: RemoteFileInfo, cache: Path | None = None) -> Path:
    return repo_storage(info.repo_id, cache) / "blobs" / f"{info.sha256}.partial"


def _free_space(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def download_file(repo_id: str, path: str, revision: str = "main", *, cancel: CancelToken | None = None,
                  cache: Path | None = None, free_space: Callable[[Path], int] = _free_space,
                  ) -> Iterator[DownloadProgress]:
    """Download ``path`` of ``repo_id`` into the HF cache; yields progress; returns via StopIteration.value.

    Resumes a partial file left by an earlier call or process; verifies sha256 before the file
    enters the cache (a mismatch deletes it and raises UserError); raises Cancelled (leaving
    the partial file to resume) when ``cancel`` is set.
    """
    cancel = cancel or CancelToken()
    info = resolve_remote_file(repo_id, path, revision)
    storage = repo_storage(repo_id, cache)
    blob = storage / "blobs" / info.sha256
    target = snapshot_path(info, cache)
    if blob.is_file() and blob.stat().st_size == info.size:
        _link(blob, target, storage, info)
        yield DownloadProgress("done", info.size, info.size, "already downloaded")
        return target
    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(info, cache)
    have = partial.stat().st_size if partial.exists() else 0
    if have > info.size:
        partial.unlink()
        have = 0
    needed = info.size - have + DISK_MARGIN
    free = free_space(blob.parent)
    if free < needed:
        raise UserError(f"Disk full: {format_bytes(free)} free, {format_bytes(needed)} needed for {path}",
                        hint="free some space and try again; nothing was written")
    hasher = _Hasher()
    try:
        if have:
            yield DownloadProgress("verifying", 0, have, f"checking {format_bytes(have)} already downloaded")
            with open(partial, "rb") as fh:
                for block in iter(lambda: fh.read(8 << 20), b""):
                    cancel.raise_if_cancelled()
                    hasher.update(block)
        yield from _transfer(info, partial, have, hasher, cancel)
        actual = hasher.hexdigest()
    finally:
        hasher.close()
    if actual != info.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(f"{path} failed its sha256 check (expected {info.sha256[:12]}…, got {actual[:12]}…); "
                        f"the corrupt file was deleted", hint="download it again")
    os.replace(partial, blob)
    _link(blob, target, storage, info)
    yield DownloadProgress("done", info.size, info.size, "verified")
    return target


def _transfer(info: RemoteFileInfo, partial: Path, have: int, digest: _Hasher, cancel: CancelToken,
              ) -> Iterator[DownloadProgress]:
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    start_have, started = have, time.monotonic()
    last_byte, failures, last_report = time.monotonic(), 0, 0.0
    with open(partial, "ab") as out:
        while have < info.size:
            cancel.raise_if_cancelled()
            headers = build_hf_headers() | {"Range": f"bytes={have}-", "Accept-Encoding": "identity"}
            try:
                with get_session().stream("GET", info.url, headers=headers, follow_redirects=True,
                                          timeout=_timeout()) as response:
                    if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                        raise ConnectionError(f"HTTP {response.status_code}")  # retried below
                    with hub_errors(info.path):  # 4xx, gated, missing: a one-line UserError, not retried
                        hf_raise_for_status(response)
                    if have and response.status_code != 206:
                        raise UserError(f"{info.path}: the server cannot resume downloads (no Range support)")
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        have += len(chunk)
                        last_byte, failures = time.monotonic(), 0
                        if cancel.cancelled:
                            out.flush()
                            raise Cancelled()
                        if last_byte - last_report >= 0.1 or have >= info.size:
                            last_report = last_byte
                            yield _progress(info, have, start_have, started)
            except Exception as exc:  # a cut or stalled connection, a 5xx: resume from what we have
                if not is_network_error(exc):
                    raise
                failures += 1
            out.flush()
            os.fsync(out.fileno())
            if have >= info.size:
                break
            if time.monotonic() - last_byte > STALL_LIMIT:
                raise UserError(f"{info.path}: no data for {STALL_LIMIT:.0f} s ({format_bytes(have)} of "
                                f"{format_bytes(info.size)} kept)", hint="run the same download again to resume")
            if cancel.wait(min(0.2 * failures, 2.0)):
                raise Cancelled()
            yield DownloadProgress("reconnecting", have, info.size, f"connection lost; resuming at {have:,} bytes",
                                   resumed_from=have)


def _timeout():
    import httpx2

    return httpx2.Timeout(30.0, read=READ_TIMEOUT)


def _progress(info: RemoteFileInfo, have: int, start_have: int, started: float) -> DownloadProgress:
    elapsed = max(1e-6, time.monotonic() - started)
    speed = (have - start_have) / elapsed
    eta = (info.size - have) / speed if speed > 0 else None
    return DownloadProgress("downloading", have, info.size, info.path, speed=speed, eta=eta,
                            resumed_from=start_have)


def _link(blob: Path, target: Path, storage: Path, info: RemoteFileInfo) -> None:
    """Point the snapshot path at the blob (relative symlink, as huggingface_hub does) and record the ref."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        target.symlink_to(os.path.relpath(blob, target.parent))
    except OSError:  # filesystems without symlinks: keep a copy
        shutil.copy2(blob, target)
    refs = storage / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(info.commit)
