"""Cancelling an ingest of a 1000-page PDF lands within a second at every stage and leaves nothing of the file.

The ingest runs on a thread, as the window runs it; this thread watches its progress events and cancels once
the stage under test is under way (real PDF, real embedder, real chromadb and SQLite).
"""

from __future__ import annotations

import queue
import threading
import time

import pytest

from macapp.core.docs import ingest
from macapp.core.docs.index import DocumentIndex
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken

LATENCY_S = 1.0


@pytest.fixture(scope="module")
def embedder():
    from macapp.core.docs.embedder import load_embedder

    return load_embedder()


def under_way(step: ingest.IngestProgress, stage: str) -> bool:
    """True once ``stage`` is past its first moments (a tenth of the pages read, a first batch embedded)."""
    if step.stage != stage:
        return False
    if stage == "extract":
        return step.page >= step.pages // 10 > 0
    if stage == "embed":
        return step.page > 0
    return True


def leftovers(index: DocumentIndex, name: str) -> tuple[int, int, int]:
    """(file rows of any status, chunk rows, vectors) the collection holds."""
    row = index.collection(name)
    files = len(index.chunks.files(row.id, status=None))
    chunks = index.chunks._all(
        "SELECT count(*) FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.collection_id = ?", (row.id,)
    )[0][0]
    return files, chunks, index.vectors.count(row.vector_key)


@pytest.mark.parametrize("stage", ["hash", "extract", "chunk", "embed"])
def test_cancel_lands_within_a_second_at_every_stage(stage, thousand_page_pdf, embedder, tmp_path):
    token = CancelToken()
    steps: queue.Queue = queue.Queue()
    ended: dict = {}

    def work() -> None:
        try:
            for step in ingest.add_files("Big", [thousand_page_pdf], embedder, token, index=index):
                steps.put(step)
            ended["how"] = "finished"
        except Cancelled:
            ended["how"] = "cancelled"
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            ended["how"] = repr(e)
        finally:
            ended["at"] = time.perf_counter()
            steps.put(None)

    with DocumentIndex(tmp_path / "index") as index:
        index.ensure_collection("Big", embedder)  # a collection that exists (a chat's): the cancel leaves it empty
        worker = threading.Thread(target=work)
        worker.start()
        seen = []
        while not seen or not under_way(seen[-1], stage):
            step = steps.get(timeout=300)
            assert step is not None, f"the ingest ended ({ended.get('how')}) before {stage!r} was under way"
            seen.append(step)
        cancelled_at = time.perf_counter()
        token.cancel()
        worker.join(timeout=30)
        assert not worker.is_alive()
        latency = ended["at"] - cancelled_at
        while (step := steps.get()) is not None:
            seen.append(step)
        print(f"cancel during {stage}: returned after {latency * 1000:.0f} ms")
        assert ended["how"] == "cancelled"
        assert latency < LATENCY_S, f"cancelled during {stage}, the ingest returned {latency:.2f} s later"
        if stage != "hash":  # hashing a 1 MB file is over before a cancel can reach it
            assert seen[-1].stage == stage, f"ingest moved on to {seen[-1].stage!r} after the cancel"
        assert leftovers(index, "Big") == (0, 0, 0)
        assert ingest.list_collections(index=index)[0].files == ()
