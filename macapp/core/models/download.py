"""Downloads from the Hub into the Hugging Face cache that survive anything: resumable, verified.

``huggingface_hub`` provides the URLs, file metadata, the LFS sha256 (paths-info), its HTTP
session and error types, and the cache layout (``models--org--name/blobs``, ``snapshots``,
``refs``). What it lacks and this module adds (measured on 2.4.0): a partial file that survives
across calls and processes (``blobs/<sha256>.partial``, resumed with a Range request), a sha256
check before the file enters the cache, a disk-space check before the first byte, progress finer
than 10 MiB with speed and ETA, and a cancel that takes effect within a second. It does all that
at least as fast as ``hf_hub_download`` (``bench/download.py``): the Hub's hash is fetched beside
the body, and the body (read through the library's httpx session, ``_receive``) is copied into
reusable buffers, hashed on its own thread and written out early (``_Sink``), so the checks
overlap the transfer.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macapp.core import paths
from macapp.core.digest import hash_file
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.hub import endpoint, hub_errors, is_network_error, safe_repo_path
from macapp.core.progress import CancelToken, Progress
from macapp.core.units import format_bytes

READ_TIMEOUT = 1.0  # a read blocks at most this long, so cancel is noticed within ~1 s
STALL_LIMIT = 60.0  # seconds without a byte before giving up (the partial file stays)
DISK_MARGIN = 64 << 20  # keep this much free beyond the file
RETRY_STATUSES = (408, 429)  # and every 5xx: worth another Range request
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Sink:
    """Writes the received bytes as they come and hashes them on a thread of its own.

    The bytes go into a few reusable 1 MiB buffers: the receiving thread fills one (``put``), writes
    it to the file when it is full, and passes it to the hasher thread (sha256), which puts it back
    on the free list. hashlib releases the GIL, so hashing runs beside receiving; with ``BUFFERS`` buffers the
    memory is fixed and a hasher slower than the network just makes the receiver wait. Every
    ``WRITEBACK`` bytes the kernel is asked to start writing them out (``_Flusher``), so the
    ``fsync`` before the file enters the cache has little left to do. ``sync()`` writes what is
    left, waits until everything is hashed, and fsyncs: after it the file's length is exactly
    what was received.
    """

    BUFFER = 1 << 20
    BUFFERS = 8
    WRITEBACK = 16 << 20
    write_some = staticmethod(os.write)  # (fd, bytes) -> count; tests put a failing disk here

    def __init__(self, fd: int, digest: Any, offset: int) -> None:
        self._fd, self._digest = fd, digest
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(self.BUFFERS):
            self._free.put(bytearray(self.BUFFER))
        self._to_hash: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._buffer: bytearray | None = None
        self._filled = 0
        self._written = self._flush_asked = offset
        writeback = _writeback_function()
        self._flusher = _Flusher(fd, offset, writeback) if writeback else None
        self._hasher = threading.Thread(target=self._hash, name="download-sha256", daemon=True)
        self._hasher.start()

    def put(self, chunk: bytes) -> None:
        """Copy ``chunk`` into the buffers (waiting for a free one if all are being hashed)."""
        view = memoryview(chunk)
        while view:
            if self._buffer is None:
                self._buffer, self._filled = self._free.get(), 0
            n = min(self.BUFFER - self._filled, len(view))
            self._buffer[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == self.BUFFER:
                self._write()

    def sync(self) -> None:
        self._write()
        buffers = [self._free.get() for _ in range(self.BUFFERS)]  # all back: all hashed
        for buffer in buffers:
            self._free.put(buffer)
        os.fsync(self._fd)

    def close(self) -> None:
        self._buffer = None
        self._to_hash.put(None)
        self._hasher.join()
        if self._flusher is not None:
            self._flusher.close()

    def _write(self) -> None:
        if self._buffer is None:
            return
        buffer, n, self._buffer = self._buffer, self._filled, None
        try:
            view = memoryview(buffer)[:n]
            while view:
                view = view[self.write_some(self._fd, view) :]
        except OSError as exc:  # the bytes not written are not hashed either: the next call re-reads the file
            self._free.put(buffer)
            raise UserError(
                f"cannot write the download: {exc.strerror or exc}",
                hint="check the free space and the disk; the part written so far is kept",
            ) from None
        self._to_hash.put((buffer, n))
        self._written += n
        if self._flusher is not None and self._written - self._flush_asked >= self.WRITEBACK:
            self._flush_asked = self._written
            self._flusher.request(self._written)

    def _hash(self) -> None:
        while (item := self._to_hash.get()) is not None:
            buffer, n = item
            self._digest.update(memoryview(buffer)[:n])
            self._free.put(buffer)


class _Flusher:
    """Starts the kernel's writeback of what was written (``sync_file_range``) on a thread of its own.

    The call can block while the disk's queue is full; here that delays only the next call, not the
    writes. Requests that arrive meanwhile are merged into one.
    """

    def __init__(self, fd: int, offset: int, writeback: Callable[[int, int, int, int], int]) -> None:
        self._fd, self._done, self._target, self._writeback = fd, offset, offset, writeback
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="download-writeback", daemon=True)
        self._thread.start()

    def request(self, upto: int) -> None:
        with self._wake:
            self._target = upto
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._target == self._done and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                start, upto = self._done, self._target
            self._writeback(self._fd, start, upto - start, _SYNC_FILE_RANGE_WRITE)  # errors: fsync reports them
            self._done = upto


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the dirty pages in the range, don't wait


@functools.cache
def _writeback_function() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` (through ctypes, which releases the GIL), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


class _Lookup:
    """A Hub request on its own thread: its answer is needed only later (``result``)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hub-lookup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - a thread's boundary: whatever it raised goes to result()
            self._error = exc

    def result(self, cancel: CancelToken) -> Any:
        while self._thread.is_alive():
            self._thread.join(0.2)
            cancel.raise_if_cancelled()
        if self._error is not None:
            raise self._error
        return self._value


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
    commit, meta = _file_metadata(repo_id, path, revision)
    sha, size = _lfs_sha256(repo_id, path, commit)
    return _remote_info(repo_id, path, commit, size or meta.size or 0, sha)


def _file_metadata(repo_id: str, path: str, revision: str) -> tuple[str, Any]:
    """(commit, ``HfFileMetadata``) from a HEAD request on the file's URL."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    safe_repo_path(path)
    with hub_errors(f"{repo_id}/{path}"):
        meta = get_hf_file_metadata(
            hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint()), endpoint=endpoint()
        )
    return meta.commit_hash or revision, meta


def _lfs_sha256(repo_id: str, path: str, commit: str) -> tuple[str, int | None]:
    """(LFS sha256, size) from paths-info: the hash the download is verified against; UserError if none."""
    from huggingface_hub import HfApi

    with hub_errors(f"{repo_id}/{path}"):
        infos = HfApi(endpoint=endpoint()).get_paths_info(repo_id, [path], revision=commit, expand=True)
    info = next((i for i in infos if getattr(i, "path", None) == path), None)
    lfs = getattr(info, "lfs", None)
    sha = getattr(lfs, "sha256", None) if lfs is not None else None
    if not sha:
        raise UserError(f"{repo_id}/{path}: the Hub gives no sha256 for this file, so it cannot be verified")
    return sha, getattr(info, "size", None)


def _remote_info(repo_id: str, path: str, commit: str, size: int, sha256: str) -> RemoteFileInfo:
    from huggingface_hub import hf_hub_url

    return RemoteFileInfo(
        repo_id, path, commit, int(size), sha256, hf_hub_url(repo_id, path, revision=commit, endpoint=endpoint())
    )


def repo_storage(repo_id: str, cache: Path | None = None) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return (cache or paths.hf_hub_cache()) / repo_folder_name(repo_id=repo_id, repo_type="model")


def snapshot_path(info: RemoteFileInfo, cache: Path | None = None) -> Path:
    return repo_storage(info.repo_id, cache) / "snapshots" / info.commit / safe_repo_path(info.path)


def partial_path(info: RemoteFileInfo, cache: Path | None = None) -> Path:
    return repo_storage(info.repo_id, cache) / "blobs" / f"{info.sha256}.partial"


def _free_space(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def download_file(
    repo_id: str,
    path: str,
    revision: str = "main",
    *,
    cancel: CancelToken | None = None,
    cache: Path | None = None,
    free_space: Callable[[Path], int] = _free_space,
) -> Generator[DownloadProgress, None, Path]:
    """Download ``path`` of ``repo_id`` into the HF cache; yields progress; returns via StopIteration.value.

    Resumes a partial file left by an earlier call or process; verifies sha256 before the file
    enters the cache (a mismatch deletes it and raises UserError); raises Cancelled (leaving
    the partial file to resume) when ``cancel`` is set.

    The hash to verify against comes from paths-info, as in ``resolve_remote_file``; that request
    runs while the bytes flow when the file's HEAD already names its LFS sha256 (the Hub's
    ``X-Linked-Etag``, which names the partial file), and the two must agree.
    """
    cancel = cancel or CancelToken()
    commit, meta = _file_metadata(repo_id, path, revision)
    lookup = _Lookup(lambda: _lfs_sha256(repo_id, path, commit))
    etag = (meta.etag or "").lower()
    if _SHA256.fullmatch(etag) and meta.size:
        info = _remote_info(repo_id, path, commit, meta.size, etag)
    else:  # not named by its sha256 (a git file, another server): the hash first, as resolve_remote_file
        sha, size = lookup.result(cancel)
        info = _remote_info(repo_id, path, commit, size or meta.size or 0, sha)
    storage = repo_storage(repo_id, cache)
    blob = storage / "blobs" / info.sha256
    target = snapshot_path(info, cache)
    if blob.is_file() and blob.stat().st_size == info.size and lookup.result(cancel)[0] == info.sha256:
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
        raise UserError(
            f"Disk full: {format_bytes(free)} free, {format_bytes(needed)} needed for {path}",
            hint="free some space and try again; nothing was written",
        )
    digest = hashlib.sha256()
    fd = os.open(partial, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if have:
            yield DownloadProgress("verifying", 0, have, f"checking {format_bytes(have)} already downloaded")
            hash_file(partial, digest, cancel, block=8 << 20)
        sink = _Sink(fd, digest, have)
        try:
            yield from _transfer(info, have, sink, cancel)
        finally:
            sink.close()
    finally:
        os.close(fd)
    actual = digest.hexdigest()
    expected = lookup.result(cancel)[0]
    if actual != info.sha256 or expected != info.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"{path} failed its sha256 check (expected {expected[:12]}…, got {actual[:12]}…); "
            f"the corrupt file was deleted",
            hint="download it again",
        )
    os.replace(partial, blob)
    _fsync_folder(blob.parent)  # the rename too is on disk before the snapshot points at the blob
    _link(blob, target, storage, info)
    yield DownloadProgress("done", info.size, info.size, "verified")
    return target


def _transfer(info: RemoteFileInfo, have: int, sink: _Sink, cancel: CancelToken) -> Iterator[DownloadProgress]:
    """Range GETs until ``have`` reaches the size; every byte received goes to ``sink``, which is synced
    (written, hashed, fsynced) after each response, so a resumed request starts at the file's true end."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    start_have, started = have, time.monotonic()
    last_byte, failures, last_report = time.monotonic(), 0, 0.0
    while have < info.size:
        cancel.raise_if_cancelled()
        headers = build_hf_headers() | {"Range": f"bytes={have}-", "Accept-Encoding": "identity"}
        try:
            with get_session().stream(
                "GET", info.url, headers=headers, follow_redirects=True, timeout=_timeout()
            ) as response:
                if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                    raise ConnectionError(f"HTTP {response.status_code}")  # retried below
                with hub_errors(info.path):  # 4xx, gated, missing: a one-line UserError, not retried
                    hf_raise_for_status(response)
                if have and response.status_code != 206:
                    raise UserError(f"{info.path}: the server cannot resume downloads (no Range support)")
                for n in _receive(response, sink):
                    have += n
                    last_byte, failures = time.monotonic(), 0
                    if cancel.cancelled:
                        sink.sync()
                        raise Cancelled()
                    if last_byte - last_report >= 0.1 or have >= info.size:
                        last_report = last_byte
                        yield _progress(info, have, start_have, started)
        except Exception as exc:  # a cut or stalled connection, a 5xx: resume from what we have
            if not is_network_error(exc):
                raise
            failures += 1
        sink.sync()
        if have >= info.size:
            break
        if time.monotonic() - last_byte > STALL_LIMIT:
            raise UserError(
                f"{info.path}: no data for {STALL_LIMIT:.0f} s ({format_bytes(have)} of "
                f"{format_bytes(info.size)} kept)",
                hint="run the same download again to resume",
            )
        if cancel.wait(min(0.2 * failures, 2.0)):
            raise Cancelled()
        yield DownloadProgress(
            "reconnecting", have, info.size, f"connection lost; resuming at {have:,} bytes", resumed_from=have
        )


def _receive(response: Any, sink: _Sink) -> Iterator[int]:
    """Put the body of ``response`` into ``sink``, chunk by chunk as httpx reads it; yields each
    chunk's length. Raw bytes when the body is not content-encoded (what the Hub serves), so the
    sha256 is of the bytes on the wire, as the Hub computes it."""
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    chunks = response.iter_raw() if identity else response.iter_bytes()
    try:
        for chunk in chunks:
            sink.put(chunk)
            yield len(chunk)
    finally:
        chunks.close()


def _timeout():
    import httpx2

    return httpx2.Timeout(30.0, read=READ_TIMEOUT)


def _progress(info: RemoteFileInfo, have: int, start_have: int, started: float) -> DownloadProgress:
    elapsed = max(1e-6, time.monotonic() - started)
    speed = (have - start_have) / elapsed
    eta = (info.size - have) / speed if speed > 0 else None
    return DownloadProgress("downloading", have, info.size, info.path, speed=speed, eta=eta, resumed_from=start_have)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # no directory handles (Windows): the rename is as durable as the system makes it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
