"""How many bytes a second this machine streams through a model: what bounds its decode speed.

Generating a token reads every weight once, so a decode's tokens/s is about this bandwidth over
the model's size. On Apple Silicon it is the chip's published unified-memory bandwidth times the
share llama.cpp reaches (``apple.chip_bandwidth``). Elsewhere it is measured once (a numpy memory
copy, cached per machine) and capped by what the CPU cores can multiply, which is the real
limit on small machines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from macapp.core.hardware import Hardware, apple

log = logging.getLogger(__name__)

UNKNOWN_APPLE_GBS = 68.25  # an Apple chip the table does not know: assume the slowest M-series bus (M1)
COPY_BYTES = 128 << 20  # above any last-level cache a core reaches (96 MB at most today): measures memory
COPY_REPEATS = 3  # best of three: another process can steal one run
# llama.cpp's CPU decode streams weights at about half a numpy copy's rate, and one core dequantizes and
# multiplies only so many weight bytes a second. Measured on a 2-core EPYC VM (copy 14.6 GB/s): one
# thread decoded Q8_0 weights at 7.2 GB/s and Q4_K_M (the quant recommendations start from) at 4.8.
CPU_DECODE_SHARE = 0.5
PER_CORE_DECODE_BYTES_S = 4e9
_CACHE_NAME = "memory-bandwidth.json"
_measured: dict[str, float] = {}  # this process's measurements, by machine key
_measuring = threading.Lock()  # the welcome and Discover ask at once: one measures, the other waits for it


@dataclass(frozen=True)
class DecodeBandwidth:
    """Weight bytes a decode reads per second here (rough), and how that figure was found."""

    bytes_per_s: float
    basis: str  # in words, for a tooltip or ``--json``

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def measure_copy_bandwidth(size: int = COPY_BYTES, repeats: int = COPY_REPEATS) -> float:
    """Bytes a second moved (read + written) by a numpy copy of ``size`` bytes, best of ``repeats``."""
    import numpy as np

    src = np.ones(size, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch: the pages exist before the clock starts
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * size / max(time.perf_counter() - start, 1e-9))
    return best


def _machine_key(hw: Hardware) -> str:
    return f"{hw.chip}|{hw.cpu_count}|{hw.total_bytes}"


def cached_copy_bandwidth(hw: Hardware) -> float:
    """``measure_copy_bandwidth`` for this machine, measured once and kept in the cache folder."""
    from macapp.core import paths

    key = _machine_key(hw)
    with _measuring:
        if key not in _measured:
            _measured[key] = _load_or_measure(key, paths.cache_dir() / _CACHE_NAME)
        return _measured[key]


def _load_or_measure(key: str, path: Path) -> float:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    value = stored.get(key) if isinstance(stored, dict) else None
    if not isinstance(value, (int, float)) or value <= 0:
        value = measure_copy_bandwidth()
        log.info("memory copy bandwidth measured: %.1f GB/s", value / 1e9)
        stored = (stored if isinstance(stored, dict) else {}) | {key: value}
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(stored), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache only costs a new measurement next time
            log.warning("cannot cache the memory bandwidth: %s", exc)
    return float(value)


def cpu_decode_bandwidth(copy_bytes_per_s: float, cores: int) -> DecodeBandwidth:
    """The CPU rule, from supplied values: the lesser of memory's share and what the cores can do."""
    memory = copy_bytes_per_s * CPU_DECODE_SHARE
    compute = max(1, cores) * PER_CORE_DECODE_BYTES_S
    if compute < memory:
        basis = f"{cores} CPU core{'s' if cores != 1 else ''} at ~{PER_CORE_DECODE_BYTES_S / 1e9:.0f} GB/s each"
    else:
        basis = f"memory copy measured at {copy_bytes_per_s / 1e9:.0f} GB/s"
    rate = min(memory, compute)
    return DecodeBandwidth(rate, f"no Metal: {basis}, so a decode reads ~{rate / 1e9:.0f} GB/s of weights")


def decode_bandwidth(hw: Hardware, copy_bytes_per_s: float | None = None) -> DecodeBandwidth:
    """The bandwidth a decode reaches on ``hw``.

    Args:
        hw: the machine (``hardware.detect()`` or supplied values).
        copy_bytes_per_s: a measured memory copy for a machine without Metal; measured (and
            cached) when not given.
    """
    if hw.gpu == "metal":
        chip = apple.chip_bandwidth(hw.chip, hw.cpu_count)
        if chip is None:
            share = apple.DECODE_SHARE[""]
            return DecodeBandwidth(
                UNKNOWN_APPLE_GBS * 1e9 * share,
                f"{hw.chip}: not in Orchard's table, assumed {UNKNOWN_APPLE_GBS:g} GB/s (as an M1)",
            )
        return DecodeBandwidth(
            chip.decode_bytes_per_s,
            f"{chip.chip}: {chip.published_gbs:g} GB/s published, decode reaches ~{chip.decode_share:.0%} of it",
        )
    if copy_bytes_per_s is None:
        copy_bytes_per_s = cached_copy_bandwidth(hw)
    return cpu_decode_bandwidth(copy_bytes_per_s, hw.cpu_count)
