"""``macapp search``: the curated picks with their expected speed, and the catalog when the Hub is unreachable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from macapp.core.models.catalog import load_catalog, matching
from macapp.core.models.speed import READABLE_TOKENS_PER_S


def macapp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture
def no_hub() -> dict:
    """HF_ENDPOINT at a port nothing listens on (bound, then closed): the Hub is unreachable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}


def test_curated_json_has_each_models_speed():
    run = macapp("search", "--budget", "16G", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    bandwidth = data["decode_bandwidth"]["bytes_per_s"]
    assert bandwidth > 0 and data["decode_bandwidth"]["basis"]
    for model in data["models"]:
        expected = bandwidth / model["estimate"]["weights_bytes"]
        assert model["tokens_per_s"] == pytest.approx(expected, abs=0.06)
        assert model["readable"] == (model["tokens_per_s"] >= READABLE_TOKENS_PER_S)
    first = data["models"][0]
    assert data["recommended"] == first["id"] and data["recommended_tokens_per_s"] == first["tokens_per_s"]
    fitting = [m for m in data["models"] if m["verdict"] == "fits"]
    if not first["readable"]:  # nothing readable fits: the fastest that fits is recommended
        assert first["tokens_per_s"] == max(m["tokens_per_s"] for m in fitting)
        assert not any(m["readable"] for m in fitting)


def test_curated_table_shows_the_speed():
    run = macapp("search", "--budget", "16G")
    assert run.returncode == 0, run.stderr
    assert "speed" in run.stdout and "tokens/s" in run.stdout and "← recommended" in run.stdout
    place = "this Mac" if sys.platform == "darwin" else "this computer"
    assert f"on {place} (" in run.stdout


def test_offline_search_shows_the_catalog_entries_matching_the_query(no_hub):
    run = macapp("search", "qwen", "--json", env=no_hub)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    expected = {e.id for e in matching(load_catalog(), "qwen")}
    assert {r["catalog"]["id"] for r in rows} == expected and len(expected) < len(load_catalog())
    assert all(r["source"] == "catalog" and "qwen" in r["id"].lower() for r in rows)
    assert all(r["catalog"]["tokens_per_s"] > 0 for r in rows)
    assert "cannot reach the Hub" in run.stderr and "'qwen'" in run.stderr

    text = macapp("search", "qwen coder", env=no_hub)
    assert text.returncode == 0, text.stderr
    assert "cannot reach the Hub" in text.stdout and "Qwen2.5 Coder 7B Instruct" in text.stdout
    assert "Llama" not in text.stdout and "Qwen2.5 7B Instruct" not in text.stdout

    none = macapp("search", "no-such-model", env=no_hub)
    assert none.returncode == 0 and "No curated model matches 'no-such-model'" in none.stdout
