"""GGUF facts read from real files the tests write, and the reader's bounds on bad files."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
from pathlib import Path

import gguf
import pytest

from macapp.core.models.facts import read_facts, read_facts_from_source
from macapp.core.models.ggml_types import FILE_TYPES, GGML_TYPES
from macapp.core.models.gguf_header import GGUFError, read_header_from_path
from macapp.core.models.quant_names import parse_quant_name
from macapp.core.models.tiny_gguf import build_vocab
from tests.conftest import SHAPES


def expected_params(spec) -> int:
    vocab = len(build_vocab(spec.vocab_size)[0])
    e, f, kv = spec.n_embd, spec.n_ff, spec.n_head_kv * spec.head_dim
    per_layer = 2 * e + e * e * 2 + 2 * kv * e + 3 * e * f
    return vocab * e * (1 if spec.tied else 2) + e + spec.n_layer * per_layer


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_facts_match_what_was_written(tiny_models, name):
    spec = SHAPES[name]
    facts = read_facts(tiny_models[name])
    assert facts.architecture == "llama"
    assert facts.parameters == expected_params(spec)
    assert facts.vocab_size == len(build_vocab(spec.vocab_size)[0])
    assert facts.context_length == spec.ctx
    assert (facts.n_layer, facts.n_embd, facts.n_ff) == (spec.n_layer, spec.n_embd, spec.n_ff)
    assert (facts.n_head, facts.n_head_kv, facts.head_dim) == (spec.n_head, spec.n_head_kv, spec.head_dim)
    assert facts.quantization == spec.qtype.upper()
    assert facts.tied_embeddings is spec.tied
    assert facts.has_chat_template is True
    assert facts.file_size == tiny_models[name].stat().st_size
    # every weight byte is accounted for: tensors fill the file after the header
    header = read_header_from_path(tiny_models[name])
    assert header.data_offset + facts.weights_bytes <= facts.file_size
    assert facts.file_size - header.data_offset - facts.weights_bytes < 32 * len(header.tensors)


def test_tensor_type_mix(tiny_models):
    facts = read_facts(tiny_models["gqa_q8_bigvocab"])
    assert set(facts.tensor_types) == {"Q8_0", "F32"}  # norms stay f32
    n_norms = 2 * SHAPES["gqa_q8_bigvocab"].n_layer + 1
    assert facts.tensor_types["F32"]["count"] == n_norms


class MemorySource:
    """A ByteSource over bytes in memory, reading only what is asked (as an HTTP range reader would)."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.size = data, name, len(data)
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        self.bytes_read += length
        return self.data[offset : offset + length]


def test_reader_works_on_a_byte_source_and_reads_only_the_header(tiny_models):
    path = tiny_models["gqa_q8_bigvocab"]
    source = MemorySource(path.read_bytes(), path.name)
    remote = read_facts_from_source(source)
    local = read_facts(path)
    assert remote.to_json() | {"path": ""} == local.to_json() | {"path": ""}
    header = read_header_from_path(path)
    # the header plus a few 64 KiB read-ahead chunks, never the weights
    assert source.bytes_read < header.data_offset + 3 * 65536 < source.size // 4


def test_kind_from_metadata(tmp_path):
    from macapp.core.models.tiny_gguf import write_tiny_gguf

    instruct = read_facts(write_tiny_gguf(tmp_path / "a.gguf", finetune="Instruct"))
    base = read_facts(write_tiny_gguf(tmp_path / "b.gguf", name="Tiny-7B-Base", chat_template=None))
    assert instruct.kind == "instruct" and "general.finetune" in instruct.kind_reason
    assert base.kind == "base"
    assert base.has_chat_template is False


def test_ggml_type_table_matches_gguf_package():
    for qtype, (block, size) in gguf.constants.GGML_QUANT_SIZES.items():
        assert GGML_TYPES[int(qtype)][1:] == (block, size), qtype.name
    for ftype in gguf.LlamaFileType:
        if ftype.name.startswith("MOSTLY_") or ftype.name == "ALL_F32":
            assert FILE_TYPES[int(ftype)] == ftype.name.split("_", 1)[1], ftype.name


@pytest.mark.parametrize(
    "file_name, name, bits, family, variant",
    [
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M", 4, "k-quant", "medium"),
        ("qwen2.5-7b-instruct-q5_k_s.gguf", "Q5_K_S", 5, "k-quant", "small"),
        ("model.IQ2_XXS.gguf", "IQ2_XXS", 2, "i-quant", "extra-extra-small"),
        ("phi-3-mini-Q8_0.gguf", "Q8_0", 8, "legacy", None),
        ("gemma-2b-it-f16.gguf", "F16", None, "float", None),
        ("x-BF16-00001-of-00002.gguf", "BF16", None, "float", None),
        ("smollm-IQ4_NL.gguf", "IQ4_NL", 4, "i-quant", "non-linear"),
        ("m-Q6_K.gguf", "Q6_K", 6, "k-quant", None),
    ],
)
def test_quant_name_from_file_name(file_name, name, bits, family, variant):
    q = parse_quant_name(file_name)
    assert (q.name, q.bits, q.family, q.variant) == (name, bits, family, variant)


def test_no_quant_name():
    assert parse_quant_name("my-model.gguf") is None


# --- bad files: each fails fast with a clear GGUFError, allocating next to nothing ----------------


def _header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def _kv_string(key: str, length: int, payload: bytes = b"") -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, length) + payload


def _bad_files(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    files = {
        "empty": (b"", "empty"),
        "random": (os.urandom(4096), "does not start with 'GGUF'"),
        "truncated_1k": (data[:1024], "truncated"),
        "truncated_half": (data[: len(data) // 2], "truncated"),
        "version_99": (_header(0, 0, version=99), "unsupported GGUF version 99"),
        "version_1": (_header(0, 0, version=1), "version 1"),
        "billions_of_tensors": (_header(3_000_000_000, 1) + b"\0" * 64, "tensors"),
        "huge_kv_count": (_header(0, 2**63) + b"\0" * 64, "metadata entries"),
        "string_2_62": (_header(0, 1) + _kv_string("general.name", 2**62, b"x" * 32), "truncated inside the header"),
        "array_2_40": (
            _header(0, 1) + struct.pack("<Q", 4) + b"toks" + struct.pack("<IIQ", 9, 8, 2**40) + b"\0" * 64,
            "truncated or corrupt",
        ),
        "old_ggml": (b"tjgg" + b"\0" * 64, "old GGML"),
    }
    out = {}
    for name, (content, reason) in files.items():
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(content)
        out[name] = (path, reason)
    return out


def test_bad_files_fail_fast_and_clearly(tmp_path, tiny_models):
    for name, (path, reason) in _bad_files(tmp_path, tiny_models["gqa_q8_bigvocab"]).items():
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(GGUFError) as err:
            read_facts(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        message = str(err.value)
        assert reason in message, (name, message)
        assert path.name in message and "\n" not in message
        assert elapsed < 0.2, (name, elapsed)
        assert peak < 2 * 1024 * 1024, (name, peak)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        read_facts(tmp_path / "nope.gguf")
    with pytest.raises(GGUFError, match="folder"):
        read_facts(tmp_path)
