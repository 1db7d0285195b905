"""Search, file listings and remote header reads with the real huggingface_hub client against the fake Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from macapp.core.errors import UserError
from macapp.core.models.facts import read_facts
from macapp.core.models.hub import (
    RemoteFactsCache,
    RemoteSource,
    list_gguf_files,
    remote_facts,
    safe_repo_path,
    search_models,
)
from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf

REPO = "acme/Tiny-Chat-GGUF"


@pytest.fixture
def hub_repo(fake_hub, tiny_models, tmp_path):
    """A repo with two quants of one model, a split model in two parts, and a README."""
    fake_hub.add_repo(REPO, downloads=1200, likes=7)
    fake_hub.add_repo("acme/other-GGUF", downloads=5)
    fake_hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", tiny_models["gqa_q8_bigvocab"])
    heavy = write_tiny_gguf(tmp_path / "heavy.gguf", TinySpec(n_embd=256, n_head=4, n_head_kv=4, n_ff=768, n_layer=4))
    fake_hub.add_file(REPO, "Tiny-Heavy-F32.gguf", heavy)
    fake_hub.add_file(REPO, "Tiny-Chat-F16.gguf", tiny_models["gqa_f16"])
    fake_hub.add_file(REPO, "README.md", b"# tiny", lfs=False)
    part1 = write_tiny_gguf(tmp_path / "Tiny-Chat-F32-00001-of-00002.gguf", TinySpec())
    part2 = write_tiny_gguf(tmp_path / "Tiny-Chat-F32-00002-of-00002.gguf", TinySpec(n_layer=1))
    fake_hub.add_file(REPO, f"split/{part1.name}", part1)
    fake_hub.add_file(REPO, f"split/{part2.name}", part2)
    fake_hub.add_file("acme/other-GGUF", "other-Q4_K_M.gguf", tiny_models["mha_f32"])
    return fake_hub


def test_search_finds_gguf_repos_most_downloaded_first(hub_repo):
    found = search_models("acme")
    assert [m.id for m in found] == [REPO, "acme/other-GGUF"]
    assert found[0].downloads == 1200 and found[0].likes == 7


def test_files_grouped_by_quant_with_sizes_and_hashes(hub_repo, tiny_models):
    listing = list_gguf_files(REPO)
    by_name = {g.name: g for g in listing.groups}
    assert set(by_name) == {
        "Tiny-Chat-Q8_0.gguf",
        "Tiny-Chat-F16.gguf",
        "Tiny-Heavy-F32.gguf",
        "split/Tiny-Chat-F32-00001-of-00002.gguf",
    }
    q8 = by_name["Tiny-Chat-Q8_0.gguf"]
    assert q8.quant.name == "Q8_0" and q8.size == tiny_models["gqa_q8_bigvocab"].stat().st_size
    assert q8.parts[0].sha256 == hub_repo.sha256(REPO, "Tiny-Chat-Q8_0.gguf")
    split = by_name["split/Tiny-Chat-F32-00001-of-00002.gguf"]
    assert len(split.parts) == 2 and split.error is None and split.quant.name == "F32"
    assert len(listing.revision) == 40


def test_remote_header_matches_local_and_reads_only_the_header(hub_repo, tiny_models):
    listing = list_gguf_files(REPO)
    group = next(g for g in listing.groups if g.name == "Tiny-Chat-Q8_0.gguf")
    facts = remote_facts(REPO, group, listing.revision)
    local = read_facts(tiny_models["gqa_q8_bigvocab"])
    by_name = ("path", "file_name", "kind", "kind_reason", "quant_from_filename")  # the repo names it differently
    assert {k: v for k, v in facts.to_json().items() if k not in by_name} == {
        k: v for k, v in local.to_json().items() if k not in by_name
    }
    assert facts.kind == "instruct" and facts.quant_from_filename.name == "Q8_0"
    gets = hub_repo.file_requests("GET")
    assert gets and all(r.range for r in gets)  # every body read was a range request
    heavy = next(g for g in listing.groups if g.name == "Tiny-Heavy-F32.gguf")
    before = len(hub_repo.requests)
    heavy_facts = remote_facts(REPO, heavy, listing.revision)
    sent = sum(r.bytes_sent for r in hub_repo.requests[before:] if r.method == "GET")
    assert heavy_facts.file_size > 12_000_000 and sent <= 256 << 10  # one block: the header, never the weights
    # cached by content hash: a second look sends no request at all
    before = len(hub_repo.requests)
    assert remote_facts(REPO, group, listing.revision) == facts
    assert len(hub_repo.requests) == before
    assert RemoteFactsCache().get(group.parts[0].sha256) == facts


def test_split_model_facts_cover_all_parts(hub_repo, tmp_path):
    from macapp.core.models.gguf_header import read_header_from_path

    listing = list_gguf_files(REPO)
    split = next(g for g in listing.groups if g.name.startswith("split/"))
    facts = remote_facts(REPO, split, listing.revision)
    parts = [read_header_from_path(tmp_path / p.path.split("/")[-1]) for p in split.parts]
    assert facts.parameters == sum(t.n_elements for h in parts for t in h.tensors)
    assert facts.weights_bytes == sum(t.n_bytes for h in parts for t in h.tensors)
    assert facts.file_size == split.size == sum((tmp_path / p.path.split("/")[-1]).stat().st_size for p in split.parts)


def test_traversal_names_are_refused(hub_repo):
    hub_repo.extra_listed_files[REPO] = ["../evil.gguf", "/etc/passwd.gguf", "a/../../b.gguf", "C:/x.gguf"]
    listing = list_gguf_files(REPO)
    assert sorted(listing.refused) == sorted(["../evil.gguf", "/etc/passwd.gguf", "a/../../b.gguf", "C:/x.gguf"])
    assert not any(".." in g.name for g in listing.groups)
    for bad in ("../x.gguf", "/abs.gguf", "a\\..\\b.gguf", "a//b.gguf", ""):
        with pytest.raises(UserError, match="refusing"):
            safe_repo_path(bad)
    assert str(safe_repo_path("sub/dir/m.gguf")) == "sub/dir/m.gguf"


def test_hub_errors_are_one_line_user_errors(hub_repo, monkeypatch):
    with pytest.raises(UserError, match="no such repository"):
        list_gguf_files("acme/nope")
    with pytest.raises(UserError, match="no such file"):
        RemoteSource(REPO, "missing.gguf")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(UserError, match="cannot reach the Hub"):
        search_models("x")


def test_truncated_remote_file_says_so(fake_hub, tiny_models):
    data = tiny_models["mha_f32"].read_bytes()
    fake_hub.add_file("acme/broken-GGUF", "broken-Q8_0.gguf", data[: len(data) // 2])
    listing = list_gguf_files("acme/broken-GGUF")
    with pytest.raises(UserError, match="truncated"):
        remote_facts("acme/broken-GGUF", listing.groups[0], listing.revision)


def macapp(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_cli_search_and_files(hub_repo):
    env = {"HF_ENDPOINT": hub_repo.url}
    found = json.loads(macapp("search", "acme", "--json", env=env).stdout)
    assert [m["id"] for m in found] == [REPO, "acme/other-GGUF"]
    run = macapp("files", REPO, "--ctx", "2048", "--budget", "1G", "--json", env=env)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    rows = {r["name"]: r for r in data["files"]}
    assert rows["Tiny-Chat-Q8_0.gguf"]["verdict"] == "fits"
    assert rows["Tiny-Chat-Q8_0.gguf"]["estimate"]["n_ctx"] == 2048
    assert rows["Tiny-Chat-Q8_0.gguf"]["parts"][0]["sha256"] == hub_repo.sha256(REPO, "Tiny-Chat-Q8_0.gguf")
    tiny = json.loads(macapp("files", REPO, "--budget", "1M", "--json", env=env).stdout)
    assert {r["verdict"] for r in tiny["files"]} == {"too_big"}
    human = macapp("files", REPO, "--budget", "1G", env=env)
    assert human.returncode == 0 and "Tiny-Chat-Q8_0.gguf" in human.stdout and "fits" in human.stdout
    missing = macapp("files", "acme/nope", env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no such repository" in missing.stderr
