"""The adapter registry: manifests, listing, deleting, and names that can't escape the adapters folder."""

from __future__ import annotations

import json

import pytest

from macapp.core import paths
from macapp.core.errors import UserError
from macapp.core.tuning.adapters import (
    AdapterNotFound,
    adapter_path,
    base_identity,
    delete_adapter,
    get_adapter,
    list_adapters,
    write_manifest,
)


def fake_adapter(name: str, tiny_mlx, finished: bool = True):
    folder = adapter_path(name)
    folder.mkdir(parents=True)
    (folder / "adapters.safetensors").write_bytes(b"x" * 100)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"base": str(tiny_mlx), "settings": {"rank": 8}}))
    (folder / "checkpoint.json").write_text(json.dumps({"iteration": 30, "file": "adapters.safetensors"}))
    if finished:
        return write_manifest(
            name,
            base_path=str(tiny_mlx),
            base_id=base_identity(tiny_mlx),
            dataset_sha256="ab" * 32,
            settings={"rank": 8},
            train_loss=1.5,
            val_loss=1.75,
            iterations=100,
        )
    return None


def test_manifest_round_trip_and_listing(tiny_mlx):
    info = fake_adapter("tone.v1", tiny_mlx)
    fake_adapter("unfinished", tiny_mlx, finished=False)
    assert info.size_bytes == 102 and info.status == "complete" and info.created
    assert get_adapter("tone.v1") == info
    assert [a.name for a in list_adapters()] == ["tone.v1"]
    everything = {a.name: a for a in list_adapters(include_incomplete=True)}
    assert everything["unfinished"].status == "incomplete" and everything["unfinished"].iterations == 30
    data = json.loads((info.path / "orchard.json").read_text())
    assert data["base_identity"] == base_identity(tiny_mlx) and data["val_loss"] == 1.75
    assert info.to_json()["path"] == str(paths.adapters_dir() / "tone.v1")
    with pytest.raises(AdapterNotFound):
        get_adapter("unfinished")
    assert get_adapter("unfinished", include_incomplete=True).status == "incomplete"


def test_base_identity_changes_with_the_weights(tiny_mlx, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_mlx, copy)
    assert base_identity(copy)["fingerprint"] == base_identity(tiny_mlx)["fingerprint"]
    (copy / "model.safetensors").write_bytes(b"different")
    assert base_identity(copy)["fingerprint"] != base_identity(tiny_mlx)["fingerprint"]


def test_delete(tiny_mlx):
    fake_adapter("gone", tiny_mlx)
    assert delete_adapter("gone") is True and delete_adapter("gone") is False
    assert list_adapters() == []
    with pytest.raises(AdapterNotFound):
        get_adapter("gone")


@pytest.mark.parametrize("name", ["../evil", "..", ".", "a/b", "a\\b", "/abs", "", "-flag", "x" * 65, "a..b", "é"])
def test_names_cannot_escape_the_registry(name, tmp_path):
    victim = paths.data_dir() / "precious"
    victim.mkdir()
    with pytest.raises(UserError, match="Invalid adapter name"):
        delete_adapter(name)
    with pytest.raises(UserError, match="Invalid adapter name"):
        get_adapter(name)
    assert victim.is_dir()


def test_a_symlinked_folder_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    paths.adapters_dir().mkdir(parents=True)
    (paths.adapters_dir() / "link").symlink_to(outside)
    with pytest.raises(UserError, match="Invalid adapter name"):
        delete_adapter("link")
    assert outside.is_dir()
