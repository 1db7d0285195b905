"""Shared fixtures: every test gets its own MACAPP_HOME, an empty HF cache and an in-memory keychain."""

from __future__ import annotations

from pathlib import Path

import pytest

from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf

# Shapes the estimate must get right; each loads in real llama.cpp.
SHAPES = {
    "mha_f32": TinySpec(),
    "gqa_f16": TinySpec(n_embd=128, n_head=4, n_head_kv=1, n_ff=256, qtype="f16"),
    "tied_f16": TinySpec(n_embd=128, n_head=4, n_head_kv=4, n_ff=256, tied=True, qtype="f16"),
    "tied_q8": TinySpec(tied=True, qtype="q8_0"),
    "gqa_q8_bigvocab": TinySpec(
        n_embd=128, n_layer=3, n_head=4, n_head_kv=2, n_ff=384, qtype="q8_0", vocab_size=2000, ctx=4096
    ),
}


# The real instruct model of the real_model tier: scripts/fetch-test-model.sh (run by `make setup`).
REAL_MODEL = Path(__file__).parent / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MACAPP_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
    # Nothing reaches the internet: the Hub endpoint is a closed loopback port unless a test
    # starts the fake Hub (macapp reads HF_ENDPOINT at call time, not at import).
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home / "hf-home"))  # no saved token is ever sent anywhere
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch):
    """Every test's keychain is a fresh in-memory keyring backend: the user's own keychain is never touched.

    Subprocesses a test starts see no keychain at all (keyring's fail backend)."""
    import keyring

    from tests.fixtures.keyring_backend import MemoryKeyring

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One real GGUF per shape in SHAPES (written once per test session)."""
    root = tmp_path_factory.mktemp("models")
    return {name: write_tiny_gguf(root / f"{name}.gguf", TinySpec(**vars(spec))) for name, spec in SHAPES.items()}


@pytest.fixture
def fake_hub(monkeypatch):
    """A fake Hugging Face Hub on 127.0.0.1 (see tests/fixtures/fake_hub.py); HF_ENDPOINT points at it.

    huggingface_hub reads HF_ENDPOINT once, at import: pass ``endpoint=fake_hub.url`` to its calls.
    """
    from tests.fixtures.fake_hub import FakeHub

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


@pytest.fixture(scope="session")
def tiny_mlx(tmp_path_factory) -> Path:
    """A tiny random llama mlx-lm model directory (macapp/core/tuning/tiny_mlx.py), written once per session."""
    from macapp.core.tuning.tiny_mlx import write_tiny_mlx

    return write_tiny_mlx(tmp_path_factory.mktemp("mlx") / "tiny-llama")


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (Apache-2.0): a real tokenizer, chat template and answers. Missing: the test fails."""
    if not REAL_MODEL.is_file():
        pytest.fail(f"{REAL_MODEL} is missing: run `make test-data` (it fetches the real test model)", pytrace=False)
    return REAL_MODEL


@pytest.fixture(scope="session")
def thousand_page_pdf(tmp_path_factory) -> Path:
    """A 1000-page report (fpdf2, ~170 words a page, ~1,000 passages), written once per session (~10-30 s)."""
    from tests.fixtures.pdfs import make_pdf, report_pages

    return make_pdf(tmp_path_factory.mktemp("thousand") / "report-1000.pdf", report_pages(1000))


@pytest.fixture(scope="session")
def real_pdfs(tmp_path_factory):
    """The real-PDF corpus (Debian manuals, scripts/fetch-test-pdfs.sh) ingested once per session with the bundled
    embedder into the collection ``tests.fixtures.real_pdfs.COLLECTION``; see ``IngestedCorpus``."""
    from tests.fixtures.real_pdfs import ingest_corpus

    corpus = ingest_corpus(tmp_path_factory.mktemp("real-pdfs-index"))
    yield corpus
    corpus.index.close()
