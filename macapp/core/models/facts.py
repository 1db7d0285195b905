"""What a GGUF file is: the facts ``macapp inspect`` shows and the memory estimate needs."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from macapp.core.models.ggml_types import FILE_TYPES, type_name
from macapp.core.models.gguf_header import (
    ArrayInfo,
    ByteSource,
    GGUFError,
    GGUFHeader,
    read_header,
    read_header_from_path,
)
from macapp.core.models.quant_names import QuantName, parse_quant_name

# arch -> (pattern, dense_first, default n_swa or None when the file must say)
# Mirrors llama.cpp's per-architecture load_swa_pattern() calls (src/models/*.cpp).
_SWA_ARCHS: dict[str, tuple[int, bool, int | None]] = {
    "gemma2": (2, False, 4096),
    "gemma3": (6, False, None),
    "gemma3n": (5, False, None),
    "gemma-embedding": (6, False, None),
    "cohere2": (4, False, None),
    "cohere2moe": (4, True, None),
    "gpt-oss": (2, False, None),
    "olmo2": (4, False, None),
    "exaone4": (4, False, None),
    "exaone-moe": (4, False, None),
    "llama4": (4, False, 8192),
    "plamo3": (8, False, None),
    "smallthinker": (4, True, None),
    "afmoe": (4, False, None),
}
_INSTRUCT_WORDS = re.compile(r"(?<![a-z])(instruct|chat|it|rlhf|dpo|sft|assistant|thinking|r1)(?![a-z])", re.I)
_BASE_WORDS = re.compile(r"(?<![a-z])(base|pretrain(ed)?)(?![a-z])", re.I)


@dataclass
class ModelFacts:
    """Everything we know about a GGUF model from its header (no weights read)."""

    path: str
    file_name: str
    file_size: int
    architecture: str
    name: str
    parameters: int
    vocab_size: int
    context_length: int
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    key_length: int
    value_length: int
    n_head_kv_per_layer: list[int]
    sliding_window: int  # 0 when the model has no sliding-window layers
    swa_layers: list[bool]
    n_expert: int
    n_expert_used: int
    quantization: str  # llama.cpp file type, e.g. "Q4_K_M"
    tensor_types: dict[str, dict[str, int]]  # type -> {"count", "bytes"}
    weights_bytes: int
    layer_bytes: list[int]  # tensor bytes of blk.i.*
    output_bytes: int  # output.weight (or the tied token embedding that doubles as it)
    tied_embeddings: bool
    has_chat_template: bool
    kind: str  # "instruct" | "base" | "unknown"
    kind_reason: str
    tokenizer_model: str
    n_merges: int = 0  # BPE merges (llama.cpp keeps a lookup table of them)
    quant_from_filename: QuantName | None = None
    gguf_version: int = 3
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelFacts:
        """The inverse of ``to_json`` (caches store facts as JSON)."""
        data = dict(data)
        q = data.get("quant_from_filename")
        if q:
            q = {k: v for k, v in q.items() if k != "description"}
            data["quant_from_filename"] = QuantName(**q)
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["quant_from_filename"] = (
            dict(asdict(self.quant_from_filename), description=self.quant_from_filename.describe())
            if self.quant_from_filename
            else None
        )
        return data


def _int(meta: dict[str, Any], key: str, default: int = 0) -> int:
    value = meta.get(key, default)
    if isinstance(value, list):
        value = max(value) if value else default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


def _count(value: Any) -> int:
    if isinstance(value, ArrayInfo):
        return value.count
    return len(value) if isinstance(value, list) else 0


def _per_layer(meta: dict[str, Any], key: str, n_layer: int, default: int) -> list[int]:
    value = meta.get(key)
    if isinstance(value, list) and len(value) == n_layer and all(isinstance(v, int) for v in value):
        return [int(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [int(value)] * n_layer
    return [default] * n_layer


def sliding_window_layers(meta: dict[str, Any], arch: str, n_layer: int) -> tuple[int, list[bool]]:
    """(window, per-layer SWA flags) as llama.cpp derives them for ``arch`` from the metadata."""
    rule = _SWA_ARCHS.get(arch)
    n_swa = _int(meta, f"{arch}.attention.sliding_window", 0)
    if rule is None or n_layer == 0:
        return 0, [False] * n_layer
    pattern, dense_first, default_window = rule
    if not n_swa:
        if default_window is None:
            return 0, [False] * n_layer
        n_swa = default_window
    explicit = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(explicit, list) and len(explicit) == n_layer:
        return n_swa, [bool(v) for v in explicit]
    if isinstance(explicit, int) and not isinstance(explicit, bool):
        pattern = explicit
    if pattern == 0:
        layers = [True] * n_layer
    elif dense_first:
        layers = [il % pattern != 0 for il in range(n_layer)]
    else:
        layers = [il % pattern < pattern - 1 for il in range(n_layer)]
    return n_swa, layers


def _kind(meta: dict[str, Any], file_name: str, has_template: bool) -> tuple[str, str]:
    for key in ("general.finetune", "general.name", "general.basename"):
        text = meta.get(key)
        if isinstance(text, str) and _INSTRUCT_WORDS.search(text):
            return "instruct", f"{key} is {text!r}"
    tags = meta.get("general.tags")
    if isinstance(tags, list) and any(isinstance(t, str) and _INSTRUCT_WORDS.search(t) for t in tags):
        return "instruct", "general.tags name a chat/instruct model"
    if _INSTRUCT_WORDS.search(Path(file_name).stem):
        return "instruct", "the file name says so"
    for key in ("general.finetune", "general.name"):
        text = meta.get(key)
        if isinstance(text, str) and _BASE_WORDS.search(text):
            return "base", f"{key} is {text!r}"
    if _BASE_WORDS.search(Path(file_name).stem):
        return "base", "the file name says so"
    if has_template:
        return "unknown", "has a chat template, but the metadata does not say base or instruct"
    return "unknown", "the metadata does not say"


def facts_from_header(header: GGUFHeader, path: str, file_name: str) -> ModelFacts:
    """Derive ModelFacts from a parsed header; raises GGUFError when key facts are missing."""
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GGUFError(f"{file_name} is not a usable model: it does not name its architecture")
    n_layer = _int(meta, f"{arch}.block_count")
    n_embd = _int(meta, f"{arch}.embedding_length")
    if n_layer <= 0 or n_layer > 4096:
        raise GGUFError(f"{file_name} is not a usable model: {arch}.block_count is {meta.get(f'{arch}.block_count')!r}")
    n_head = _int(meta, f"{arch}.attention.head_count")
    kv_layers = _per_layer(meta, f"{arch}.attention.head_count_kv", n_layer, n_head)
    n_head_kv = max(kv_layers) if kv_layers else 0
    head_dim_default = n_embd // n_head if n_head else 0
    key_length = _int(meta, f"{arch}.attention.key_length", head_dim_default)
    value_length = _int(meta, f"{arch}.attention.value_length", head_dim_default)

    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = _int(meta, f"{arch}.vocab_size")
    if not vocab:
        vocab = _count(tokens)
    embd = header.tensor("token_embd.weight")
    if not vocab and embd is not None and len(embd.shape) == 2:
        vocab = embd.shape[1]

    ctx = _int(meta, f"{arch}.context_length")
    if ctx <= 0 or ctx > 1 << 24:
        found = meta.get(f"{arch}.context_length")
        raise GGUFError(f"{file_name} is not a usable model: its context length is {found!r}")

    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    layer_bytes = [0] * n_layer
    for t in header.tensors:
        counts[type_name(t.ggml_type)] += 1
        sizes[type_name(t.ggml_type)] += t.n_bytes
        m = re.match(r"blk\.(\d+)\.", t.name)
        if m and int(m.group(1)) < n_layer:
            layer_bytes[int(m.group(1))] += t.n_bytes
    output = header.tensor("output.weight")
    tied = output is None
    out_tensor = output or embd
    ftype = meta.get("general.file_type")
    if isinstance(ftype, int):
        quant = FILE_TYPES.get(ftype, f"type{ftype}")
    else:  # older files: name the quantization after the type holding the most bytes
        quant = max(sizes, key=sizes.__getitem__) if sizes else "?"
    template = meta.get("tokenizer.chat_template")
    has_template = isinstance(template, str) and bool(template.strip())
    kind, reason = _kind(meta, file_name, has_template)
    n_swa, swa_layers = sliding_window_layers(meta, arch, n_layer)
    warnings = []
    if not n_head:
        warnings.append("no attention heads (a recurrent model?): the KV estimate is zero")
    return ModelFacts(
        path=path,
        file_name=file_name,
        file_size=header.file_size,
        architecture=arch,
        name=str(meta.get("general.name") or Path(file_name).stem),
        parameters=sum(t.n_elements for t in header.tensors),
        vocab_size=vocab,
        context_length=ctx,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=_int(meta, f"{arch}.feed_forward_length"),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=key_length,
        key_length=key_length,
        value_length=value_length,
        n_head_kv_per_layer=kv_layers,
        sliding_window=n_swa,
        swa_layers=swa_layers,
        n_expert=_int(meta, f"{arch}.expert_count"),
        n_expert_used=_int(meta, f"{arch}.expert_used_count"),
        quantization=quant,
        tensor_types={k: {"count": counts[k], "bytes": sizes[k]} for k in sorted(counts, key=lambda k: -sizes[k])},
        weights_bytes=sum(sizes.values()),
        layer_bytes=layer_bytes,
        output_bytes=out_tensor.n_bytes if out_tensor else 0,
        tied_embeddings=tied,
        has_chat_template=has_template,
        kind=kind,
        kind_reason=reason,
        tokenizer_model=str(meta.get("tokenizer.ggml.model", "")),
        n_merges=_count(meta.get("tokenizer.ggml.merges")),
        quant_from_filename=parse_quant_name(file_name),
        gguf_version=header.version,
        warnings=warnings,
    )


def read_facts(path: str | os.PathLike[str]) -> ModelFacts:
    """Facts of a local .gguf file (header only; fast and bounded)."""
    p = Path(path)
    return facts_from_header(read_header_from_path(p), str(p), p.name)


def read_facts_from_source(source: ByteSource, path: str = "") -> ModelFacts:
    """Facts from any ByteSource (the hub passes an HTTP range reader)."""
    return facts_from_header(read_header(source), path or source.name, source.name)
