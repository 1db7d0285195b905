"""MLX base models from the (fake) Hub: every file in one snapshot folder, resumable, refused when not MLX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from macapp.core.errors import UserError
from macapp.core.models.mlx_fetch import fetch_mlx_model, mlx_twin

REPO = "mlx-community/Tiny-4bit"
PLAIN = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def run(gen):
    seen = []
    while True:
        try:
            seen.append(next(gen))
        except StopIteration as stop:
            return stop.value, seen


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny mlx-lm model folder (mlx is a dependency on every platform Orchard runs on)."""
    from macapp.core.tuning.tiny_mlx import write_tiny_mlx

    return write_tiny_mlx(tmp_path_factory.mktemp("mlx") / "tiny")


@pytest.fixture
def hub(fake_hub, tiny_dir):
    fake_hub.add_repo(REPO, tags=("mlx", "safetensors"))
    for f in sorted(tiny_dir.iterdir()):
        fake_hub.add_file(REPO, f.name, f, lfs=f.name not in PLAIN)  # small config files are plain git, as on the Hub
    fake_hub.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    return fake_hub


def _same_files(folder: Path, tiny_dir: Path) -> None:
    for f in tiny_dir.iterdir():
        assert (folder / f.name).read_bytes() == f.read_bytes(), f.name


def test_fetch_lands_every_file_in_one_snapshot(hub, tiny_dir):
    folder, progress = run(fetch_mlx_model(REPO))
    assert folder.name == hub.commit(REPO) and folder.parent.name == "snapshots"
    _same_files(folder, tiny_dir)
    assert not (folder / "README.md").exists()
    total = sum(f.stat().st_size for f in tiny_dir.iterdir())
    assert progress[-1].stage == "done" and progress[-1].done == progress[-1].total == total
    dones = [p.done for p in progress]
    assert dones == sorted(dones)  # overall bytes only go up
    assert any("model.safetensors" in p.message for p in progress)
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(folder))
    assert tokenizer.encode("hello")


def test_a_repo_without_config_or_weights_is_refused(fake_hub):
    fake_hub.add_file("acme/not-mlx", "model.safetensors", b"\0" * 64)
    with pytest.raises(UserError, match="no config.json"):
        run(fetch_mlx_model("acme/not-mlx"))
    fake_hub.add_file("acme/gguf-only", "config.json", b"{}", lfs=False)
    fake_hub.add_file("acme/gguf-only", "m.gguf", b"GGUF")
    with pytest.raises(UserError, match="safetensors"):
        run(fetch_mlx_model("acme/gguf-only"))
    assert fake_hub.file_requests("GET") == []


def test_an_escaping_name_is_refused_before_any_download(hub):
    hub.add_file(REPO, "../evil.safetensors", b"x")
    with pytest.raises(UserError, match="refusing"):
        run(fetch_mlx_model(REPO))
    assert hub.file_requests("GET") == []


def test_a_cut_download_resumes(hub, tiny_dir):
    size = (tiny_dir / "model.safetensors").stat().st_size
    hub.cut_after_bytes, hub.cut_times = size // 2, 1
    folder, progress = run(fetch_mlx_model(REPO))
    _same_files(folder, tiny_dir)
    ranged = [r.range for r in hub.file_requests("GET") if r.path.endswith("model.safetensors")]
    assert ranged[0] == "bytes=0-" and ranged[1] != "bytes=0-"
    assert any(p.stage == "reconnecting" for p in progress)


def test_mlx_twin_from_the_catalog():
    assert mlx_twin("bartowski/Llama-3.2-1B-Instruct-GGUF") == "mlx-community/Llama-3.2-1B-Instruct-4bit"
    assert mlx_twin("llama-3.2-1b-instruct") == "mlx-community/Llama-3.2-1B-Instruct-4bit"
    assert mlx_twin("nobody/unknown-GGUF") is None


def test_pull_mlx_cli_prints_the_folder(hub, tiny_dir):
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    out = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "pull", REPO, "--mlx", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["repo"] == REPO
    _same_files(Path(doc["folder"]), tiny_dir)
