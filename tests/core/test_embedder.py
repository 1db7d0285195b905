"""The bundled embedder (all-MiniLM-L6-v2 in llama.cpp) against sentence-transformers' own vectors.

It needs the GGUF that ``make setup`` builds; without it these tests fail (they never skip), because
an app without its embedder cannot index documents.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from macapp.core.docs.embedder import LlamaEmbedder, bundled_embedder_path, load_embedder
from macapp.core.docs.types import EmbeddingModel
from macapp.core.errors import UserError
from macapp.core.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"
LONG_TEXT = " ".join(["Apples and pears grow in the old orchard every autumn."] * 200)  # 2,000 words


@pytest.fixture(scope="module")
def bundled() -> Path:
    path = bundled_embedder_path()
    if not path.is_file():
        pytest.fail(f"the bundled embedder {path} is missing: run `make setup` to build it")
    return path


@pytest.fixture(scope="module")
def embedder(bundled) -> LlamaEmbedder:
    return load_embedder(str(bundled))


def test_matches_sentence_transformers(embedder):
    sentences = json.loads((DATA / "minilm_reference.json").read_text(encoding="utf-8"))
    reference = np.load(DATA / "minilm_reference.npy")
    vectors = embedder.embed(sentences)
    assert vectors.shape == reference.shape == (len(sentences), 384)
    for sentence, ours, theirs in zip(sentences, vectors, reference):
        cosine = float(ours @ theirs / np.linalg.norm(theirs))
        assert cosine >= 0.999, f"{sentence!r}: cosine {cosine:.6f} to sentence-transformers"


def test_protocol_and_model_facts(embedder):
    model: EmbeddingModel = embedder  # the protocol is not runtime-checkable: check its members
    assert all(hasattr(model, member) for member in ("name", "dim", "max_tokens", "embed", "count_tokens"))
    assert (embedder.dim, embedder.max_tokens) == (384, 256)
    assert embedder.name.startswith("all-MiniLM-L6-v2@")


def test_batch_equals_one_by_one_and_unit_norm(embedder):
    texts = [
        "The cat sits on the mat.",
        "short",
        "A longer sentence about quarterly revenue and income.",
        LONG_TEXT,
        "",
        "Ein Satz auf Deutsch.",
        "cat",
    ]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([text])[0] for text in texts])
    assert together.dtype == np.float32 and together.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Flash attention accumulates in f16 over the whole batch, so batch-mates move a vector by ~1e-4.
    np.testing.assert_allclose(together, alone, atol=5e-4)
    assert np.min(np.sum(together * alone, axis=1)) > 0.99999
    assert embedder.embed([]).shape == (0, 384)


def test_long_text_is_truncated_to_the_model_limit(embedder):
    assert len(LONG_TEXT.split()) == 2000
    assert embedder.count_tokens(LONG_TEXT) > 2000
    vectors = embedder.embed([LONG_TEXT, LONG_TEXT + " but the ending is about something else entirely"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # only the first 256 tokens count


def test_empty_and_non_latin_text(embedder):
    texts = ["", "   ", "猫がマットの上に座っている。", "Кошка сидит на коврике.", "القطة تجلس على السجادة", "🙂"]
    vectors = embedder.embed(texts)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.count_tokens("") == 2  # [CLS] [SEP]
    assert embedder.count_tokens("猫がマットの上に座っている。") > 5  # CJK characters are split one by one


def test_count_tokens_is_wordpiece(embedder):
    # bert-base-uncased ids, as the Hugging Face tokenizer gives them: [CLS] the cat sits on the mat . [SEP]
    assert embedder.tokens("The cat sits on the mat.") == [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102]
    assert embedder.count_tokens("The cat sits on the mat.") == 9
    assert embedder.count_tokens("unaffable") > 3  # a word split into ## pieces


def test_related_sentences_are_closer(embedder):
    cat, kitten, revenue = embedder.embed(
        ["The cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly revenue grew by 12 percent."]
    )
    assert cat @ kitten > cat @ revenue + 0.3


def test_name_follows_the_file_bytes(bundled, embedder, tmp_path):
    same = tmp_path / "same.gguf"
    shutil.copyfile(bundled, same)
    other = tmp_path / "other.gguf"
    shutil.copyfile(bundled, other)
    with other.open("ab") as fh:
        fh.write(b"\0" * 64)  # different bytes, still a loadable GGUF
    assert load_embedder(str(same)).name == embedder.name
    assert load_embedder(str(other)).name != embedder.name


def test_load_is_cached_and_follows_settings(bundled, embedder, tmp_path):
    assert load_embedder(str(bundled)) is embedder
    assert load_embedder() is embedder  # no setting: the bundled model (a fresh MACAPP_HOME, offline)
    chosen = tmp_path / "chosen.gguf"
    shutil.copyfile(bundled, chosen)
    Settings(embedder_path=str(chosen)).save()
    assert load_embedder().path == chosen


def test_missing_bundled_model_says_run_make_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)  # a frozen app without the resource
    assert bundled_embedder_path() == tmp_path / "resources" / "embedder" / "all-MiniLM-L6-v2.gguf"
    with pytest.raises(UserError, match="make setup"):
        load_embedder()


def test_not_an_embedder_is_a_user_error(tiny_models, bundled, tmp_path):
    with pytest.raises(UserError, match="not an embedding model"):
        LlamaEmbedder(tiny_models["mha_f32"])  # a chat model: no sentence pooling
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + os.urandom(256))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(bundled.read_bytes()[:10_000_000])
    for path in (garbage, truncated, tmp_path / "missing.gguf"):
        with pytest.raises(UserError):
            load_embedder(str(path))


def test_cli_embed_json(bundled, embedder):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "macapp.cli.main",
            "embed",
            "--json",
            "The cat sits on the mat.",
            "Quarterly revenue grew by 12 percent.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    vectors = np.array(json.loads(result.stdout), dtype=np.float32)
    assert vectors.shape == (2, 384)
    expected = embedder.embed(["The cat sits on the mat.", "Quarterly revenue grew by 12 percent."])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_cli_embed_summary_and_bad_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "embed", "hello world"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "384" in result.stdout and "norm 1.0000" in result.stdout
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    result = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "embed", "--model", str(bad), "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


def test_a_cancel_aborts_inside_llama_cpp_and_the_embedder_stays_usable(embedder):
    import threading
    import time

    from macapp.core.errors import Cancelled
    from macapp.core.progress import CancelToken

    started = time.perf_counter()
    expected = embedder.embed([f"{LONG_TEXT} ({n})" for n in range(2)])
    per_text = (time.perf_counter() - started) / 2
    texts = [f"{LONG_TEXT} ({n})" for n in range(max(8, int(3.0 / per_text)))]  # ~3 s of work, 256 tokens each
    token = CancelToken()
    started = time.perf_counter()
    timer = threading.Timer(0.3, token.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        embedder.embed(texts, cancel=token)
    stopped = time.perf_counter() - started
    timer.join()
    assert stopped < 0.3 + 0.5, f"embed returned {stopped - 0.3:.2f} s after the cancel"
    with pytest.raises(Cancelled):  # cancelled before it starts: no work at all
        embedder.embed(texts[:1], cancel=token)
    np.testing.assert_allclose(embedder.embed(texts[:2]), expected, atol=1e-6)  # no token: nothing aborts it
    np.testing.assert_allclose(embedder.embed(texts[:2], cancel=CancelToken()), expected, atol=1e-6)
