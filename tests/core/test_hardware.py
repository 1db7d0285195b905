"""The Apple Silicon budget logic on supplied values, and detection on this machine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from macapp.core import hardware
from macapp.core.hardware import apple

GB = 1024**3

SYSCTL = """hw.memsize: {mem}
machdep.cpu.brand_string: Apple M3
iogpu.wired_limit_mb: {wired}
"""


@pytest.mark.parametrize(
    "ram_gb, expected_ws",
    [(8, 8 * GB * 2 // 3), (16, 16 * GB * 2 // 3), (24, 16 * GB), (36, 27 * GB), (64, 48 * GB)],
)
def test_default_working_set_by_mac_size(ram_gb, expected_ws):
    assert apple.default_working_set(ram_gb * GB) == expected_ws


@pytest.mark.parametrize("ram_gb", [8, 16, 24, 36, 64])
def test_budget_is_min_of_working_set_and_available(ram_gb):
    total = ram_gb * GB
    values = apple.parse_sysctl(SYSCTL.format(mem=total, wired=0))
    plenty = apple.memory_from_sysctl(values, available_bytes=total, working_set_bytes=None)
    assert plenty.chip == "Apple M3" and plenty.total_bytes == total and plenty.wired_limit_mb == 0
    assert apple.gpu_budget(plenty) == apple.default_working_set(total)
    busy = apple.memory_from_sysctl(values, available_bytes=total // 4, working_set_bytes=None)
    assert apple.gpu_budget(busy) == total // 4  # other apps hold the rest


def test_metal_figure_wins_over_the_rule_and_wired_limit_wins_over_both():
    total = 16 * GB
    measured = apple.MacMemory("Apple M3", total, total, working_set_bytes=11_453_251_584, wired_limit_mb=None)
    assert apple.gpu_working_set(measured) == 11_453_251_584
    raised = apple.memory_from_sysctl(apple.parse_sysctl(SYSCTL.format(mem=total, wired=14336)), total, 11_453_251_584)
    assert raised.wired_limit_mb == 14336
    assert apple.gpu_working_set(raised) == 14336 * 1024 * 1024
    assert apple.gpu_budget(raised) == 14336 * 1024 * 1024


def test_unset_wired_limit_line_is_ignored():
    values = apple.parse_sysctl("hw.memsize: 25769803776\nmachdep.cpu.brand_string: Apple M3 Pro\n")
    mem = apple.memory_from_sysctl(values, 20 * GB, None)
    assert mem.wired_limit_mb is None and mem.total_bytes == 24 * GB


def test_detect_on_this_machine():
    hw = hardware.detect()
    assert hw.total_bytes > 0 and 0 < hw.available_bytes <= hw.total_bytes
    if not hardware.is_apple_silicon():
        assert hw.gpu == "cpu" and hw.budget_bytes == hw.available_bytes
    versions = hardware.backend_versions()
    assert versions["llama-cpp-python"] and versions["gguf"]


def test_metal_working_set_is_none_without_metal():
    if hardware.is_apple_silicon():
        assert apple.metal_working_set() > 0
    else:
        assert apple.metal_working_set() is None  # mlx[cpu] has no Metal device: the rule applies


@pytest.mark.parametrize(
    "ram_gb, available_gb, budget_gb", [(8, 8, 8 * 2 / 3), (16, 16, 16 * 2 / 3), (24, 24, 16), (24, 6, 6)]
)
def test_mac_hardware_from_supplied_values(ram_gb, available_gb, budget_gb):
    mem = apple.MacMemory("Apple M2", ram_gb * GB, available_gb * GB, working_set_bytes=None, wired_limit_mb=None)
    hw = hardware.mac_hardware(mem, os_name="macOS 15.1", cpu_count=8)
    assert (hw.gpu, hw.machine, hw.chip, hw.os, hw.cpu_count) == ("metal", "arm64", "Apple M2", "macOS 15.1", 8)
    assert hw.total_bytes == ram_gb * GB and hw.available_bytes == available_gb * GB
    assert hw.gpu_working_set_bytes == apple.default_working_set(ram_gb * GB)
    assert abs(hw.budget_bytes - budget_gb * GB) < 16  # integer rounding of 2/3
    assert hw.budget_bytes <= min(hw.gpu_working_set_bytes, hw.available_bytes)
    assert hw.to_json()["budget_rule"].startswith("min(Metal working set")


def test_mac_hardware_honours_metal_and_the_wired_limit():
    measured = apple.MacMemory("Apple M3", 16 * GB, 16 * GB, working_set_bytes=11_453_251_584, wired_limit_mb=None)
    assert hardware.mac_hardware(measured).budget_bytes == 11_453_251_584
    raised = replace(measured, wired_limit_mb=14336)
    hw = hardware.mac_hardware(raised)
    assert hw.gpu_working_set_bytes == hw.budget_bytes == 14336 * 1024 * 1024 and hw.wired_limit_mb == 14336
