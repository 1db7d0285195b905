"""A trained adapter for llama.cpp: as a GGUF LoRA adapter over the base's GGUF, or fused into a GGUF model.

``export_gguf_lora`` writes the small adapter file (``gguf_lora``). ``export_fused_gguf`` fuses the
adapter with mlx-lm, writes the GGUF with mlx-lm's exporter, then repairs what llama.cpp rejects or
lacks: ``tokenizer.ggml.token_type`` as INT32 (mlx-lm writes UINT32), token scores in BPE merge order
(mlx-lm writes a flat -1000, which leaves llama.cpp's SentencePiece merger no order) and the chat
template. It refuses, before any work, what mlx-lm's exporter gets wrong: architectures other than
llama/mistral, and vocabularies that are not SentencePiece-style BPE (byte-level BPE — Llama 3, Qwen —
is written as a SentencePiece vocabulary and crashes llama.cpp at tokenize time).
``export_base_gguf`` is the same path without an adapter: the GGUF a GGUF LoRA adapter applies over.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress
from macapp.core.tuning.gguf_lora import (
    gguf_architecture,
    load_adapter_weights,
    plan_gguf_lora,
    read_json,
    read_lora_settings,
    write_gguf_lora,
)

ProgressFn = Callable[[Progress], None]
FUSABLE_MODEL_TYPES = ("llama", "mistral")  # mlx-lm's GGUF writer; its mixtral tensor names don't match llama.cpp's


@dataclass(frozen=True)
class ExportResult:
    """What was written."""

    kind: str  # "gguf-lora" | "fused-gguf" | "base-gguf"
    path: Path
    size_bytes: int
    architecture: str
    tensors: int
    rank: int | None = None
    alpha: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "architecture": self.architecture,
            "tensors": self.tensors,
            "rank": self.rank,
            "alpha": self.alpha,
        }


def base_config(base_model_dir: Path) -> dict:
    return read_json(Path(base_model_dir) / "config.json", "an MLX model directory")


def _prepare_out(out_path: str | Path) -> Path:
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise UserError(f"{out} is a folder; give the path of the .gguf file to write")
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} does not exist")
    return out


def _part(out: Path, tag: str) -> Path:
    return out.with_name(f".{out.stem}.{tag}.gguf")


def export_gguf_lora(adapter_dir: str | Path, base_model_dir: str | Path, out_path: str | Path) -> ExportResult:
    """Write ``adapter_dir`` (mlx-lm's adapter format) as a GGUF LoRA adapter for the GGUF of ``base_model_dir``."""
    adapter_dir, out = Path(adapter_dir), _prepare_out(out_path)
    settings = read_lora_settings(adapter_dir)
    plan = plan_gguf_lora(load_adapter_weights(adapter_dir), settings, base_config(Path(base_model_dir)), adapter_dir)
    part = _part(out, "part")
    try:
        write_gguf_lora(plan, part, name=adapter_dir.name)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return ExportResult(
        "gguf-lora", out, out.stat().st_size, plan.architecture, len(plan.tensors), rank=plan.rank, alpha=plan.alpha
    )


# -- fused export --------------------------------------------------------------------------------


def _has_byte_level(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("type") == "ByteLevel" or any(_has_byte_level(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_byte_level(v) for v in node)
    return False


def check_fusable(base_model_dir: Path) -> dict:
    """Refuse up front what mlx-lm's GGUF exporter cannot write correctly; returns tokenizer.json."""
    config = base_config(base_model_dir)
    model_type = str(config.get("model_type", ""))
    if model_type not in FUSABLE_MODEL_TYPES:
        raise UserError(
            f"fused GGUF export does not support the '{model_type or 'unknown'}' architecture "
            f"(only {', '.join(FUSABLE_MODEL_TYPES)})",
            hint="use --gguf-lora over the model's own GGUF, or chat with the adapter through MLX",
        )
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if config.get("head_dim") and hidden and heads and int(config["head_dim"]) != int(hidden) // int(heads):
        raise UserError(
            "fused GGUF export cannot write a model whose head size is not hidden_size / heads",
            hint="use --gguf-lora over the model's own GGUF",
        )
    tokenizer = read_json(base_model_dir / "tokenizer.json", "a model directory with a tokenizer.json")
    model = tokenizer.get("model") or {}
    if (
        model.get("type") != "BPE"
        or _has_byte_level(tokenizer.get("pre_tokenizer"))
        or _has_byte_level(tokenizer.get("decoder"))
    ):
        kind = "byte-level BPE" if _has_byte_level(tokenizer) else str(model.get("type", "unknown"))
        raise UserError(
            f"fused GGUF export supports SentencePiece-style BPE vocabularies only; this one is {kind} "
            "(llama.cpp would crash on the result)",
            hint="use --gguf-lora over the model's own GGUF instead",
        )
    return tokenizer


def merge_rank_scores(tokens: list[str], tokenizer: dict) -> list[float]:
    """SentencePiece scores for llama.cpp: a token made by BPE merge number i scores -i (earlier merges win)."""
    rank: dict[str, int] = {}
    for i, merge in enumerate((tokenizer.get("model") or {}).get("merges") or []):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, i)
    floor = len(rank)
    return [float(-rank[t]) if t in rank else float(-(floor + i)) for i, t in enumerate(tokens)]


def chat_template_of(model_dir: Path) -> str | None:
    """The tokenizer's chat template (``chat_template.jinja`` or ``tokenizer_config.json``), if any."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config_path = model_dir / "tokenizer_config.json"
    if not config_path.is_file():
        return None
    template = read_json(config_path, "a tokenizer").get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) and template.strip() else None


def repair_mlx_gguf(
    src: Path,
    dst: Path,
    tokenizer: dict,
    chat_template: str | None,
    on_progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """Copy mlx-lm's GGUF with INT32 token types, merge-order scores and the chat template; returns tensor count."""
    import gguf

    reader = gguf.GGUFReader(str(src))

    def contents(key: str) -> Any:
        field = reader.get_field(key)
        if field is None:
            raise UserError(f"{src.name} has no {key}: it is not a GGUF file mlx-lm wrote")
        return field.contents()

    arch = contents(gguf.Keys.General.ARCHITECTURE)
    tokens = contents(gguf.Keys.Tokenizer.LIST)
    types = [int(t) for t in contents(gguf.Keys.Tokenizer.TOKEN_TYPE)]
    array = gguf.GGUFValueType.ARRAY
    overrides: dict[str, tuple[Any, gguf.GGUFValueType, gguf.GGUFValueType | None]] = {
        gguf.Keys.Tokenizer.TOKEN_TYPE: (types, array, gguf.GGUFValueType.INT32),
        gguf.Keys.Tokenizer.SCORES: (merge_rank_scores(tokens, tokenizer), array, gguf.GGUFValueType.FLOAT32),
    }
    if chat_template:
        overrides[gguf.Keys.Tokenizer.CHAT_TEMPLATE] = (chat_template, gguf.GGUFValueType.STRING, None)
    writer = gguf.GGUFWriter(str(dst), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF.") or field.name in overrides:
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind, sub_type=field.types[-1] if kind == array else None)
    for key, (value, kind, sub_type) in overrides.items():
        writer.add_key_value(key, value, kind, sub_type=sub_type)
    total = sum(int(t.n_bytes) for t in reader.tensors)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    done = 0
    for tensor in reader.tensors:
        if cancel is not None:
            cancel.raise_if_cancelled()
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
        done += int(tensor.n_bytes)
        if on_progress:
            on_progress(Progress("writing", done, total, "Repairing the GGUF for llama.cpp"))
    writer.close()
    return len(reader.tensors)


def _fused_weights(base_model_dir: Path, adapter_dir: Path | None) -> tuple[dict, dict]:
    """The base (+ adapter, fused in) as 16/32-bit weights and its config, as mlx-lm's ``fuse`` builds them."""
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.utils import dequantize_model, load_adapters, load_model

    try:
        model, config = load_model(base_model_dir, lazy=True)
        if adapter_dir is not None:
            model = load_adapters(model, str(adapter_dir))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise UserError(f"the model could not be loaded with its adapter: {exc}") from exc
    fused = [(name, module.fuse(dequantize=True)) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if config.get("quantization") or config.get("quantization_config"):
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    config.setdefault("num_key_value_heads", config.get("num_attention_heads"))  # mlx-lm's writer needs it
    return dict(tree_flatten(model.parameters())), config


def _export_gguf(
    kind: str,
    base_model_dir: Path,
    adapter_dir: Path | None,
    out_path: str | Path,
    on_progress: ProgressFn | None,
    cancel: CancelToken | None,
) -> ExportResult:
    report = on_progress or (lambda _p: None)
    cancel = cancel or CancelToken()
    out = _prepare_out(out_path)
    report(Progress("checking", 0, None, f"Checking {base_model_dir.name}"))
    tokenizer = check_fusable(base_model_dir)
    if adapter_dir is not None:
        read_lora_settings(adapter_dir)
    raw, part = _part(out, "mlx"), _part(out, "part")
    try:
        report(Progress("fusing", 0, None, "Loading and fusing the adapter" if adapter_dir else "Loading the model"))
        weights, config = _fused_weights(base_model_dir, adapter_dir)
        cancel.raise_if_cancelled()
        report(Progress("converting", 0, None, "Writing the GGUF (mlx-lm)"))
        from mlx_lm.gguf import convert_to_gguf

        with contextlib.redirect_stdout(io.StringIO()):  # it prints; our stdout may carry --json
            convert_to_gguf(base_model_dir, weights, config, str(raw))
        del weights
        cancel.raise_if_cancelled()
        count = repair_mlx_gguf(raw, part, tokenizer, chat_template_of(base_model_dir), report, cancel)
        os.replace(part, out)
    except Cancelled:
        raise
    except OSError as exc:
        raise UserError(f"{out} could not be written: {exc}") from exc
    finally:
        raw.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    report(Progress("done", 1, 1, f"Wrote {out.name}"))
    arch = gguf_architecture(config).name
    return ExportResult(kind, out, out.stat().st_size, arch, count)


def export_fused_gguf(
    adapter_dir: str | Path,
    base_model_dir: str | Path,
    out_path: str | Path,
    *,
    on_progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Fuse the adapter into its base and write one GGUF model llama.cpp loads (16-bit; quantize it afterwards)."""
    return _export_gguf("fused-gguf", Path(base_model_dir), Path(adapter_dir), out_path, on_progress, cancel)


def export_base_gguf(
    base_model_dir: str | Path,
    out_path: str | Path,
    *,
    on_progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Write an MLX model directory as a GGUF (the base a GGUF LoRA adapter applies over)."""
    return _export_gguf("base-gguf", Path(base_model_dir), None, out_path, on_progress, cancel)
