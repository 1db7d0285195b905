"""The curated catalog: it loads, its facts are self-consistent, and it recommends what fits a Mac."""

from __future__ import annotations

from pathlib import Path

import pytest

from macapp.core.errors import UserError
from macapp.core.hardware import apple
from macapp.core.models.catalog import (
    PREFERRED_QUANT,
    best_pick,
    catalog_path,
    facts_for,
    load_catalog,
    recommend,
)
from macapp.core.models.estimate import RuntimeSettings, estimate_memory, kv_cache_bytes

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3
# Bits per weight of llama.cpp's file types (the bulk of the tensors), and of Q6_K, which the
# K-quant mixes use for the output projection (the tied token embedding when there is none).
BPW = {"Q4_K_M": 4.85, "Q5_K_M": 5.7, "Q6_K": 6.56, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0}
OUTPUT_BPW = 6.5625


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def mac_budget(ram_gb: int) -> int:
    ram = ram_gb * GiB
    return apple.gpu_budget(apple.MacMemory("Apple M3", ram, ram, None, None))


def test_shipped_catalog_loads(catalog):
    assert catalog_path() == ROOT / "models" / "catalog.toml"
    assert 12 <= len(catalog) <= 20
    assert len({e.id for e in catalog}) == len(catalog)
    for e in catalog:
        assert e.file_for(PREFERRED_QUANT) is not None, e.id
        assert {"Q4_K_M", "Q5_K_M", "Q8_0"} <= {f.quant for f in e.files}, e.id
        assert e.licence in {"llama3.1", "llama3.2", "apache-2.0", "qwen-research", "mit", "gemma"}, e.id
        assert e.kind in {"chat", "code", "reasoning"}
        assert e.facts.architecture in {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"}, e.id
        assert e.facts.context_length >= 8192, e.id
        assert e.repo.endswith("-GGUF") and e.mlx_repo.startswith("mlx-community/"), e.id


def test_families_asked_for_are_present(catalog):
    ids = {e.id for e in catalog}
    assert {
        "llama-3.2-1b-instruct",
        "llama-3.2-3b-instruct",
        "llama-3.1-8b-instruct",
        "qwen2.5-7b-instruct",
        "qwen2.5-14b-instruct",
        "qwen2.5-coder-7b-instruct",
        "mistral-7b-instruct-v0.3",
        "smollm2-1.7b-instruct",
        "gemma-2-2b-it",
        "gemma-2-9b-it",
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
        "deepseek-r1-distill-llama-8b",
    } <= ids
    assert any(e.family == "phi" for e in catalog)
    assert {e.kind for e in catalog} == {"chat", "code", "reasoning"}
    params = [e.facts.parameters for e in catalog]
    assert min(params) < 2e9 and 12e9 < max(params) < 16e9


def test_parameters_match_the_architecture(catalog):
    for e in catalog:
        f = e.facts
        embeddings = f.vocab_size * f.n_embd * (1 if f.tied_embeddings else 2)
        attention = 2 * f.n_embd * f.n_head * f.head_dim + 2 * f.n_embd * f.n_head_kv * f.head_dim
        mlp = 3 * f.n_embd * f.n_ff  # gate, up, down
        formula = embeddings + f.n_layer * (attention + mlp)
        assert formula == pytest.approx(f.parameters, rel=0.10), e.id


def test_file_sizes_match_bits_per_weight(catalog):
    for e in catalog:
        f = e.facts
        output = f.vocab_size * f.n_embd
        for file in e.files:
            bpw = BPW[file.quant]
            expected = ((f.parameters - output) * bpw + output * max(bpw, OUTPUT_BPW)) / 8
            assert file.approx_bytes == pytest.approx(expected, rel=0.15), (e.id, file.quant)
            # and the plain rule of thumb, for the bigger models where embeddings weigh little
            if f.parameters > 7e9:
                assert file.approx_bytes * 8 / f.parameters == pytest.approx(bpw, rel=0.15), (e.id, file.quant)


def test_file_names_follow_the_repo_convention(catalog):
    for e in catalog:
        stem = e.repo.split("/", 1)[1].removesuffix("-GGUF")
        for file in e.files:
            assert file.file == f"{stem}-{file.quant}.gguf", (e.id, file.file)


def test_sliding_window_facts(catalog):
    by_id = {e.id: e for e in catalog}
    gemma2 = facts_for(by_id["gemma-2-9b-it"])
    assert gemma2.sliding_window == 4096
    assert gemma2.swa_layers[:4] == [True, False, True, False] and sum(gemma2.swa_layers) == 21
    gemma3 = facts_for(by_id["gemma-3-4b-it"])
    assert gemma3.sliding_window == 1024
    assert gemma3.swa_layers[:6] == [True] * 5 + [False] and gemma3.swa_layers.count(False) == 5
    llama = facts_for(by_id["llama-3.1-8b-instruct"])
    assert llama.sliding_window == 0 and not any(llama.swa_layers)


def test_facts_for_feeds_the_estimate(catalog):
    by_id = {e.id: e for e in catalog}
    entry = by_id["llama-3.1-8b-instruct"]
    facts = facts_for(entry, "Q8_0")
    assert facts.weights_bytes == entry.file_for("Q8_0").approx_bytes
    assert facts.quantization == "Q8_0" and facts.quant_from_filename.name == "Q8_0"
    assert sum(facts.layer_bytes) < facts.weights_bytes
    settings = RuntimeSettings(n_ctx=8192)
    # 32 layers x 8 KV heads x (128 + 128) x 2 bytes x 8192 cells = exactly 1 GiB
    assert kv_cache_bytes(facts, settings) == GiB
    est = estimate_memory(facts, settings, mac_budget(16))
    assert est.weights_bytes < est.total_bytes < est.weights_bytes + 2 * GiB
    assert est.verdict in ("fits", "tight", "too_big")
    partial = estimate_memory(facts, RuntimeSettings(n_ctx=8192, backend="metal", gpu_layers=16))
    assert partial.gpu_bytes < est.gpu_bytes
    with pytest.raises(UserError, match="no Q2_K"):
        facts_for(entry, "Q2_K")


@pytest.mark.parametrize("backend", ["metal", "cpu"])
def test_recommendations_grow_with_the_mac(catalog, backend):
    picks = {}
    for ram in (8, 16, 24):
        budget = mac_budget(ram)
        recs = recommend(budget, backend=backend, entries=catalog)
        assert len(recs) == len(catalog)
        best = recs[0]
        assert best.preferred_verdict == "fits" and best.verdict == "fits"
        assert best.estimate.gpu_bytes <= budget * 0.9
        picks[ram] = best
        # nothing that fits is bigger than the pick; the too-big ones come last
        fitting = [r for r in recs if r.preferred_verdict == "fits"]
        assert best.entry.facts.parameters == max(r.entry.facts.parameters for r in fitting)
        groups = [0 if r.preferred_verdict == "fits" else 1 if r.verdict != "too_big" else 2 for r in recs]
        assert groups == sorted(groups)
    params = [picks[ram].entry.facts.parameters for ram in (8, 16, 24)]
    assert params == sorted(params) and len(set(params)) == 3
    assert params[0] < 5e9  # 8 GB: a 3-4B model
    assert 6e9 < params[1] < 10e9  # 16 GB: the 7-9B class
    assert params[2] > 12e9  # 24 GB: a 14B
    assert picks[24].entry.kind == "chat"  # rank puts the general model before the coder


def test_recommend_prefers_q4_and_upgrades_with_room(catalog):
    recs = {r.entry.id: r for r in recommend(mac_budget(24), entries=catalog)}
    small = recs["llama-3.2-1b-instruct"]
    assert small.file.quant == "Q8_0" and small.estimate.gpu_bytes <= 0.75 * mac_budget(24)
    tight = {r.entry.id: r for r in recommend(mac_budget(16), entries=catalog)}["qwen2.5-14b-instruct"]
    assert tight.file.quant == PREFERRED_QUANT and tight.verdict != "fits"
    nothing = recommend(1 * GiB, entries=catalog)
    assert nothing[-1].verdict == "too_big" and nothing[-1].file.quant == PREFERRED_QUANT


def test_the_recommended_pick_is_the_first_whose_q4_fits_well(catalog):
    picks = recommend(mac_budget(16), entries=catalog)
    assert best_pick(picks) is picks[0] and picks[0].preferred_verdict == "fits"
    # budgets where the first entry's Q4_K_M is merely tight (or too big): the list still offers
    # models, but none is "recommended"
    squeezed = [recommend(mb * 1024**2, entries=catalog) for mb in range(256, 2048, 64)]
    squeezed = [picks for picks in squeezed if picks[0].preferred_verdict != "fits"]
    assert any(picks[0].preferred_verdict == "tight" for picks in squeezed)
    assert all(best_pick(picks) is None for picks in squeezed)
    assert best_pick([]) is None


# --- broken catalogs -------------------------------------------------------------------------

ENTRY = """
[[model]]
id = "{id}"
name = "Tiny 1B"
family = "llama"
kind = "chat"
rank = 1
repo = "{repo}"
licence = "mit"
mlx_repo = "mlx-community/Tiny-1B-4bit"
files = [
  {{ {quant}file = "{file}", approx_bytes = 800_000_000 }},
]
[model.facts]
architecture = "llama"
parameters = 1_235_814_400
n_layer = 16
n_embd = 2048
n_ff = 8192
n_head = 32
n_head_kv = 8
head_dim = 64
vocab_size = 128_256
context_length = 131_072
tied_embeddings = true
"""


def entry(id="tiny-1b", repo="someone/Tiny-1B-GGUF", quant="Q4_K_M", file="Tiny-1B-Q4_K_M.gguf") -> str:
    return ENTRY.format(id=id, repo=repo, quant=f'quant = "{quant}", ' if quant else "", file=file)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_small_valid_catalog_loads(tmp_path):
    (e,) = load_catalog(write(tmp_path, entry()))
    assert (e.id, e.file_for("q4_k_m").file, e.facts.sliding_window) == ("tiny-1b", "Tiny-1B-Q4_K_M.gguf", 0)
    assert recommend(mac_budget(8), entries=[e])[0].verdict == "fits"


@pytest.mark.parametrize(
    "text, message",
    [
        (entry() + entry(), r"'tiny-1b'.*used twice"),
        (entry(file="../Tiny-1B-Q4_K_M.gguf"), r"'tiny-1b'.*plain path"),
        (entry(file="/etc/Tiny-1B-Q4_K_M.gguf"), r"'tiny-1b'.*plain path"),
        (entry(file="sub\\\\..\\\\Tiny-1B-Q4_K_M.gguf"), r"'tiny-1b'.*plain path"),
        (entry(quant=None), r"'tiny-1b'.*'quant' is missing"),
        (entry(quant="Q5_K_M", file="Tiny-1B-Q5_K_M.gguf"), r"'tiny-1b'.*no Q4_K_M"),
        (entry(quant="Q4_K_M", file="Tiny-1B-Q8_0.gguf"), r"'tiny-1b'.*does not contain its quant"),
        (entry(quant="Q4_X", file="Tiny-1B-Q4_X.gguf"), r"'tiny-1b'.*not a quantization"),
        (entry(file="Tiny-1B-Q4_K_M.bin"), r"'tiny-1b'.*not a \.gguf"),
        (entry(repo="Tiny-1B-GGUF"), r"'tiny-1b'.*not a Hugging Face repo"),
        (entry(repo="a/b/c"), r"'tiny-1b'.*not a Hugging Face repo"),
        (entry().replace('kind = "chat"', 'kind = "poetry"'), r"'tiny-1b'.*kind"),
        (entry().replace("n_layer = 16", 'n_layer = "16"'), r"'tiny-1b'.*'n_layer' should be an integer"),
        (entry().replace("n_head_kv = 8", "n_head_kv = 0"), r"'tiny-1b'.*n_head_kv must be positive"),
        (entry().replace('name = "Tiny 1B"\n', ""), r"'tiny-1b'.*'name' is missing"),
        (entry().replace('id = "tiny-1b"\n', ""), r"model #1.*'id' is missing"),
        ("title = 'no models'\n", "lists no"),
        ("[[model]\n", "not valid TOML"),
    ],
)
def test_bad_catalogs_name_the_problem(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_catalog(write(tmp_path, text))


def test_missing_catalog_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_catalog(tmp_path / "nope.toml")
