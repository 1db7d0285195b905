"""Numbers as people read them (CLI and GUI): ``1.2 GB``, ``7.2 B`` parameters, ``32,000`` tokens.

Bytes use powers of 1024 with the short names (GB, MB) that macOS shows for memory, so a
budget of "16 GB" reads the way Activity Monitor reports RAM.
"""

from __future__ import annotations

import math
import re

_BYTE_UNITS = ("bytes", "KB", "MB", "GB", "TB")
_COUNT_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


def _short(value: float) -> str:
    """One decimal below 10, none above: 7.2, 13, 136."""
    return f"{value:.1f}" if value < 9.95 else f"{value:.0f}"


def format_bytes(n: int | float | None) -> str:
    """``1288490188`` -> ``"1.2 GB"``; ``None`` -> ``"—"``."""
    if n is None:
        return "—"
    value = float(n)
    if abs(value) < 1024:
        return f"{int(value)} bytes"
    for unit in _BYTE_UNITS[1:]:
        value /= 1024
        if abs(value) < 1023.5 or unit == _BYTE_UNITS[-1]:
            return f"{_short(value)} {unit}"
    raise AssertionError("unreachable")


def format_params(n: int | None) -> str:
    """Parameter counts: ``7_241_732_096`` -> ``"7.2 B"``, ``136_448`` -> ``"136 K"``."""
    if n is None:
        return "—"
    for size, unit in _COUNT_UNITS:
        if n >= size * 0.9995:
            return f"{_short(n / size)} {unit}"
    return str(n)


def format_count(n: int | None) -> str:
    """Exact counts with thousands separators: ``32000`` -> ``"32,000"``."""
    return "—" if n is None else f"{n:,}"


def format_percent(fraction: float | None) -> str:
    if fraction is None:
        return "—"
    pct = fraction * 100
    if 0 < pct < 0.05:
        return "<0.1%"
    return f"{pct:.1f}%" if pct < 9.95 else f"{pct:.0f}%"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.I)


def parse_bytes(text: str) -> int:
    """``16G``, ``16 GB``, ``8GiB``, ``123456`` -> bytes (K/M/G/T are powers of 1024, like RAM)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (try 16G or a number of bytes)")
    value, unit = float(m.group(1)), m.group(2).upper()
    return int(value * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[unit])


def plural(n: int, word: str) -> str:
    """``1 page``, ``2 pages``, ``1,204 passages``: a count with its noun (an English plural in s)."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_duration(seconds: float | None) -> str:
    """``540`` -> ``"9 min"``, ``42.2`` -> ``"43 s"``, ``4000`` -> ``"1 h 7 min"``; ``""`` for no estimate."""
    if seconds is None or seconds < 0 or math.isinf(seconds) or math.isnan(seconds):
        return ""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def time_left(seconds: float | None) -> str:
    """``540`` -> ``"9 min left"``; ``""`` when there is no estimate."""
    duration = format_duration(seconds)
    return f"{duration} left" if duration else ""
