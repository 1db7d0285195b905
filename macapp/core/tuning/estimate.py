"""Peak memory of LoRA training with mlx-lm, whether it fits this Mac, and smaller settings when it won't.

peak = base weights + LoRA state + activations + overhead:

- base weights: the tensor bytes of the model's safetensors (4-bit models are ~4.5 bits a weight);
  computed from ``config.json`` (its ``quantization`` bits and group size) when the files are absent.
- LoRA state: rank x (in + out) per adapted linear (every linear of the last ``layers`` blocks),
  float32, times 4: weights, gradients and Adam's two moments.
- activations: per token of batch x sequence, for each trained block
  ``(10 x hidden + 4 x ffn) x act_bytes + 1.2 x heads x sequence x 4`` (attention scores), plus
  ``vocab x (4 x act_bytes + 24)`` for logits and the loss. Gradient checkpointing keeps only each
  block's input and recomputes one block at a time during the backward pass (~1.4 blocks live).
  The attention scores are those of mlx's unfused attention (CPU); Metal may need less.
- overhead: 8% of the rest plus 64 MiB (allocator cache, compiled graph, tokenizer).

Coefficients come from mlx's peak memory (``mx.get_peak_memory``) on generated llama models on
CPU (hidden 256-512, 4-8 blocks, MHA and GQA, float32/bfloat16/4-bit, batch 2-8, sequence 128-512,
with and without checkpointing): weights + LoRA + activations within -8%..+4% of the measured peak;
the overhead term is the safety margin on top.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from macapp.core.errors import UserError
from macapp.core.models.estimate import verdict_for
from macapp.core.tuning.base_model import require_mlx_folder

MiB = 1024 * 1024
GiB = 1024 * MiB
_OVERHEAD_FRACTION = 0.08
_OVERHEAD_FIXED = 64 * MiB
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class TrainShape(Protocol):
    """The training settings the estimate depends on (``TrainOptions`` has them)."""

    batch_size: int
    max_seq_length: int
    rank: int
    layers: int
    grad_checkpoint: bool


@dataclass(frozen=True)
class BaseFacts:
    """What the estimate needs to know about an mlx-lm base model (from its config.json)."""

    model_type: str
    hidden: int
    layers: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    bits: int | None  # None = not quantized
    group_size: int
    act_bytes: int  # bytes per activation element (the model's float dtype)
    weights_bytes: int

    @property
    def parameters(self) -> int:
        return _parameter_count(self)


@dataclass(frozen=True)
class TrainEstimate:
    """Peak memory of a training run (bytes) and the verdict against a budget."""

    weights_bytes: int
    lora_parameters: int
    lora_bytes: int  # weights + gradients + Adam moments
    activation_bytes: int
    overhead_bytes: int
    total_bytes: int
    budget_bytes: int | None
    verdict: str | None  # fits | tight | too_big (None without a budget)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Suggestion:
    """Settings that fit, with the changes in words (e.g. "batch size 4 → 1")."""

    settings: Any
    changes: list[str]
    estimate: TrainEstimate


def load_config(base_dir: str | Path) -> dict[str, Any]:
    path = require_mlx_folder(base_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{base_dir} is not an MLX model folder (no config.json)",
            hint="pick a folder with config.json and *.safetensors, e.g. an mlx-community model",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"Can't read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a JSON object")
    return {**config.get("text_config", {}), **config} if isinstance(config.get("text_config"), dict) else config


def read_base(base_dir: str | Path) -> BaseFacts:
    """Shape, quantization and weight bytes of the base model in ``base_dir``."""
    config = load_config(base_dir)
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        facts = BaseFacts(
            model_type=str(config.get("model_type", "?")),
            hidden=hidden,
            layers=int(config["num_hidden_layers"]),
            ffn=int(config.get("intermediate_size", 4 * hidden)),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            bits=None,
            group_size=64,
            act_bytes=2,
            weights_bytes=0,
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise UserError(f"{Path(base_dir) / 'config.json'} lacks a usable {exc} for the memory estimate") from None
    quant = config.get("quantization") or config.get("quantization_config") or {}
    bits = int(quant["bits"]) if isinstance(quant, dict) and quant.get("bits") else None
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    facts = replace(
        facts,
        bits=bits,
        group_size=int(quant.get("group_size", 64)) if bits else 64,
        act_bytes=_DTYPE_BYTES.get(dtype, 2),
    )
    on_disk = sum(f.stat().st_size for f in Path(base_dir).glob("*.safetensors"))
    return replace(facts, weights_bytes=on_disk or _weights_from_config(facts))


def _linear_shapes(f: BaseFacts) -> list[tuple[int, int]]:
    """(in, out) of the linears in one llama-style block: q, k, v, o, gate, up, down."""
    q, kv = f.heads * f.head_dim, f.kv_heads * f.head_dim
    return [
        (f.hidden, q),
        (f.hidden, kv),
        (f.hidden, kv),
        (q, f.hidden),
        (f.hidden, f.ffn),
        (f.hidden, f.ffn),
        (f.ffn, f.hidden),
    ]


def _parameter_count(f: BaseFacts) -> int:
    block = sum(i * o for i, o in _linear_shapes(f)) + 2 * f.hidden
    return f.layers * block + f.vocab * f.hidden * (1 if f.tied else 2) + f.hidden


def _weights_from_config(f: BaseFacts) -> int:
    if f.bits is None:
        return _parameter_count(f) * f.act_bytes
    per_weight = f.bits / 8 + 2 * 2 / f.group_size  # packed weights + fp16 scale and bias per group
    return int(_parameter_count(f) * per_weight)


def trained_layers(base: BaseFacts, layers: int) -> int:
    """mlx-lm's ``num_layers``: -1 (or more than the model has) means every block."""
    return base.layers if layers < 0 or layers > base.layers else layers


def lora_parameters(base: BaseFacts, rank: int, layers: int) -> int:
    return trained_layers(base, layers) * rank * sum(i + o for i, o in _linear_shapes(base))


def activation_bytes(base: BaseFacts, batch_size: int, seq: int, layers: int, grad_checkpoint: bool) -> int:
    tokens = batch_size * seq
    block = (10 * base.hidden + 4 * base.ffn) * base.act_bytes + 1.2 * base.heads * seq * 4
    logits = base.vocab * (4 * base.act_bytes + 24)
    n = trained_layers(base, layers)
    # Checkpointing keeps each block's input and recomputes one block at a time (measured: ~1.4 blocks live).
    kept = n * base.hidden * base.act_bytes + (1.4 * block if n else 0) if grad_checkpoint else n * block
    return int(tokens * (kept + logits))


def estimate_training(base: BaseFacts, settings: TrainShape, budget_bytes: int | None = None) -> TrainEstimate:
    """Peak memory of LoRA training ``base`` with ``settings`` (batch, sequence, rank, layers, checkpointing)."""
    params = lora_parameters(base, settings.rank, settings.layers)
    lora = params * 4 * 4
    acts = activation_bytes(
        base, settings.batch_size, settings.max_seq_length, settings.layers, settings.grad_checkpoint
    )
    subtotal = base.weights_bytes + lora + acts
    overhead = int(subtotal * _OVERHEAD_FRACTION + _OVERHEAD_FIXED)
    total = subtotal + overhead
    verdict = verdict_for(total, budget_bytes) if budget_bytes is not None else None
    return TrainEstimate(base.weights_bytes, params, lora, acts, overhead, total, budget_bytes, verdict)


def _shrinks(settings: Any):
    """Cheaper settings, mildest first: checkpointing, then batch, sequence, layers and rank."""
    if not settings.grad_checkpoint:
        yield "gradient checkpointing on", {"grad_checkpoint": True}
    if settings.batch_size > 1:
        new = max(1, settings.batch_size // 2)
        yield f"batch size {settings.batch_size} → {new}", {"batch_size": new}
    if settings.max_seq_length > 512:
        new = max(512, settings.max_seq_length // 2)
        yield f"max sequence length {settings.max_seq_length} → {new}", {"max_seq_length": new}
    if settings.layers < 0 or settings.layers > 4:
        new = 8 if settings.layers < 0 or settings.layers > 8 else 4
        yield f"layers {settings.layers} → {new}", {"layers": new}
    if settings.rank > 4:
        new = max(4, settings.rank // 2)
        yield f"rank {settings.rank} → {new}", {"rank": new}


def suggest_settings(base: BaseFacts, settings: Any, budget_bytes: int) -> Suggestion | None:
    """The closest settings whose estimate fits ``budget_bytes`` (None if even the smallest won't).

    ``settings`` is a dataclass with the ``TrainShape`` fields; the suggestion is a copy of it.
    """
    changes: list[str] = []
    current = settings
    while True:
        estimate = estimate_training(base, current, budget_bytes)
        if estimate.verdict != "too_big":
            return Suggestion(current, changes, estimate)
        step = next(_shrinks(current), None)
        if step is None:
            return None
        words, fields = step
        changes.append(words)
        current = replace(current, **fields)


def default_settings(total_bytes: int | None = None) -> dict[str, Any]:
    """Batch, sequence, layers, rank and checkpointing suited to a Mac with ``total_bytes`` of memory."""
    if total_bytes is None:
        from macapp.core.hardware import detect

        total_bytes = detect().total_bytes
    if total_bytes <= 8 * GiB:
        return {"batch_size": 1, "max_seq_length": 1024, "layers": 8, "rank": 8, "grad_checkpoint": True}
    if total_bytes <= 16 * GiB:
        return {"batch_size": 2, "max_seq_length": 2048, "layers": 16, "rank": 8, "grad_checkpoint": True}
    if total_bytes <= 32 * GiB:
        return {"batch_size": 4, "max_seq_length": 2048, "layers": 16, "rank": 8, "grad_checkpoint": False}
    return {"batch_size": 4, "max_seq_length": 4096, "layers": 16, "rank": 16, "grad_checkpoint": False}
