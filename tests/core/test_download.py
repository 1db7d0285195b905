"""Downloads against the fake Hub with faults: cut, killed and restarted, corrupt, cancelled, disk full."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from macapp.core.errors import Cancelled, UserError
from macapp.core.models.download import download_file, partial_path, resolve_remote_file
from macapp.core.models.library import list_library
from macapp.core.progress import CancelToken

REPO = "acme/dl-GGUF"
NAME = "Tiny-Q8_0.gguf"


def run(gen):
    seen = []
    while True:
        try:
            seen.append(next(gen))
        except StopIteration as stop:
            return stop.value, seen


@pytest.fixture
def model_bytes(tiny_models) -> bytes:
    return tiny_models["gqa_q8_bigvocab"].read_bytes()  # a real GGUF (~1.2 MB), so the library can read it


@pytest.fixture
def hub(fake_hub, model_bytes):
    fake_hub.add_repo(REPO)
    fake_hub.add_file(REPO, NAME, model_bytes)
    return fake_hub


def test_download_lands_in_the_hf_cache_and_the_library(hub, model_bytes):
    path, progress = run(download_file(REPO, NAME))
    assert path.read_bytes() == model_bytes and path.is_symlink()
    assert progress[-1].stage == "done" and progress[-1].done == len(model_bytes)
    assert any(p.stage == "downloading" and p.speed > 0 for p in progress)
    entries = {e.long_id: e for e in list_library()}
    assert entries[f"{REPO}/{NAME}"].facts.quantization == "Q8_0"
    gets = len(hub.file_requests("GET"))
    again, _ = run(download_file(REPO, NAME))  # already there: no second transfer
    assert again == path and len(hub.file_requests("GET")) == gets


def test_a_cut_connection_resumes_with_a_range_request(hub, model_bytes):
    hub.cut_after_bytes, hub.cut_times = 400_000, 1
    path, progress = run(download_file(REPO, NAME))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(model_bytes).hexdigest()
    ranges = [r.range for r in hub.file_requests("GET")]
    # resumes from the last byte written to disk (whole 64 KiB chunks of the 400,000 sent), not from 0
    assert ranges[0] == "bytes=0-" and ranges[1].startswith("bytes=")
    assert 300_000 < int(ranges[1][6:-1]) <= 400_000
    assert any(p.stage == "reconnecting" for p in progress)


def test_cancel_is_prompt_and_a_new_process_resumes(hub, model_bytes, isolated_home):
    hub.throttle_bytes_per_s = 300_000
    token = CancelToken()
    gen = download_file(REPO, NAME, cancel=token)
    threading.Timer(1.0, token.cancel).start()
    with pytest.raises(Cancelled):
        while True:
            p = next(gen)
            t_last = time.monotonic()
    assert time.monotonic() - t_last < 1.0 + 0.3  # the last progress came less than a second before Cancelled
    info = resolve_remote_file(REPO, NAME)
    have = partial_path(info).stat().st_size
    assert 0 < have < len(model_bytes) and p.done <= have
    hub.throttle_bytes_per_s = None
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    out = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "pull", REPO, "Q8_0", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout)["files"][0]
    assert Path(final).read_bytes() == model_bytes
    assert hub.file_requests("GET")[-1].range == f"bytes={have}-"  # it resumed, it did not start again
    assert not partial_path(info).exists()


def test_corrupt_download_is_rejected_deleted_and_not_in_the_library(hub):
    hub.corrupt.add((REPO, NAME))
    with pytest.raises(UserError, match="sha256"):
        run(download_file(REPO, NAME))
    info = resolve_remote_file(REPO, NAME)
    assert not partial_path(info).exists()
    assert not (partial_path(info).parent / info.sha256).exists()
    assert all(e.long_id != f"{REPO}/{NAME}" for e in list_library())


def test_disk_full_is_refused_before_any_byte(hub, model_bytes, isolated_home):
    with pytest.raises(UserError, match=r"Disk full: .* free, .* needed"):
        run(download_file(REPO, NAME, free_space=lambda folder: 10_000))
    assert hub.file_requests("GET") == []
    assert not any(p.is_file() for p in (isolated_home / "hf-cache").rglob("*"))


def test_traversal_names_are_refused_before_any_request(hub):
    for bad in ("../evil.gguf", "/etc/passwd.gguf", "a/../../b.gguf"):
        with pytest.raises(UserError, match="refusing"):
            run(download_file(REPO, bad))
    assert hub.requests == []


def test_pull_by_quant_and_missing_quant(hub):
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    out = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "pull", REPO, "Q4_K_M"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1 and "has no Q4_K_M" in out.stderr and "Q8_0" in out.stderr


def test_a_killed_download_resumes_in_the_next_process(hub, model_bytes):
    import signal

    hub.throttle_bytes_per_s = 150_000
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    cmd = [sys.executable, "-m", "macapp.cli.main", "pull", REPO, NAME, "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    info = resolve_remote_file(REPO, NAME)
    partial = partial_path(info)
    deadline = time.monotonic() + 20
    while not (partial.exists() and partial.stat().st_size > 100_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    have = partial.stat().st_size
    assert 100_000 < have < len(model_bytes)
    hub.throttle_bytes_per_s = None
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(json.loads(out.stdout)["files"][0]).read_bytes() == model_bytes
    assert hub.file_requests("GET")[-1].range == f"bytes={have}-"


def test_server_errors_are_retried_and_client_errors_are_not(hub, model_bytes, tiny_models):
    hub.fail_status, hub.fail_times, hub.fail_methods = 503, 2, {"GET"}
    path, _ = run(download_file(REPO, NAME))
    assert path.read_bytes() == model_bytes
    statuses = [r.status for r in hub.file_requests("GET")]
    assert statuses[:2] == [503, 503] and statuses[-1] in (200, 206)
    hub.reset_faults()
    hub.add_file(REPO, "Other-F16.gguf", tiny_models["gqa_f16"])
    hub.fail_status, hub.fail_times, hub.fail_methods = 403, 1, {"GET"}
    with pytest.raises(UserError, match="HTTP 403"):
        run(download_file(REPO, "Other-F16.gguf"))
    assert len([r for r in hub.file_requests("GET") if r.path.endswith("Other-F16.gguf")]) == 1  # not retried


def test_a_disk_error_is_a_user_error_and_keeps_what_was_written(hub, model_bytes, monkeypatch):
    import errno

    from macapp.core.models import download

    real, written = os.write, []

    def full_disk(fd, data):
        if sum(written) >= 500_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(real(fd, data))
        return written[-1]

    monkeypatch.setattr(download._Sink, "write_some", staticmethod(full_disk))
    with pytest.raises(UserError, match="cannot write the download: No space left"):
        run(download_file(REPO, NAME))
    info = resolve_remote_file(REPO, NAME)
    assert partial_path(info).stat().st_size == sum(written) > 0
    monkeypatch.setattr(download._Sink, "write_some", staticmethod(real))
    path, _ = run(download_file(REPO, NAME))
    assert path.read_bytes() == model_bytes
    assert hub.file_requests("GET")[-1].range == f"bytes={sum(written)}-"


def test_the_paths_info_hash_must_agree_with_the_etag(hub, monkeypatch):
    from macapp.core.models import download

    real = download._lfs_sha256
    monkeypatch.setattr(download, "_lfs_sha256", lambda *a: ("0" * 64, real(*a)[1]))
    with pytest.raises(UserError, match="sha256"):
        run(download_file(REPO, NAME))
    assert not [p for p in (Path(os.environ["HF_HUB_CACHE"])).rglob("*") if p.is_file() and "blobs" in p.parts]


def test_a_file_without_an_lfs_hash_is_refused_before_any_byte(hub, model_bytes):
    hub.add_file(REPO, "plain-Q8_0.gguf", model_bytes, lfs=False)
    with pytest.raises(UserError, match="cannot be verified"):
        run(download_file(REPO, "plain-Q8_0.gguf"))
    assert hub.file_requests("GET") == []
