"""The document index with its vectors on a Chroma server (``chroma run`` on loopback, started here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from macapp.core.docs import ingest, retrieve
from macapp.core.docs.index import DocumentIndex
from macapp.core.errors import UserError
from macapp.core.progress import drain
from tests.fixtures import pdfs

PAGES = [
    "# Beekeeping\nHoney bees live in colonies ruled by a single queen. Beekeepers puff smoke at the hive entrance "
    "to calm the colony before lifting out frames of honeycomb.",
    "# Volcanoes\nMagma rises through cracks in the crust and erupts as lava, ash and volcanic gas. Pyroclastic "
    "flows race down their slopes at hundreds of kilometres per hour.",
    "# Sourdough\nA sourdough starter is a culture of wild yeast and lactobacilli kept in flour and water; bakers "
    "use it to leaven the dough instead of packaged yeast.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> str:
    found = Path(sys.executable).with_name("chroma")
    return str(found) if found.exists() else shutil.which("chroma")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    """``chroma run`` on a free loopback port; killed at the end."""
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    process = subprocess.Popen(
        [chroma_cli(), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "chroma run exited"
            assert time.monotonic() < deadline, "chroma run did not answer its heartbeat"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def embedder():
    from macapp.core.docs.embedder import load_embedder

    return load_embedder()


def test_vectors_live_on_the_server_and_queries_find_their_page(chroma_url, embedder, tmp_path, monkeypatch):
    import chromadb

    pdf = pdfs.make_pdf(tmp_path / "notes.pdf", PAGES)
    monkeypatch.setenv("MACAPP_CHROMA_URL", chroma_url)  # the same code path as DocumentIndex() everywhere
    with DocumentIndex(tmp_path / "index") as index:
        _, outcomes = drain(ingest.add_files("Shared notes", [pdf], embedder, index=index))
        assert [o.status for o in outcomes] == ["added"]
        passages = retrieve.query(
            "Shared notes", "What calms the stinging insects?", k=2, mode="vector", embedder=embedder, index=index
        )
        assert (passages[0].file, passages[0].page) == ("notes.pdf", 1)
        key = index.collection("Shared notes").vector_key
        assert index.vectors.shared and index.vectors.count(key) >= 3
    assert not (tmp_path / "index" / "chroma").exists()  # nothing embedded on disk
    server = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_url.rsplit(":", 1)[1]))
    assert key in [c.name for c in server.list_collections()]


def test_another_index_on_the_server_leaves_this_ones_vectors_alone(chroma_url, embedder, tmp_path):
    pdf = pdfs.make_pdf(tmp_path / "mine.pdf", PAGES[:2])
    with DocumentIndex(tmp_path / "mine", chroma_url=chroma_url) as mine:
        drain(ingest.add_files("Mine", [pdf], embedder, index=mine))
        key = mine.collection("Mine").vector_key
        with DocumentIndex(tmp_path / "theirs", chroma_url=chroma_url) as theirs:
            assert key in theirs.vectors.names()  # its start-up sweep ran and did not drop it
        ingest.remove_file("Mine", "mine.pdf", index=mine)
        assert mine.vectors.count(key) == 0
    with DocumentIndex(tmp_path / "mine", chroma_url=chroma_url) as again:
        assert key in again.vectors.names()


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    port = free_port()
    with (
        DocumentIndex(tmp_path / "index", chroma_url=f"http://127.0.0.1:{port}") as index,
        pytest.raises(UserError, match="Cannot reach the Chroma server"),
    ):
        index.vectors  # noqa: B018 - opening the vectors connects
