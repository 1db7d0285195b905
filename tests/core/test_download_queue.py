"""The download queue: one at a time, pause/resume/cancel, and back after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from macapp.core.models.download import partial_path, resolve_remote_file
from macapp.core.models.download_queue import DownloadQueue

REPO = "acme/queue-GGUF"


@pytest.fixture
def hub(fake_hub, tiny_models):
    fake_hub.add_repo(REPO)
    fake_hub.add_file(REPO, "a-Q8_0.gguf", tiny_models["gqa_q8_bigvocab"])
    fake_hub.add_file(REPO, "b-F16.gguf", tiny_models["gqa_f16"])
    return fake_hub


@pytest.fixture
def queue():
    events = []
    q = DownloadQueue(on_change=events.append)
    q.events = events
    yield q
    q.close()


def test_jobs_run_one_at_a_time_and_finish(hub, queue, tiny_models):
    a = queue.add(REPO, ["a-Q8_0.gguf"])
    b = queue.add(REPO, ["b-F16.gguf"])
    assert queue.wait_idle(a.id).state == "done"
    assert queue.wait_idle(b.id).state == "done"
    start = {}
    for i, e in enumerate(queue.events):
        if e.state == "running":
            start.setdefault(e.id, i)
    done_a = next(i for i, e in enumerate(queue.events) if e.id == a.id and e.state == "done")
    assert list(start) == [a.id, b.id] and start[b.id] > done_a  # in order, never both at once
    assert any(e.state == "running" and e.total for e in queue.events)
    result = queue.jobs()[0].results[0]
    assert Path(result).read_bytes() == tiny_models["gqa_q8_bigvocab"].read_bytes()


def test_pause_within_a_second_then_resume(hub, queue, tiny_models):
    hub.throttle_bytes_per_s = 200_000
    job = queue.add(REPO, ["a-Q8_0.gguf"])
    deadline = time.monotonic() + 10
    while not any(e.id == job.id and e.done > 0 for e in queue.events) and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    queue.pause(job.id)
    paused = queue.wait_idle(job.id, timeout=5)
    assert paused.state == "paused" and time.monotonic() - t0 < 1.0
    have = partial_path(resolve_remote_file(REPO, "a-Q8_0.gguf")).stat().st_size
    assert have > 0
    hub.throttle_bytes_per_s = None
    queue.resume(job.id)
    assert queue.wait_idle(job.id).state == "done"
    gets = hub.file_requests("GET")
    assert gets[-1].range == f"bytes={have}-"


def test_unfinished_jobs_come_back_paused_after_a_restart(hub, tiny_models):
    hub.throttle_bytes_per_s = 100_000
    first = DownloadQueue()
    job = first.add(REPO, ["a-Q8_0.gguf"])
    time.sleep(0.5)
    first.close()  # the app quits mid-download
    hub.throttle_bytes_per_s = None
    second = DownloadQueue()
    try:
        restored = {j.id: j for j in second.jobs()}
        assert restored[job.id].state == "paused" and restored[job.id].files == ["a-Q8_0.gguf"]
        second.resume(job.id)
        assert second.wait_idle(job.id).state == "done"
    finally:
        second.close()


def test_failures_are_reported_and_the_queue_goes_on(hub, queue):
    hub.corrupt.add((REPO, "a-Q8_0.gguf"))
    bad = queue.add(REPO, ["a-Q8_0.gguf"])
    good = queue.add(REPO, ["b-F16.gguf"])
    failed = queue.wait_idle(bad.id)
    assert failed.state == "failed" and "sha256" in failed.error
    assert queue.wait_idle(good.id).state == "done"


def test_discard_deletes_the_partial_file(hub, queue):
    hub.throttle_bytes_per_s = 100_000
    job = queue.add(REPO, ["a-Q8_0.gguf"])
    time.sleep(0.4)
    queue.discard(job.id)
    assert not partial_path(resolve_remote_file(REPO, "a-Q8_0.gguf")).exists()
    assert all(j.id != job.id for j in queue.jobs())
