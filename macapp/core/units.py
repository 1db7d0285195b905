"""Human-readable sizes and counts, shared by the CLI and the GUI."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$", re.I)


def format_bytes(n: float | None) -> str:
    """1536 -> '1.5 KB' (decimal units, as macOS Finder shows sizes)."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_count(n: int | None) -> str:
    """7_241_732_096 -> '7.2 B'; 136_000 -> '136 K'."""
    if n is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            value = n / div
            return f"{value:.1f} {suffix}" if value < 100 else f"{value:.0f} {suffix}"
    return str(n)


def parse_bytes(text: str) -> int:
    """'16G', '16 GB', '8GiB', '123456' -> bytes (K/M/G/T are binary, like RAM sizes)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (try 16G or a number of bytes)")
    value, unit = float(m.group(1)), m.group(2).upper()
    return int(value * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[unit])
