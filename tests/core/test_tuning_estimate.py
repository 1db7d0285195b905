"""The training memory estimate: quantization-aware weights, what each setting costs, suggestions, defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest

from macapp.core.errors import UserError
from macapp.core.tuning.estimate import (
    GiB,
    default_settings,
    estimate_training,
    lora_parameters,
    read_base,
    suggest_settings,
)


@dataclass(frozen=True)
class Shape:
    batch_size: int = 4
    max_seq_length: int = 2048
    rank: int = 8
    layers: int = 16
    grad_checkpoint: bool = False


LLAMA_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


def config_dir(tmp_path, config, name="m"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_weights_come_from_the_files_or_from_config_with_quantization(tmp_path, tiny_mlx):
    tiny = read_base(tiny_mlx)
    assert tiny.weights_bytes == (tiny_mlx / "model.safetensors").stat().st_size
    assert tiny.act_bytes == 4 and tiny.bits is None and tiny.layers == 2

    full = read_base(config_dir(tmp_path, LLAMA_8B, "bf16"))
    assert full.parameters == pytest.approx(8.03e9, rel=0.01)
    assert full.weights_bytes == pytest.approx(16.06e9, rel=0.01)
    q4 = read_base(config_dir(tmp_path, {**LLAMA_8B, "quantization": {"group_size": 64, "bits": 4}}, "q4"))
    assert q4.bits == 4 and q4.weights_bytes == pytest.approx(full.parameters * (0.5 + 4 / 64), rel=0.001)
    assert q4.act_bytes == 2


def test_lora_parameters_match_mlx_lm(tiny_mlx):
    import mlx.core as mx  # noqa: F401  (mlx-lm needs it loaded)
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner import linear_to_lora_layers

    model, _ = load(str(tiny_mlx))
    model.freeze()
    linear_to_lora_layers(model, 1, {"rank": 4, "scale": 20.0, "dropout": 0.0})
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    assert lora_parameters(read_base(tiny_mlx), rank=4, layers=1) == trainable


def test_each_setting_moves_the_estimate_the_right_way(tmp_path):
    base = read_base(config_dir(tmp_path, {**LLAMA_8B, "quantization": {"group_size": 64, "bits": 4}}))
    ref = estimate_training(base, Shape())
    assert ref.total_bytes == ref.weights_bytes + ref.lora_bytes + ref.activation_bytes + ref.overhead_bytes
    assert ref.lora_bytes == ref.lora_parameters * 16  # float32 weights, gradients, two Adam moments
    assert estimate_training(base, Shape(batch_size=8)).activation_bytes > 1.9 * ref.activation_bytes
    assert estimate_training(base, Shape(max_seq_length=1024)).activation_bytes < 0.55 * ref.activation_bytes
    assert estimate_training(base, Shape(grad_checkpoint=True)).activation_bytes < 0.5 * ref.activation_bytes
    assert estimate_training(base, Shape(layers=-1)).lora_parameters == 2 * ref.lora_parameters
    assert estimate_training(base, Shape(rank=16)).lora_parameters == 2 * ref.lora_parameters
    assert ref.verdict is None
    assert estimate_training(base, Shape(), budget_bytes=ref.total_bytes * 2).verdict == "fits"
    assert estimate_training(base, Shape(), budget_bytes=int(ref.total_bytes * 1.05)).verdict == "tight"
    assert estimate_training(base, Shape(), budget_bytes=ref.total_bytes // 2).verdict == "too_big"


def test_suggestion_is_the_mildest_change_that_fits(tmp_path):
    base = read_base(config_dir(tmp_path, {**LLAMA_8B, "quantization": {"group_size": 64, "bits": 4}}))
    shape = Shape()
    need = estimate_training(base, shape).total_bytes
    assert suggest_settings(base, shape, need * 2).changes == []
    mild = suggest_settings(base, shape, int(need * 0.7))
    assert mild.changes == ["gradient checkpointing on"] and mild.settings == replace(shape, grad_checkpoint=True)
    assert mild.estimate.verdict in ("fits", "tight")
    tight = suggest_settings(base, shape, 2 * base.weights_bytes)
    assert tight is not None and len(tight.changes) > 2 and tight.estimate.total_bytes <= 2 * base.weights_bytes
    assert tight.changes[:2] == ["gradient checkpointing on", "batch size 4 → 2"]
    assert suggest_settings(base, shape, base.weights_bytes // 2) is None


def test_defaults_follow_the_macs_memory():
    small, mid, big = default_settings(8 * GiB), default_settings(16 * GiB), default_settings(64 * GiB)
    assert small["batch_size"] == 1 and small["grad_checkpoint"]
    assert mid["batch_size"] <= big["batch_size"] and big["max_seq_length"] >= mid["max_seq_length"]
    assert set(default_settings()) == set(small)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="not an MLX model folder"):
        read_base(tmp_path)
    with pytest.raises(UserError, match="hidden_size"):
        read_base(config_dir(tmp_path, {"model_type": "llama"}))
