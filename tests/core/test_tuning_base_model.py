"""A GGUF chosen as the base for tuning is named as such, with the catalog's MLX twin to download instead."""

from __future__ import annotations

import pytest

from macapp.core.errors import UserError
from macapp.core.models.catalog import load_catalog
from macapp.core.tuning.base_model import NotAnMlxModel, mlx_twin_of, require_mlx_folder
from macapp.core.tuning.datasets import write_jsonl
from macapp.core.tuning.train import TrainOptions, plan_training


@pytest.fixture(scope="module")
def entry():
    return load_catalog()[0]


def test_a_cached_gguf_is_matched_to_its_repos_twin(tmp_path, entry):
    snapshot = tmp_path / "hub" / f"models--{entry.repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    gguf = snapshot / "renamed-by-hand.gguf"  # the repo decides, whatever the file is called
    gguf.write_bytes(b"GGUF")
    assert mlx_twin_of(gguf) == entry.mlx_repo


def test_a_gguf_elsewhere_is_matched_by_its_file_name(tmp_path, entry):
    gguf = tmp_path / "lmstudio" / "someone" / entry.files[-1].file
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    with pytest.raises(NotAnMlxModel) as err:
        require_mlx_folder(gguf)
    assert err.value.twin == entry.mlx_repo
    assert "GGUF file" in err.value.message and "needs an MLX model" in err.value.message
    assert f"macapp pull {entry.mlx_repo} --mlx" in err.value.hint


def test_an_unknown_gguf_still_says_how_to_get_an_mlx_model(tmp_path):
    gguf = tmp_path / "my-own-finetune.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(NotAnMlxModel) as err:
        require_mlx_folder(gguf)
    assert err.value.twin is None and "--mlx" in err.value.hint


def test_other_files_and_missing_paths_are_named(tmp_path):
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(UserError, match="is a file; tuning needs an MLX model folder"):
        require_mlx_folder(other)
    with pytest.raises(UserError, match="No such base model folder"):
        require_mlx_folder(tmp_path / "nowhere")
    assert require_mlx_folder(tmp_path) == tmp_path


def test_planning_on_a_gguf_says_gguf_not_a_directory(tmp_path, entry):
    gguf = tmp_path / entry.files[0].file
    gguf.write_bytes(b"GGUF")
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello"}])
    with pytest.raises(NotAnMlxModel) as err:
        plan_training(TrainOptions(base=gguf, data=data, name="x"), budget_bytes=1 << 30)
    assert "Not a directory" not in str(err.value) and entry.mlx_repo in str(err.value)
