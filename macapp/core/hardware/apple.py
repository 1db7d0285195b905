"""Apple Silicon specifics, in one small module: sysctl, Metal's working set, the GPU budget.

The logic is pure functions of supplied values so it is tested on Linux (8 to 64 GB Macs);
only ``probe_mac()`` touches macOS (``sysctl`` and, when installed, mlx's Metal device info).
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

GiB = 1024**3


@dataclass(frozen=True)
class MacMemory:
    """What macOS tells about memory and Metal (bytes; None where not available)."""

    chip: str
    total_bytes: int
    available_bytes: int
    working_set_bytes: int | None  # Metal recommendedMaxWorkingSetSize (mlx reports it)
    wired_limit_mb: int | None  # sysctl iogpu.wired_limit_mb (0 or None = default)


def default_working_set(total_bytes: int) -> int:
    """Metal's default recommendedMaxWorkingSetSize: about 2/3 of RAM below 36 GB, 3/4 from 36 GB.

    Used when Metal itself cannot be asked (no mlx); the measured value wins when present.
    """
    if total_bytes < 36 * GiB:
        return total_bytes * 2 // 3
    return total_bytes * 3 // 4


def gpu_working_set(mem: MacMemory) -> int:
    """Bytes the GPU may use: a raised ``iogpu.wired_limit_mb`` wins, else Metal's figure, else the rule."""
    if mem.wired_limit_mb and mem.wired_limit_mb > 0:
        return min(mem.wired_limit_mb * 1024 * 1024, mem.total_bytes)
    if mem.working_set_bytes:
        return mem.working_set_bytes
    return default_working_set(mem.total_bytes)


def gpu_budget(mem: MacMemory) -> int:
    """The budget a model must fit in on a Mac: min(GPU working set, memory available now)."""
    return min(gpu_working_set(mem), mem.available_bytes)


def parse_sysctl(text: str) -> dict[str, str]:
    """Parse ``sysctl name: value`` lines (as printed by ``sysctl hw.memsize ...``)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def memory_from_sysctl(values: dict[str, str], available_bytes: int, working_set_bytes: int | None) -> MacMemory:
    """Build MacMemory from parsed sysctl values (``hw.memsize``, ``machdep.cpu.brand_string``, ...)."""
    wired = values.get("iogpu.wired_limit_mb")
    return MacMemory(
        chip=values.get("machdep.cpu.brand_string", "Apple Silicon"),
        total_bytes=int(values.get("hw.memsize", "0") or 0),
        available_bytes=available_bytes,
        working_set_bytes=working_set_bytes,
        wired_limit_mb=int(wired) if wired and wired.lstrip("-").isdigit() else None,
    )


def metal_working_set() -> int | None:
    """Metal's recommendedMaxWorkingSetSize via mlx, or None when mlx/Metal is unavailable."""
    try:
        import mlx.core as mx

        info = mx.device_info() if hasattr(mx, "device_info") else mx.metal.device_info()
        value = info.get("max_recommended_working_set_size")
        return int(value) if value else None
    except Exception as exc:  # noqa: BLE001 - a probe of a native library (no mlx, no Metal device): use the rule
        log.info("Metal working set unavailable: %s", exc)
        return None


def probe_mac(available_bytes: int) -> MacMemory:
    """Ask macOS (sysctl) and Metal; only call on macOS."""
    names = ["hw.memsize", "machdep.cpu.brand_string", "iogpu.wired_limit_mb"]
    out = subprocess.run(["sysctl", *names], capture_output=True, text=True, timeout=5).stdout
    return memory_from_sysctl(parse_sysctl(out), available_bytes, metal_working_set())


# Unified-memory bandwidth Apple publishes for each chip (GB/s). Where the figure depends on the
# binned part (M3 Max, M4 Max) the entry is (cores of the smaller part, its GB/s, the full part's GB/s).
PUBLISHED_BANDWIDTH_GBS: dict[str, float | tuple[int, float, float]] = {
    "M1": 68.25,
    "M1 Pro": 200,
    "M1 Max": 400,
    "M1 Ultra": 800,
    "M2": 100,
    "M2 Pro": 200,
    "M2 Max": 400,
    "M2 Ultra": 800,
    "M3": 100,
    "M3 Pro": 150,
    "M3 Max": (14, 300, 400),
    "M3 Ultra": 819,
    "M4": 120,
    "M4 Pro": 273,
    "M4 Max": (14, 410, 546),
    "M5": 153,
}
# The share of that bandwidth llama.cpp's decode reaches on Metal, roughly, from its published Apple
# Silicon results (7B Q4_0): the wide Max and Ultra buses are harder to fill than the base chips'.
DECODE_SHARE = {"": 0.75, "Pro": 0.7, "Max": 0.6, "Ultra": 0.4}
_CHIP = re.compile(r"\bM(\d+)(?:\s+(Pro|Max|Ultra))?\b")


@dataclass(frozen=True)
class ChipBandwidth:
    chip: str  # the table's name for it: "M3 Max"
    published_gbs: float
    decode_share: float

    @property
    def decode_bytes_per_s(self) -> float:
        """What a bandwidth-bound decode really streams per second on this chip (rough)."""
        return self.published_gbs * 1e9 * self.decode_share


def chip_bandwidth(brand: str, cpu_count: int = 0) -> ChipBandwidth | None:
    """The published bandwidth of an Apple chip named by ``machdep.cpu.brand_string`` ("Apple M3 Max").

    ``cpu_count`` tells a binned Max from the full one; None for a chip the table does not know.
    """
    match = _CHIP.search(brand)
    if not match:
        return None
    tier = match.group(2) or ""
    name = f"M{match.group(1)}" + (f" {tier}" if tier else "")
    figure = PUBLISHED_BANDWIDTH_GBS.get(name)
    if figure is None:
        return None
    if isinstance(figure, tuple):
        binned_cores, binned, full = figure
        figure = full if cpu_count > binned_cores else binned
    return ChipBandwidth(name, float(figure), DECODE_SHARE[tier])
