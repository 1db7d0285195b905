"""Expected decode speed: Apple chips' published bandwidth, the CPU rule, and a recommendation that
answers at a readable pace (supplied machines: an M3 8 GB, an M3 Max 64 GB, a 2-core 24 GB box)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from macapp.core import paths
from macapp.core.hardware import Hardware, apple, bandwidth, mac_hardware
from macapp.core.hardware.bandwidth import cpu_decode_bandwidth, decode_bandwidth
from macapp.core.models.catalog import best_pick, load_catalog, matching, recommend
from macapp.core.models.speed import READABLE_TOKENS_PER_S, decode_tokens_per_s, format_speed

GB = 1024**3
CPU_BOX_COPY = 14e9  # a memory copy as measured on the 2-core EPYC VM these tests were written on


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def mac(chip: str, ram_gb: int, cores: int) -> Hardware:
    return mac_hardware(apple.MacMemory(chip, ram_gb * GB, ram_gb * GB, None, None), "macOS 15.1", cores)


def cpu_box(ram_gb: int = 24, cores: int = 2) -> Hardware:
    return Hardware(
        os="Linux 6.1",
        machine="x86_64",
        chip="AMD EPYC",
        cpu_count=cores,
        total_bytes=ram_gb * GB,
        available_bytes=ram_gb * GB - GB,
        gpu="cpu",
        gpu_working_set_bytes=None,
        wired_limit_mb=None,
        budget_bytes=ram_gb * GB - GB,
        budget_rule="available memory (no Metal here)",
    )


def picks_for(hw: Hardware, entries, copy: float = CPU_BOX_COPY):
    bw = decode_bandwidth(hw, copy_bytes_per_s=copy)
    return recommend(hw.budget_bytes, backend=hw.gpu, entries=entries, decode_bandwidth=bw.bytes_per_s)


@pytest.mark.parametrize(
    "brand, cores, name, gbs",
    [
        ("Apple M1", 8, "M1", 68.25),
        ("Apple M2 Pro", 12, "M2 Pro", 200),
        ("Apple M3", 8, "M3", 100),
        ("Apple M3 Max", 14, "M3 Max", 300),
        ("Apple M3 Max", 16, "M3 Max", 400),
        ("Apple M4 Max", 14, "M4 Max", 410),
        ("Apple M4 Max", 16, "M4 Max", 546),
        ("Apple M2 Ultra", 24, "M2 Ultra", 800),
        ("Apple M4 Pro", 14, "M4 Pro", 273),
    ],
)
def test_published_bandwidth_by_chip(brand, cores, name, gbs):
    chip = apple.chip_bandwidth(brand, cores)
    assert (chip.chip, chip.published_gbs) == (name, gbs)
    assert 0 < chip.decode_bytes_per_s < gbs * 1e9


def test_unknown_chips_have_no_published_figure_and_get_a_conservative_one():
    assert apple.chip_bandwidth("Intel(R) Core(TM) i7") is None
    assert apple.chip_bandwidth("Apple M9 Hyper") is None
    unknown = decode_bandwidth(mac("Apple M9", 16, 10))
    slowest = decode_bandwidth(mac("Apple M1", 16, 8))
    assert unknown.bytes_per_s == slowest.bytes_per_s and "not in Orchard's table" in unknown.basis


def test_ultra_chips_are_faster_but_reach_a_smaller_share():
    base, ultra = apple.chip_bandwidth("Apple M2"), apple.chip_bandwidth("Apple M2 Ultra")
    assert ultra.decode_bytes_per_s > base.decode_bytes_per_s and ultra.decode_share < base.decode_share


def test_cpu_rule_is_the_lesser_of_memory_and_cores():
    few_cores = cpu_decode_bandwidth(100e9, cores=2)
    assert few_cores.bytes_per_s == 2 * bandwidth.PER_CORE_DECODE_BYTES_S and "2 CPU cores" in few_cores.basis
    slow_memory = cpu_decode_bandwidth(10e9, cores=64)
    assert slow_memory.bytes_per_s == 10e9 * bandwidth.CPU_DECODE_SHARE and "measured" in slow_memory.basis
    assert cpu_decode_bandwidth(100e9, cores=8).bytes_per_s > few_cores.bytes_per_s


def test_tokens_per_s_is_bandwidth_over_weights():
    assert decode_tokens_per_s(4_000_000_000, 100e9) == pytest.approx(25.0)
    assert decode_tokens_per_s(8_000_000_000, 100e9) == pytest.approx(12.5)
    with pytest.raises(ValueError):
        decode_tokens_per_s(0, 1e9)
    assert [format_speed(v) for v in (0.4, 1.2, 3.6, 25.2, 27.9, 143.0)] == [
        "under 1 token/s",
        "~1 token/s",
        "~4 tokens/s",
        "~25 tokens/s",
        "~28 tokens/s",
        "~140 tokens/s",
    ]


def test_m3_8gb_gets_a_small_fast_model(catalog):
    picks = picks_for(mac("Apple M3", 8, 8), catalog)
    best = best_pick(picks)
    assert best is not None and best.verdict == "fits" and best.readable
    assert 2e9 < best.entry.facts.parameters < 5e9  # the 3-4B class: what 8 GB holds
    assert best.tokens_per_s == pytest.approx(75e9 / best.estimate.weights_bytes)


def test_m3_max_64gb_gets_the_largest_model_at_a_big_quant(catalog):
    picks = picks_for(mac("Apple M3 Max", 64, 16), catalog)
    best = best_pick(picks)
    assert best.entry.facts.parameters == max(e.facts.parameters for e in catalog)
    assert best.file.quant == "Q8_0" and best.readable and best.tokens_per_s >= READABLE_TOKENS_PER_S


def test_cpu_box_no_longer_gets_a_14b_q8(catalog):
    box = cpu_box()
    by_memory = best_pick(recommend(box.budget_bytes, backend="cpu", entries=catalog))
    assert by_memory.entry.facts.parameters > 12e9 and by_memory.file.quant == "Q8_0"  # what it was offered before
    picks = picks_for(box, catalog)
    best = best_pick(picks)
    assert best.entry.facts.parameters < 2e9 and best.file.quant == "Q4_K_M"  # a small model, at the small quant
    assert best.tokens_per_s == max(r.tokens_per_s for r in picks if r.preferred_verdict == "fits")
    # nothing readable fits a 2-core box: the list is ordered fastest first, each at its plain quant
    fitting = [r for r in picks if r.preferred_verdict == "fits"]
    assert [r.tokens_per_s for r in fitting] == sorted((r.tokens_per_s for r in fitting), reverse=True)


def test_a_faster_machine_never_gets_a_smaller_model(catalog):
    box = cpu_box(ram_gb=64, cores=64)
    sizes = []
    for copy in (10e9, 40e9, 120e9, 400e9, 1600e9):
        best = best_pick(picks_for(box, catalog, copy))
        sizes.append(best.entry.facts.parameters)
        if best.tokens_per_s >= READABLE_TOKENS_PER_S:  # every bigger fitting model would be slow
            bigger = [
                r
                for r in picks_for(box, catalog, copy)
                if r.entry.facts.parameters > sizes[-1] and r.preferred_verdict == "fits"
            ]
            assert all(not r.readable for r in bigger)
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_without_a_bandwidth_memory_alone_decides(catalog):
    hw = mac("Apple M2", 16, 8)
    picks = recommend(hw.budget_bytes, backend="metal", entries=catalog)
    assert all(r.tokens_per_s is None and r.readable for r in picks)


def test_the_copy_bandwidth_is_measured_once_and_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(bandwidth, "measure_copy_bandwidth", lambda: calls.append(1) or 12e9)
    monkeypatch.setattr(bandwidth, "_measured", {})
    box = cpu_box()
    assert bandwidth.cached_copy_bandwidth(box) == 12e9 and bandwidth.cached_copy_bandwidth(box) == 12e9
    assert len(calls) == 1
    monkeypatch.setattr(bandwidth, "_measured", {})  # a new process reads the file
    assert bandwidth.cached_copy_bandwidth(box) == 12e9 and len(calls) == 1
    (paths.cache_dir() / "memory-bandwidth.json").write_text("not json", encoding="utf-8")
    monkeypatch.setattr(bandwidth, "_measured", {})
    assert bandwidth.cached_copy_bandwidth(box) == 12e9 and len(calls) == 2  # a broken cache is measured again
    assert json.loads((paths.cache_dir() / "memory-bandwidth.json").read_text()) == {"AMD EPYC|2|25769803776": 12e9}
    assert decode_bandwidth(box) == cpu_decode_bandwidth(12e9, 2)


def test_two_asking_at_once_share_one_measurement(monkeypatch):
    calls = []

    def slow_measure() -> float:
        calls.append(1)
        time.sleep(0.2)
        return 10e9 + len(calls)  # a second measurement would differ

    monkeypatch.setattr(bandwidth, "measure_copy_bandwidth", slow_measure)
    monkeypatch.setattr(bandwidth, "_measured", {})
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: decode_bandwidth(cpu_box()).bytes_per_s, range(2)))
    assert len(calls) == 1 and results[0] == results[1]


def test_a_real_copy_measures_something_plausible():
    value = bandwidth.measure_copy_bandwidth(size=8 << 20, repeats=1)
    assert 1e8 < value < 1e13


def test_matching_filters_the_catalog_by_every_word(catalog):
    qwen = matching(catalog, "qwen")
    assert qwen and all("qwen" in f"{e.id} {e.name} {e.repo}".lower() for e in qwen)
    assert len(qwen) < len(catalog)
    coder = matching(catalog, "QWEN coder")
    assert coder and {e.kind for e in coder} == {"code"}
    assert matching(catalog, "no-such-model") == []
    assert matching(catalog, "") == catalog
