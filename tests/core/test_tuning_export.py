"""GGUF LoRA and fused GGUF export, checked against real mlx-lm and real llama.cpp on a tiny model.

The tests build a tiny llama (GQA: 4 query heads, 2 KV heads) as an mlx-lm directory, train a real
LoRA adapter on every linear layer, write the GGUF of the same base, and compare llama.cpp's
last-token logits and greedy tokens with mlx-lm's on the same token ids.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from macapp.core.engines.base import SamplingSettings
from macapp.core.engines.llama_engine import LlamaCppEngine
from macapp.core.errors import UserError
from macapp.core.models.estimate import RuntimeSettings
from macapp.core.tuning import gguf_lora
from macapp.core.tuning.export import export_base_gguf, export_fused_gguf, export_gguf_lora
from macapp.core.tuning.tiny_mlx import write_tiny_mlx
from tests.fixtures.tiny_adapter import ANSWER, QUESTION, train_tiny_adapter

LOGIT_TOLERANCE = 5e-3  # measured ≈ 1e-3 (f32 weights on both sides); the adapter moves logits by > 1
GREEDY_STEPS = 12
CHAT = [{"role": "user", "content": QUESTION}]
OTHER = "<|im_start|>user\nhello world, what is the model?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    base = write_tiny_mlx(root / "base", heads=4, kv_heads=2)
    adapter = train_tiny_adapter(base, root / "adapter")
    return {
        "root": root,
        "base": base,
        "adapter": adapter,
        "base_gguf": export_base_gguf(base, root / "base.gguf").path,
        "lora": export_gguf_lora(adapter, base, root / "lora.gguf"),
        "fused": export_fused_gguf(adapter, base, root / "fused.gguf").path,
    }


@pytest.fixture(scope="module")
def mlx_models(built):
    from mlx_lm import load

    with_adapter, tokenizer = load(str(built["base"]), adapter_path=str(built["adapter"]))
    without, _ = load(str(built["base"]))
    return {"adapter": with_adapter, "base": without, "tokenizer": tokenizer}


def mlx_logits(model, ids: list[int]) -> np.ndarray:
    import mlx.core as mx

    return np.array(model(mx.array([ids]))[0, -1])


def mlx_greedy(model, ids: list[int], steps: int = GREEDY_STEPS) -> list[int]:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    return [int(token) for token, _ in generate_step(mx.array(ids), model, max_tokens=steps)]


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm.reset()
    llm.eval(ids)
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()


def llama_greedy(llm, ids: list[int], steps: int = GREEDY_STEPS) -> list[int]:
    out, logits = [], llama_logits(llm, ids)
    for _ in range(steps):
        out.append(int(np.argmax(logits)))
        logits = llama_logits(llm, ids + out)
    return out


def engine_for(path, adapter=None) -> LlamaCppEngine:
    engine = LlamaCppEngine(path, RuntimeSettings(n_ctx=256), adapter=adapter)
    for _ in engine.load():
        pass
    return engine


@pytest.fixture(scope="module")
def llama_base(built):
    engine = engine_for(built["base_gguf"])
    yield engine
    engine.unload()


def prompts(mlx_models) -> list[list[int]]:
    tok = mlx_models["tokenizer"]
    chat = tok.apply_chat_template(CHAT, add_generation_prompt=True)
    return [list(chat), tok.encode(OTHER, add_special_tokens=False)]


def test_gguf_lora_file_has_llama_cpp_metadata_names_and_shapes(built):
    import gguf

    reader = gguf.GGUFReader(str(built["lora"].path))
    field = reader.get_field
    assert field("general.type").contents() == "adapter" and field("adapter.type").contents() == "lora"
    assert field("general.architecture").contents() == "llama"
    assert field("adapter.lora.alpha").contents() == pytest.approx(10.0 * 4)  # mlx scale × rank
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # ggml order: ne0 first
    assert len(shapes) == 2 * 7 * 2 == built["lora"].tensors
    assert shapes["blk.0.attn_q.weight.lora_a"] == [64, 4] and shapes["blk.0.attn_q.weight.lora_b"] == [4, 64]
    assert shapes["blk.1.attn_k.weight.lora_b"] == [4, 32]  # 2 KV heads × head dim 16
    assert shapes["blk.1.ffn_down.weight.lora_a"] == [128, 4] and shapes["blk.1.ffn_down.weight.lora_b"] == [4, 64]


def test_llama_cpp_tokenizes_like_the_mlx_tokenizer(llama_base, mlx_models):
    tok = mlx_models["tokenizer"]
    for text in (OTHER, "Ünïcode and emoji 🍏 in the orchard", "a line\nand another line"):
        assert llama_base.tokenize(text) == tok.encode(text, add_special_tokens=False), text


def test_llama_cpp_with_the_gguf_lora_matches_mlx_with_the_adapter(built, llama_base, mlx_models):
    llm = llama_base.llama
    llama_base.set_adapter(built["lora"].path)
    try:
        for ids in prompts(mlx_models):
            expected = mlx_logits(mlx_models["adapter"], ids)
            moved = np.abs(expected - mlx_logits(mlx_models["base"], ids)).max()
            diff = np.abs(llama_logits(llm, ids) - expected).max()
            assert diff < LOGIT_TOLERANCE < moved / 100, (diff, moved)
            assert llama_greedy(llm, ids) == mlx_greedy(mlx_models["adapter"], ids)
        llama_base.set_adapter(None)
        for ids in prompts(mlx_models):
            assert np.abs(llama_logits(llm, ids) - mlx_logits(mlx_models["base"], ids)).max() < LOGIT_TOLERANCE
            assert llama_greedy(llm, ids) != mlx_greedy(mlx_models["adapter"], ids)
    finally:
        llama_base.set_adapter(None)


def test_adapter_switch_in_a_chat_drops_the_cached_prefix(built, llama_base):
    greedy = SamplingSettings(temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=16, seed=0)

    def answer() -> str:
        stream = llama_base.stream_chat(CHAT, greedy)
        while True:
            try:
                next(stream)
            except StopIteration as done:
                return done.value.text

    plain = answer()
    llama_base.set_adapter(built["lora"].path)
    tuned = answer()
    assert tuned == ANSWER != plain
    llama_base.set_adapter(None)
    assert answer() == plain  # not a continuation of the adapter's KV cache
    llama_base.set_adapter(built["lora"].path, scale=0.0)  # a zero scale is no adapter
    assert answer() == plain


def test_adapter_given_to_the_engine_applies_at_load(built):
    engine = engine_for(built["base_gguf"], adapter=built["lora"].path)
    try:
        stream = engine.stream_chat(CHAT, SamplingSettings(temperature=0.0, top_k=1, repeat_penalty=1.0, seed=0))
        while True:
            try:
                next(stream)
            except StopIteration as done:
                result = done.value
                break
        assert result.text == ANSWER and result.finish_reason == "stop"
    finally:
        engine.unload()


def test_the_gguf_lora_over_a_q8_0_quantized_base_gives_the_same_greedy_tokens(built, mlx_models, tmp_path):
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    quantized = tmp_path / "base-q8_0.gguf"
    assert (
        llama_cpp.llama_model_quantize(str(built["base_gguf"]).encode(), str(quantized).encode(), ctypes.byref(params))
        == 0
    )
    engine = engine_for(quantized, adapter=built["lora"].path)
    try:
        for ids in prompts(mlx_models):
            assert np.abs(llama_logits(engine.llama, ids) - mlx_logits(mlx_models["adapter"], ids)).max() < 0.1
            assert llama_greedy(engine.llama, ids) == mlx_greedy(mlx_models["adapter"], ids)
    finally:
        engine.unload()


def test_without_the_q_k_permutation_llama_cpp_disagrees(built, llama_base, mlx_models, monkeypatch):
    monkeypatch.setitem(gguf_lora.ARCHITECTURES, "llama", gguf_lora.GgufArchitecture("llama", permute_qk=False))
    unpermuted = export_gguf_lora(built["adapter"], built["base"], built["root"] / "unpermuted.gguf").path
    llama_base.set_adapter(unpermuted)
    try:
        ids = prompts(mlx_models)[1]
        assert np.abs(llama_logits(llama_base.llama, ids) - mlx_logits(mlx_models["adapter"], ids)).max() > 0.05
    finally:
        llama_base.set_adapter(None)


def test_fused_gguf_loads_in_llama_cpp_and_matches_mlx_with_the_adapter(built, mlx_models):
    import gguf

    reader = gguf.GGUFReader(str(built["fused"]))
    assert reader.get_field("tokenizer.ggml.token_type").types[-1] == gguf.GGUFValueType.INT32
    assert "<|im_start|>" in reader.get_field("tokenizer.chat_template").contents()
    engine = engine_for(built["fused"])
    try:
        for ids in prompts(mlx_models):
            assert (
                np.abs(llama_logits(engine.llama, ids) - mlx_logits(mlx_models["adapter"], ids)).max() < LOGIT_TOLERANCE
            )
            assert llama_greedy(engine.llama, ids) == mlx_greedy(mlx_models["adapter"], ids)
    finally:
        engine.unload()


def test_a_gguf_lora_for_another_base_is_refused_by_the_engine(built, tiny_models):
    engine = engine_for(tiny_models["mha_f32"])
    try:
        with pytest.raises(UserError, match="cannot be applied") as err:
            engine.set_adapter(built["lora"].path)
        assert "shape" in str(err.value) or "mismatch" in str(err.value)
        assert engine.stream_chat(CHAT, SamplingSettings(max_tokens=3, seed=0)) is not None  # still usable
    finally:
        engine.unload()


# -- refusals ------------------------------------------------------------------------------------


def _variant(built, tmp_path, name: str, edit_config=None, edit_tokenizer=None):
    copy = shutil.copytree(built["base"], tmp_path / name)
    if edit_config:
        config = json.loads((copy / "config.json").read_text())
        edit_config(config)
        (copy / "config.json").write_text(json.dumps(config))
    if edit_tokenizer:
        tokenizer = json.loads((copy / "tokenizer.json").read_text())
        edit_tokenizer(tokenizer)
        (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    return copy


def test_unsupported_architecture_is_refused_clearly(built, tmp_path):
    qwen = _variant(built, tmp_path, "qwen", edit_config=lambda c: c.update(model_type="qwen2"))
    with pytest.raises(UserError, match="'qwen2' architecture"):
        export_gguf_lora(built["adapter"], qwen, tmp_path / "a.gguf")
    with pytest.raises(UserError, match="'qwen2' architecture"):
        export_fused_gguf(built["adapter"], qwen, tmp_path / "b.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def test_byte_level_vocabulary_is_refused_for_fused_export(built, tmp_path):
    def byte_level(tok):
        tok["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}

    bpe = _variant(built, tmp_path, "bytelevel", edit_tokenizer=byte_level)
    with pytest.raises(UserError, match="byte-level BPE") as err:
        export_fused_gguf(built["adapter"], bpe, tmp_path / "fused.gguf")
    assert "--gguf-lora" in str(err.value)


def test_adapter_for_another_base_or_of_another_kind_is_refused(built, tmp_path):
    wider = write_tiny_mlx(tmp_path / "wider", hidden=96, heads=4, kv_heads=2)
    with pytest.raises(UserError, match="does not fit this base model"):
        export_gguf_lora(built["adapter"], wider, tmp_path / "a.gguf")
    dora = shutil.copytree(built["adapter"], tmp_path / "dora")
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "fine_tune_type": "dora"}))
    with pytest.raises(UserError, match="'dora' adapter"):
        export_gguf_lora(dora, built["base"], tmp_path / "b.gguf")
    with pytest.raises(UserError, match="adapter_config.json is missing"):
        export_gguf_lora(tmp_path, built["base"], tmp_path / "c.gguf")


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_exports_by_registry_name_and_by_folder(built, tmp_path, capsys):
    from macapp.cli.main import main
    from macapp.core.tuning.adapters import adapter_path, base_identity, write_manifest

    registered = shutil.copytree(built["adapter"], adapter_path("sky"))
    config = json.loads((registered / "adapter_config.json").read_text())
    (registered / "adapter_config.json").write_text(json.dumps({**config, "model": "not/a/folder"}))
    write_manifest(
        "sky",
        base_path=str(built["base"]),
        base_id=base_identity(built["base"]),
        dataset_sha256="",
        settings={},
        train_loss=None,
        val_loss=None,
        iterations=60,
    )
    assert main(["export", "sky", "--gguf-lora", str(tmp_path / "sky.gguf"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "gguf-lora" and out["rank"] == 4 and out["alpha"] == 40.0 and out["tensors"] == 28
    assert (tmp_path / "sky.gguf").stat().st_size == out["size_bytes"]

    assert main(["export", str(built["adapter"]), "--fused-gguf", str(tmp_path / "f.gguf"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "fused-gguf"

    assert main(["export", "nope", "--gguf-lora", str(tmp_path / "x.gguf")]) == 1
    assert "no adapter named 'nope'" in capsys.readouterr().err.lower()
    (registered / "orchard.json").unlink()
    (registered / "adapter_config.json").write_text(json.dumps(config | {"model": "not/a/folder"}))
    assert main(["export", str(registered), "--gguf-lora", str(tmp_path / "y.gguf")]) == 1
    assert "pass --base" in capsys.readouterr().err
