"""The fake Hub (tests/fixtures/fake_hub.py) against the real huggingface_hub client.

These also pin down how huggingface_hub 2.4 behaves on faults, which the app builds on:

- a connection cut mid-body: ``http_get`` sleeps 1 s and retries inside the same call, with
  ``Range: bytes=<written>-``. It writes in 10 MiB chunks (``DOWNLOAD_CHUNK_SIZE``), so a cut before
  the first 10 MiB restarts from byte 0; after 6 attempts without a full chunk it raises
  ``httpx2.RemoteProtocolError`` (not an ``HfHubHTTPError``, not an ``OSError``).
- a 5xx on the HEAD: retried at once, then with back-off (1, 2, 4, 8, 8 s; 7 HEADs in all) and
  finally ``LocalEntryNotFoundError`` (cause: ``HfHubHTTPError``). A 5xx on the GET of the body is
  not retried: ``HfHubHTTPError`` at once (only 408/429 are retried there).
- the client checks the size of a download, never its sha256: corrupted bytes land in the cache.
- names with ``..`` or an absolute path are refused by ``hf_hub_download`` (ValueError) before any request.

The client's sleeps are patched out where a test would otherwise wait (``sleeps`` fixture).
"""

from __future__ import annotations

import hashlib
import os
import time
import types

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session, hf_raise_for_status

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q8_0.gguf"


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record, and skip, the client's retry sleeps (only ``time.sleep`` is used in both modules)."""
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    slept: list[float] = []
    fake_time = types.SimpleNamespace(sleep=slept.append)
    monkeypatch.setattr(file_download, "time", fake_time)
    monkeypatch.setattr(_http, "time", fake_time)
    return slept


@pytest.fixture
def blob() -> bytes:
    return os.urandom(3_000_000)


@pytest.fixture
def hub(fake_hub, blob):
    fake_hub.add_repo(REPO, tags=("gguf", "llama"), downloads=100, likes=3)
    fake_hub.add_file(REPO, FILE, blob)
    fake_hub.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    fake_hub.add_repo("other/tiny-safetensors", tags=("safetensors",), downloads=1000)
    fake_hub.add_file("other/tiny-safetensors", "model.safetensors", b"\0" * 10)
    fake_hub.add_repo("acme/big-GGUF", downloads=7)
    fake_hub.add_file("acme/big-GGUF", "big-Q4_K_M.gguf", b"GGUF" + b"\0" * 60)
    return fake_hub


def download(hub, tmp_path, filename=FILE, repo=REPO, **kw) -> bytes:
    path = hf_hub_download(repo, filename, endpoint=hub.url, cache_dir=tmp_path / "cache", token=False, **kw)
    with open(path, "rb") as f:
        return f.read()


def test_fixture_points_hf_endpoint_at_the_fake(hub):
    assert os.environ["HF_ENDPOINT"] == hub.url
    assert hub.url.startswith("http://127.0.0.1:")


def test_list_models_search_filter_sort(hub):
    api = HfApi(endpoint=hub.url, token=False)
    found = list(api.list_models(search="tiny", filter="gguf"))
    assert [m.id for m in found] == [REPO]
    m = found[0]
    assert (m.downloads, m.likes, m.private, m.gated, m.sha) == (100, 3, False, False, hub.commit(REPO))
    assert "gguf" in m.tags and m.last_modified is not None and m.siblings is None

    by_downloads = [m.id for m in api.list_models(filter="gguf", sort="downloads")]
    assert by_downloads == [REPO, "acme/big-GGUF"]
    assert [m.id for m in api.list_models(author="other")] == ["other/tiny-safetensors"]
    assert [m.id for m in api.list_models(filter="gguf", sort="downloads", limit=1)] == [REPO]
    full = list(api.list_models(search="big", full=True))
    assert [s.rfilename for s in full[0].siblings] == ["big-Q4_K_M.gguf"]
    listing = hub.requests[0]
    assert (listing.method, listing.path) == ("GET", "/api/models")
    assert listing.query == {"search": ["tiny"], "filter": ["gguf"]}


def test_list_models_follows_link_pagination(hub):
    hub.page_size = 1
    ids = [m.id for m in HfApi(endpoint=hub.url, token=False).list_models(sort="downloads")]
    assert ids == ["other/tiny-safetensors", REPO, "acme/big-GGUF"]
    pages = [r for r in hub.requests if r.path == "/api/models"]
    assert [r.query.get("cursor") for r in pages] == [None, ["1"], ["2"]]


def test_model_info_files_metadata(hub, blob):
    info = HfApi(endpoint=hub.url, token=False).model_info(REPO, files_metadata=True)
    assert info.id == REPO and info.sha == hub.commit(REPO) and len(info.sha) == 40
    sib = {s.rfilename: s for s in info.siblings}
    assert set(sib) == {FILE, "README.md"}
    assert sib[FILE].size == len(blob)
    assert sib[FILE].lfs.sha256 == hashlib.sha256(blob).hexdigest() and sib[FILE].lfs.size == len(blob)
    assert sib["README.md"].lfs is None and sib["README.md"].size == 7
    # by revision (the app's path): same answer, the sha is stable while the files don't change
    again = HfApi(endpoint=hub.url, token=False).model_info(REPO, revision="main", files_metadata=True)
    assert again.sha == info.sha
    assert hub.requests[-1].path == f"/api/models/{REPO}/revision/main"
    assert hub.requests[-1].query == {"blobs": ["true"]}
    hub.add_file(REPO, "new.gguf", b"x")
    assert hub.commit(REPO) != info.sha


def test_tree_and_paths_info(hub, blob):
    hub.add_file(REPO, "sub/dir/part.gguf", b"part")
    api = HfApi(endpoint=hub.url, token=False)
    top = {e.path: e for e in api.list_repo_tree(REPO)}
    assert set(top) == {FILE, "README.md", "sub"}
    assert top[FILE].size == len(blob) and top[FILE].lfs.sha256 == hashlib.sha256(blob).hexdigest()
    assert type(top["sub"]).__name__ == "RepoFolder"
    deep = [e.path for e in api.list_repo_tree(REPO, "sub", recursive=True)]
    assert deep == ["sub/dir", "sub/dir/part.gguf"]
    assert hub.requests[-1].query == {"recursive": ["true"], "expand": ["false"]}
    info = api.get_paths_info(REPO, ["README.md", "sub", "missing.gguf"])
    assert [e.path for e in info] == ["README.md", "sub"]
    assert hub.requests[-1].method == "POST" and hub.requests[-1].path == f"/api/models/{REPO}/paths-info/main"


def test_download_then_cache(hub, tmp_path, blob):
    assert download(hub, tmp_path) == blob
    assert [(r.method, r.status, r.range) for r in hub.file_requests()] == [("HEAD", 200, None), ("GET", 200, None)]
    assert hub.file_requests("GET")[0].bytes_sent == len(blob)
    # the HEAD carries what the client needs to use plain HTTP and its cache
    head = hub.file_requests("HEAD")[0]
    assert head.headers.get("accept-encoding") == "identity"

    assert download(hub, tmp_path) == blob  # second call: one HEAD, no GET of the body
    assert [r.method for r in hub.file_requests()] == ["HEAD", "GET", "HEAD"]
    blobs = list((tmp_path / "cache" / "models--acme--tiny-GGUF" / "blobs").iterdir())
    assert [b.name for b in blobs] == [hashlib.sha256(blob).hexdigest()]  # the blob is named by the LFS etag

    # every call so far went over one kept-alive connection
    assert len({r.client_port for r in hub.requests}) == 1


def test_file_metadata_headers(hub, blob):
    url = hf_hub_url(REPO, FILE, endpoint=hub.url)
    meta = get_hf_file_metadata(url, token=False)
    assert meta.etag == hashlib.sha256(blob).hexdigest()
    assert meta.commit_hash == hub.commit(REPO) and meta.size == len(blob)
    assert meta.location == url and meta.xet_file_data is None
    r = get_session().head(url)
    assert r.headers["x-linked-etag"] == r.headers["etag"] == f'"{hashlib.sha256(blob).hexdigest()}"'
    assert r.headers["x-linked-size"] == r.headers["content-length"] == str(len(blob))
    assert r.headers["accept-ranges"] == "bytes"
    assert not [h for h in r.headers if h.lower().startswith("x-xet")] and "link" not in r.headers
    # a plain git file: etag is the git blob id, no X-Linked-*
    readme = get_session().head(hf_hub_url(REPO, "README.md", endpoint=hub.url))
    assert readme.headers["etag"] == f'"{hashlib.sha1(b"blob 7" + bytes(1) + b"# tiny" + bytes([10])).hexdigest()}"'
    assert "x-linked-etag" not in readme.headers and readme.headers["content-length"] == "7"


def test_range_requests(hub, blob):
    url = hf_hub_url(REPO, FILE, endpoint=hub.url)
    size = len(blob)
    r = get_session().get(url, headers={"Range": "bytes=100-1123"})
    assert r.status_code == 206 and r.content == blob[100:1124]
    assert r.headers["content-range"] == f"bytes 100-1123/{size}" and r.headers["content-length"] == "1024"
    r = get_session().get(url, headers={"Range": f"bytes={size - 10}-"})
    assert r.status_code == 206 and r.content == blob[-10:]
    r = get_session().get(url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == blob[-5:]
    r = get_session().get(url, headers={"Range": f"bytes={size - 2}-{size + 100}"})
    assert r.status_code == 206 and r.content == blob[-2:]
    r = get_session().get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    with pytest.raises(HfHubHTTPError):
        hf_raise_for_status(r)
    # the log shows a header read never fetched the whole file
    gets = hub.file_requests("GET")
    assert all(g.range for g in gets) and [g.status for g in gets] == [206, 206, 206, 206, 416]
    assert sum(g.bytes_sent for g in gets if g.status == 206) == 1024 + 10 + 5 + 2
    assert len({r.client_port for r in hub.requests}) == 1  # a 416 keeps the connection alive too


def test_cut_once_is_retried_inside_the_call_from_byte_zero(hub, tmp_path, blob, sleeps):
    hub.cut_after_bytes, hub.cut_times = 1_000_000, 1
    assert download(hub, tmp_path) == blob
    gets = hub.file_requests("GET")
    assert [(g.range, g.bytes_sent, g.cut) for g in gets] == [(None, 1_000_000, True), (None, len(blob), False)]
    assert sleeps == [1]


def test_cut_after_a_full_chunk_resumes_with_range(fake_hub, tmp_path, sleeps):
    chunk = 10 << 20  # huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE: only whole chunks reach the file
    data = os.urandom(chunk + (1 << 20))
    fake_hub.add_file(REPO, "big.gguf", data)
    fake_hub.cut_after_bytes, fake_hub.cut_times = chunk + (512 << 10), 1
    assert download(fake_hub, tmp_path, "big.gguf") == data
    gets = fake_hub.file_requests("GET")
    assert [(g.range, g.status, g.cut) for g in gets] == [(None, 200, True), (f"bytes={chunk}-", 206, False)]
    assert gets[1].bytes_sent == len(data) - chunk


def test_cut_every_time_raises_after_six_attempts(hub, tmp_path, sleeps):
    hub.cut_after_bytes = 1_000_000  # cut_times None: every GET
    with pytest.raises(httpx2.RemoteProtocolError):
        download(hub, tmp_path)
    assert [g.bytes_sent for g in hub.file_requests("GET")] == [1_000_000] * 6
    assert sleeps == [1] * 5
    assert not list((tmp_path / "cache" / "models--acme--tiny-GGUF" / "blobs").glob("*"))  # no partial file kept


def test_500_on_the_body_raises_at_once(hub, tmp_path, sleeps):
    hub.fail_status, hub.fail_methods = 500, {"GET"}
    with pytest.raises(HfHubHTTPError) as info:
        download(hub, tmp_path)
    assert info.value.response.status_code == 500
    assert [(r.method, r.status) for r in hub.file_requests()] == [("HEAD", 200), ("GET", 500)]
    assert sleeps == [] and hub.fail_status == 500


def test_500_on_the_head_once_is_retried_silently(hub, tmp_path, blob, sleeps):
    hub.fail_status, hub.fail_times = 500, 1
    assert download(hub, tmp_path) == blob
    assert [(r.method, r.status) for r in hub.file_requests()] == [("HEAD", 500), ("HEAD", 200), ("GET", 200)]
    assert sleeps == [] and hub.fail_times == 0


def test_500_on_the_head_always_ends_in_local_entry_not_found(hub, tmp_path, sleeps):
    hub.fail_status = 500
    with pytest.raises(LocalEntryNotFoundError) as info:
        download(hub, tmp_path)
    assert isinstance(info.value.__cause__, HfHubHTTPError)
    assert [(r.method, r.status) for r in hub.file_requests()] == [("HEAD", 500)] * 7
    assert sleeps == [1, 2, 4, 8, 8]
    hub.reset_faults()
    assert hub.fail_status is None


def test_corrupt_serves_wrong_bytes_under_the_true_hash(hub, tmp_path, blob):
    hub.corrupt.add((REPO, FILE))
    true_sha = hashlib.sha256(blob).hexdigest()
    info = HfApi(endpoint=hub.url, token=False).model_info(REPO, files_metadata=True)
    assert next(s for s in info.siblings if s.rfilename == FILE).lfs.sha256 == true_sha
    assert get_hf_file_metadata(hf_hub_url(REPO, FILE, endpoint=hub.url), token=False).etag == true_sha
    got = download(hub, tmp_path)  # the client only checks the size: no error
    assert len(got) == len(blob) and hashlib.sha256(got).hexdigest() != true_sha
    assert [i for i in range(len(blob)) if got[i] != blob[i]] == [len(blob) // 2]
    # ranges are cut from the same corrupted body
    mid = len(blob) // 2
    r = get_session().get(hf_hub_url(REPO, FILE, endpoint=hub.url), headers={"Range": f"bytes={mid - 1}-{mid + 1}"})
    assert r.content == blob[mid - 1 : mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1 : mid + 2]


def test_extra_listed_files_are_listed_not_served(hub, tmp_path):
    evil = ["../evil.gguf", "/etc/passwd.gguf"]
    hub.extra_listed_files[REPO] = evil
    api = HfApi(endpoint=hub.url, token=False)
    sib = {s.rfilename: s for s in api.model_info(REPO, files_metadata=True).siblings}
    assert set(evil) <= set(sib) and sib["../evil.gguf"].lfs.sha256
    assert set(evil) <= {e.path for e in api.list_repo_tree(REPO)}
    for name in evil:  # the client refuses these names itself, before any request
        with pytest.raises(ValueError):
            download(hub, tmp_path, name)
    assert hub.file_requests() == []
    r = get_session().get(f"{hub.url}/{REPO}/resolve/main/%2Fetc%2Fpasswd.gguf")
    assert r.status_code == 404 and r.headers["x-error-code"] == "EntryNotFound"


def test_not_found_errors(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="v9")
    with pytest.raises(RepositoryNotFoundError):
        download(hub, tmp_path, repo="acme/nope")
    with pytest.raises(EntryNotFoundError) as info:
        download(hub, tmp_path, "missing.gguf")
    assert isinstance(info.value, RemoteEntryNotFoundError)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, "no/such/dir"))
    r = hub.file_requests()[-1]
    assert (r.method, r.status) == ("HEAD", 404)


def test_gated_repo(hub, tmp_path):
    hub.add_repo("meta/gated-GGUF", gated=True)
    hub.add_file("meta/gated-GGUF", "m.gguf", b"GGUF")
    api = HfApi(endpoint=hub.url, token=False)
    assert [m.gated for m in api.list_models(search="gated")] == ["auto"]
    with pytest.raises(GatedRepoError):
        download(hub, tmp_path, "m.gguf", repo="meta/gated-GGUF")
    assert download(hub, tmp_path, "m.gguf", repo="meta/gated-GGUF", headers={"authorization": "Bearer x"}) == b"GGUF"


def test_throttle(hub):
    hub.throttle_bytes_per_s = 2_000_000
    began = time.monotonic()
    r = get_session().get(hf_hub_url(REPO, FILE, endpoint=hub.url), headers={"Range": "bytes=0-399999"})
    assert r.status_code == 206 and len(r.content) == 400_000
    assert time.monotonic() - began >= 0.18


def test_stop_leaves_no_threads(blob):
    from tests.fixtures.fake_hub import FakeHub

    with FakeHub() as hub:
        hub.add_file(REPO, FILE, blob)
        assert get_session().head(hf_hub_url(REPO, FILE, endpoint=hub.url)).status_code == 200
        assert hub._handler_threads  # a kept-alive connection parks its thread
    assert not hub._handler_threads and not hub._thread.is_alive()
