"""Quantization names as people write them in file names: ``Q4_K_M`` = level 4, K-quant, medium."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARIANTS = {
    "XXS": "extra-extra-small",
    "XS": "extra-small",
    "S": "small",
    "M": "medium",
    "L": "large",
    "XL": "extra-large",
    "NL": "non-linear",
}

# Longest alternatives first so Q4_K_M is not read as Q4_K, IQ2_XXS not as IQ2_XS.
_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])("
    r"I?Q\d_K(?:_(?:XXS|XS|XL|S|M|L))?"
    r"|IQ\d_(?:XXS|XS|NL|S|M)"
    r"|Q\d_[01]"
    r"|TQ[12]_0"
    r"|MXFP4(?:_MOE)?"
    r"|BF16|F16|FP16|F32|FP32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QuantName:
    """A parsed quant label. ``bits`` is the nominal level (4 for Q4_K_M), None for floats."""

    name: str
    bits: int | None
    family: str  # "k-quant" | "i-quant" | "legacy" | "ternary" | "float" | "mxfp4"
    variant: str | None  # "medium", "small", ... where the name says

    def describe(self) -> str:
        parts = [f"{self.bits}-bit" if self.bits else None, self.family, self.variant]
        return ", ".join(p for p in parts if p)


def parse_quant_name(file_name: str) -> QuantName | None:
    """Find the quant label in a file name (``...-Q4_K_M.gguf``); None when there is none."""
    matches = _PATTERN.findall(file_name)
    if not matches:
        return None
    name = matches[-1].upper().replace("FP16", "F16").replace("FP32", "F32")
    if name in ("F16", "F32", "BF16"):
        return QuantName(name, None, "float", None)
    if name.startswith("MXFP4"):
        return QuantName(name, 4, "mxfp4", None)
    if name.startswith("TQ"):
        return QuantName(name, int(name[2]), "ternary", None)
    bits = int(re.search(r"\d", name).group())  # type: ignore[union-attr]
    rest = name.split("_")[1:]
    if name.startswith("IQ"):
        variant = rest[-1] if rest else None
        family = "i-quant"
    elif rest and rest[0] == "K":
        variant = rest[1] if len(rest) > 1 else None
        family = "k-quant"
    else:
        variant = None
        family = "legacy"
    return QuantName(name, bits, family, _VARIANTS.get(variant or ""))
