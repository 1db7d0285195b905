"""Build tiny random-weight llama-architecture GGUF models that llama.cpp really loads.

The tests build every model they load with it, and ``macapp selftest`` builds one to prove that a
bundle's llama.cpp works; it ships in the package for that.

Shapes cover what the estimate must get right: MHA and GQA, tied embeddings (no
``output.weight``), f32 / f16 / q8_0 weights, a larger vocabulary (filler word pieces),
bigger bodies for the accuracy benchmark, and ``arch="gemma2"`` (sliding-window attention on
every other layer, post-norms, tied output) for the SWA part of the KV cache. The tokenizer
is SentencePiece-style with byte fallback, so any UTF-8 text tokenizes. Hidden dim 0 of every token embedding is 1.0 and
``output.weight[:, 0]`` is -1 for byte/control tokens, so sampling emits printable pieces.

Usage as a script: ``python -m macapp.core.models.tiny_gguf OUT.gguf [--qtype q8_0 ...]``.
"""

from __future__ import annotations

import argparse
import string
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = [
    "the",
    "a",
    "and",
    "hello",
    "world",
    "model",
    "chat",
    "is",
    "of",
    "to",
    "in",
    "it",
    "you",
    "I",
    "what",
    "how",
    "document",
    "pdf",
    "answer",
    "question",
]
FILE_TYPES = {"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16, "q8_0": LlamaFileType.MOSTLY_Q8_0}


@dataclass
class TinySpec:
    """Shape and metadata of a tiny model. Defaults: 2 layers, 64-d, MHA, f32, ChatML template."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 2
    n_head_kv: int = 2
    n_ff: int = 128
    ctx: int = 2048
    qtype: str = "f32"  # f32 | f16 | q8_0
    tied: bool = False  # no output.weight: llama.cpp reuses token_embd
    vocab_size: int = 0  # 0 = the minimal vocabulary; larger adds filler word pieces
    chat_template: str | None = CHATML
    name: str = "tiny-random-llama"
    finetune: str | None = None
    seed: int = 0
    arch: str = "llama"  # llama | gemma2
    sliding_window: int = 0  # gemma2: tokens each SWA layer attends to
    extra_kv: dict = field(default_factory=dict)
    favour_token: int | None = None  # this token id wins every step (e.g. 4 = <|im_end|>: answers end at once)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def build_vocab(target: int = 0) -> tuple[list[str], list[float], list[int]]:
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(piece: str, score: float, ttype: TokenType) -> None:
        tokens.append(piece)
        scores.append(float(score))
        types.append(int(ttype))

    for piece, ttype in (
        ("<unk>", TokenType.UNKNOWN),
        ("<s>", TokenType.CONTROL),
        ("</s>", TokenType.CONTROL),
        ("<|im_start|>", TokenType.CONTROL),
        ("<|im_end|>", TokenType.CONTROL),
    ):
        add(piece, 0.0, ttype)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, TokenType.BYTE)
    pieces = ["\u2581", *string.ascii_letters, *string.digits, *string.punctuation]
    for word in WORDS:  # SPM merges need every intermediate piece: ▁h, ▁he, ▁hel, ...
        full = "\u2581" + word
        pieces += [full[:k] for k in range(2, len(full) + 1)]
    seen = set(tokens)
    score = -1.0
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            add(piece, score, TokenType.NORMAL)
            score -= 1.0
    i = 0
    while len(tokens) < target:  # filler pieces that never merge from real text
        piece = f"\u2581~{i:x}~"
        i += 1
        if piece not in seen:
            seen.add(piece)
            add(piece, score, TokenType.NORMAL)
            score -= 1.0
    return tokens, scores, types


def write_tiny_gguf(path: str | Path, spec: TinySpec | None = None, **overrides) -> Path:
    """Write a model for ``spec`` (fields may also be given as keyword overrides) and return its path."""
    spec = spec or TinySpec()
    for key, value in overrides.items():
        setattr(spec, key, value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = build_vocab(spec.vocab_size)
    n_vocab = len(tokens)
    rng = np.random.default_rng(spec.seed)

    gemma = spec.arch == "gemma2"
    if spec.arch not in ("llama", "gemma2"):
        raise ValueError(f"unsupported arch {spec.arch!r}")
    w = GGUFWriter(str(path), spec.arch)
    w.add_name(spec.name)
    if spec.finetune:
        w.add_string("general.finetune", spec.finetune)
    w.add_context_length(spec.ctx)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_rope_dimension_count(spec.head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    if gemma:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
        w.add_sliding_window(spec.sliding_window or 256)
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    w.add_file_type(FILE_TYPES[spec.qtype])
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_eot_token_id(4)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if spec.chat_template is not None:
        w.add_chat_template(spec.chat_template)
    for key, value in spec.extra_kv.items():
        if isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_uint32(key, int(value))

    def mat(rows: int, cols: int) -> np.ndarray:  # numpy (out, in); ggml stores it reversed
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32)

    def put(name: str, arr: np.ndarray, is_norm: bool = False) -> None:
        if is_norm or spec.qtype == "f32":
            w.add_tensor(name, arr.astype(np.float32))
        elif spec.qtype == "f16":
            w.add_tensor(name, arr.astype(np.float16))
        else:
            q = gguf.quants.quantize(arr, GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=GGMLQuantizationType.Q8_0)

    e, f, kv = spec.n_embd, spec.n_ff, spec.n_head_kv * spec.head_dim
    normal = np.array([t == TokenType.NORMAL for t in types])
    emb = mat(n_vocab, e)
    emb[:, 0] = 1.0
    tied = spec.tied or gemma  # gemma2 always reuses the token embedding as output
    if tied:  # the embedding doubles as the output matrix: give printable tokens the edge
        emb[:, 1] = np.where(normal, 0.5, -0.5)
        if spec.favour_token is not None:
            raise ValueError("favour_token needs an untied output matrix")
    put("token_embd.weight", emb)
    put("output_norm.weight", np.ones(e, np.float32), is_norm=True)
    if not tied:
        out = mat(n_vocab, e)
        out[:, 0] = np.where(normal, 0.0, -1.0)
        if spec.favour_token is not None:
            out[spec.favour_token, 0] = 4.0
        put("output.weight", out)
    for i in range(spec.n_layer):
        p = f"blk.{i}."
        put(p + "attn_norm.weight", np.ones(e, np.float32), is_norm=True)
        put(p + "attn_q.weight", mat(e, e))
        put(p + "attn_k.weight", mat(kv, e))
        put(p + "attn_v.weight", mat(kv, e))
        put(p + "attn_output.weight", mat(e, e))
        put(p + "ffn_norm.weight", np.ones(e, np.float32), is_norm=True)
        if gemma:
            put(p + "post_attention_norm.weight", np.ones(e, np.float32), is_norm=True)
            put(p + "post_ffw_norm.weight", np.ones(e, np.float32), is_norm=True)
        put(p + "ffn_gate.weight", mat(f, e))
        put(p + "ffn_up.weight", mat(f, e))
        put(p + "ffn_down.weight", mat(e, f))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--qtype", default="f32", choices=sorted(FILE_TYPES))
    for name in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "ctx", "vocab_size", "seed"):
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(TinySpec(), name))
    ap.add_argument("--tied", action="store_true")
    args = vars(ap.parse_args(argv))
    out = args.pop("out")
    print(write_tiny_gguf(out, TinySpec(**args)))


if __name__ == "__main__":
    main()
