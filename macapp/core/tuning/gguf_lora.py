"""An mlx-lm LoRA adapter as a GGUF LoRA adapter, which llama.cpp applies over the (quantized) GGUF of the same base.

mlx-lm's ``LoRALinear`` computes ``y = W x + scale * (x @ lora_a) @ lora_b`` with ``lora_a`` of shape
(in, r) and ``lora_b`` of shape (r, out). llama.cpp computes ``y = W x + s * B (A x)`` for a tensor
pair ``<weight>.lora_a`` / ``<weight>.lora_b`` whose ggml shapes are ``A: [in, r]`` and ``B: [r, out]``
(numpy shapes (r, in) and (out, r), i.e. PEFT's ``lora_A`` / ``lora_B``) and ``s = user_scale * alpha / r``
when ``adapter.lora.alpha`` is non-zero. So ``A = lora_aᵀ``, ``B = lora_bᵀ`` and ``alpha = scale * r``.

llama.cpp's ``llama`` architecture expects the rows of ``attn_q`` / ``attn_k`` permuted (per head, the
two rotary halves interleaved: ``convert_hf_to_gguf``'s ``LlamaModel.permute``, which mlx-lm's GGUF
export applies too). The permutation acts on output rows, so for a LoRA pair it is applied to ``B``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from macapp.core.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapters.safetensors"


@dataclass(frozen=True)
class GgufArchitecture:
    """How an mlx-lm ``model_type`` is written for llama.cpp."""

    name: str  # general.architecture in the GGUF
    permute_qk: bool  # rows of q/k interleaved for llama.cpp's rotary layout


# Registries: a model type or module missing here is refused with a clear message rather than guessed.
ARCHITECTURES: dict[str, GgufArchitecture] = {
    "llama": GgufArchitecture("llama", permute_qk=True),
    "mistral": GgufArchitecture("llama", permute_qk=True),  # convert_hf_to_gguf writes Mistral as llama
}
LAYER_MODULES: dict[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TOP_MODULES: dict[str, str] = {"lm_head": "output"}

_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)\.lora_(a|b)$")
_TOP_KEY = re.compile(r"^([A-Za-z_]+)\.lora_(a|b)$")


@dataclass(frozen=True)
class LoraSettings:
    """What ``adapter_config.json`` says about a LoRA adapter."""

    fine_tune_type: str
    rank: int
    scale: float
    num_layers: int


@dataclass(frozen=True)
class GgufLoraPlan:
    """The GGUF adapter to write: architecture, alpha and the tensors (numpy, llama.cpp's orientation)."""

    architecture: str
    rank: int
    alpha: float
    tensors: list[tuple[str, np.ndarray]]


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent} is not {what}: {path.name} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object")
    return data


def read_lora_settings(adapter_dir: Path) -> LoraSettings:
    """The adapter's type, rank and scale; refuses what is not an mlx-lm adapter directory."""
    config = read_json(adapter_dir / ADAPTER_CONFIG, "an mlx-lm adapter directory")
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise UserError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}", hint="train the adapter first")
    params = config.get("lora_parameters") or {}
    try:
        return LoraSettings(
            fine_tune_type=str(config.get("fine_tune_type", "lora")),
            rank=int(params.get("rank", 0)),
            scale=float(params.get("scale", 0.0)),
            num_layers=int(config.get("num_layers", 0)),
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{adapter_dir / ADAPTER_CONFIG} has unreadable LoRA parameters: {exc}") from exc


def gguf_architecture(base_config: dict) -> GgufArchitecture:
    model_type = str(base_config.get("model_type", ""))
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise UserError(
            f"GGUF LoRA export does not support the '{model_type or 'unknown'}' architecture",
            hint=f"supported: {supported}; use the adapter with the MLX engine instead",
        )
    return arch


def llama_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Interleave the two rotary halves of each head's rows (``LlamaModel.permute`` in convert_hf_to_gguf)."""
    head_rows = rows.shape[0] // n_head
    return rows.reshape(n_head, 2, head_rows // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _expected_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) of every module we map, from the base model's config."""
    hidden = int(config["hidden_size"])
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = int(config.get("head_dim") or hidden // n_head)
    ff = int(config["intermediate_size"])
    return {
        "self_attn.q_proj": (hidden, n_head * head_dim),
        "self_attn.k_proj": (hidden, n_kv * head_dim),
        "self_attn.v_proj": (hidden, n_kv * head_dim),
        "self_attn.o_proj": (n_head * head_dim, hidden),
        "mlp.gate_proj": (hidden, ff),
        "mlp.up_proj": (hidden, ff),
        "mlp.down_proj": (ff, hidden),
        "lm_head": (hidden, int(config.get("vocab_size", 0))),
    }


LoraPair = tuple[str, int | None, np.ndarray, np.ndarray]  # module, layer (None: top level), lora_a, lora_b


def _pairs(weights: dict[str, np.ndarray], adapter_dir: Path) -> Iterator[LoraPair]:
    """(module, layer or None, lora_a, lora_b) for every adapted module; refuses tensors we don't map."""
    found: dict[tuple[str, int | None], dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        if match := _LAYER_KEY.match(key):
            layer, module, part = int(match[1]), match[2], match[3]
            if module not in LAYER_MODULES:
                raise UserError(
                    f"GGUF LoRA export cannot map the adapted module '{module}' ({key})",
                    hint=f"supported: {', '.join(LAYER_MODULES)}",
                )
        elif (match := _TOP_KEY.match(key)) and match[1] in TOP_MODULES:
            layer, module, part = None, match[1], match[2]
        else:
            raise UserError(
                f"{adapter_dir.name} holds a tensor GGUF LoRA export cannot map: {key}",
                hint="only LoRA pairs (lora_a/lora_b) on attention, MLP and lm_head layers are supported",
            )
        found.setdefault((module, layer), {})[part] = value

    def order(key: tuple[str, int | None]) -> tuple[bool, int, str]:
        module, layer = key
        return layer is None, layer or 0, module

    for (module, layer), parts in sorted(found.items(), key=lambda item: order(item[0])):
        if set(parts) != {"a", "b"}:
            raise UserError(f"{adapter_dir.name}: {module} of layer {layer} lacks lora_a or lora_b")
        yield module, layer, parts["a"], parts["b"]


def plan_gguf_lora(
    weights: dict[str, np.ndarray], settings: LoraSettings, base_config: dict, adapter_dir: Path
) -> GgufLoraPlan:
    """Map, check, transpose and permute the adapter's tensors for llama.cpp."""
    if settings.fine_tune_type != "lora":
        raise UserError(
            f"{adapter_dir.name} is a '{settings.fine_tune_type}' adapter; GGUF LoRA export needs plain LoRA",
            hint="export it with --fused-gguf instead",
        )
    if settings.scale == 0:
        raise UserError(f"{adapter_dir.name} has a LoRA scale of 0 (it changes nothing)")
    arch = gguf_architecture(base_config)
    try:
        shapes = _expected_shapes(base_config)
        n_head = int(base_config["num_attention_heads"])
        n_kv = int(base_config.get("num_key_value_heads") or n_head)
        n_layers = int(base_config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"the base model's config.json lacks {exc}") from exc
    if "lm_head.lora_a" in weights and base_config.get("tie_word_embeddings", False):
        raise UserError(
            "the adapter changes lm_head but the base model ties it to the embeddings; llama.cpp cannot apply that",
            hint="export it with --fused-gguf instead",
        )
    tensors: list[tuple[str, np.ndarray]] = []
    ranks: set[int] = set()
    for module, layer, lora_a, lora_b in _pairs(weights, adapter_dir):
        n_in, n_out = shapes[module]
        where = f"{module}" + (f" of layer {layer}" if layer is not None else "")
        if lora_a.ndim != 2 or lora_b.ndim != 2 or lora_a.shape[1] != lora_b.shape[0]:
            raise UserError(f"{adapter_dir.name}: {where} has malformed LoRA shapes {lora_a.shape} and {lora_b.shape}")
        if lora_a.shape[0] != n_in or lora_b.shape[1] != n_out:
            raise UserError(
                f"{adapter_dir.name} does not fit this base model: {where} is {n_in}→{n_out} in the base, "
                f"{lora_a.shape[0]}→{lora_b.shape[1]} in the adapter",
                hint="pick the adapter's own base",
            )
        if layer is not None and layer >= n_layers:
            raise UserError(f"{adapter_dir.name} adapts layer {layer}; the base model has {n_layers} layers")
        ranks.add(lora_a.shape[1])
        a = np.ascontiguousarray(lora_a.T, dtype=np.float32)  # (r, in): ggml [in, r]
        b = np.ascontiguousarray(lora_b.T, dtype=np.float32)  # (out, r): ggml [r, out]
        if arch.permute_qk and module == "self_attn.q_proj":
            b = np.ascontiguousarray(llama_permute(b, n_head))
        elif arch.permute_qk and module == "self_attn.k_proj":
            b = np.ascontiguousarray(llama_permute(b, n_kv))
        name = f"blk.{layer}.{LAYER_MODULES[module]}.weight" if layer is not None else f"{TOP_MODULES[module]}.weight"
        tensors += [(f"{name}.lora_a", a), (f"{name}.lora_b", b)]
    if not tensors:
        raise UserError(f"{adapter_dir.name} holds no LoRA tensors")
    if len(ranks) != 1:
        raise UserError(f"{adapter_dir.name} mixes LoRA ranks {sorted(ranks)}; one alpha cannot express that")
    rank = ranks.pop()
    # llama.cpp applies user_scale * alpha / rank (rank read from the tensors); mlx-lm applies `scale`.
    return GgufLoraPlan(arch.name, rank, settings.scale * rank, tensors)


def load_adapter_weights(adapter_dir: Path) -> dict[str, np.ndarray]:
    """The adapter's tensors as float32 numpy arrays (mlx reads bfloat16, numpy cannot)."""
    import mlx.core as mx

    try:
        loaded = mx.load(str(adapter_dir / ADAPTER_WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - mlx raises RuntimeError/ValueError for unreadable files
        raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS} could not be read: {exc}") from exc
    if not isinstance(loaded, dict):  # a .safetensors file loads as a dict (a lone array is a .npy)
        raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS} holds no named tensors")
    return {key: np.array(value.astype(mx.float32)) for key, value in loaded.items()}


def write_gguf_lora(plan: GgufLoraPlan, out_path: Path, *, name: str) -> None:
    """Write ``plan`` as a GGUF file llama.cpp loads with ``llama_adapter_lora_init``."""
    import gguf

    writer = gguf.GGUFWriter(str(out_path), arch=plan.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(plan.alpha))
    for tensor_name, data in plan.tensors:
        writer.add_tensor(tensor_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
