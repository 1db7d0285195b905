"""How fast a model will answer here: decode tokens/s from the bytes it reads per token.

Decoding is bandwidth-bound: each new token reads every weight once (the KV cache read is small
at the start of a chat), so tokens/s ~ the machine's decode bandwidth / the weights' bytes. A rough
figure, good for choosing between a 1B and a 14B model, not for a benchmark table.
"""

from __future__ import annotations

# People read about 4-5 words (6-7 tokens) a second; at 10 tokens/s an answer stays ahead of the
# reader, below it the reader waits on the model.
READABLE_TOKENS_PER_S = 10.0


def decode_tokens_per_s(weights_bytes: int, bandwidth_bytes_per_s: float) -> float:
    """Tokens a second a decode reaches when it streams ``weights_bytes`` per token."""
    if weights_bytes <= 0:
        raise ValueError("a model's weights have a positive size")
    return bandwidth_bytes_per_s / weights_bytes


def is_readable(tokens_per_s: float | None) -> bool:
    """At a readable pace (or unknown, when nothing says otherwise)."""
    return tokens_per_s is None or tokens_per_s >= READABLE_TOKENS_PER_S


def format_speed(tokens_per_s: float) -> str:
    """ "~25 tokens/s": two significant figures at most, "under 1 token/s" for the slowest."""
    if tokens_per_s < 1:
        return "under 1 token/s"
    if tokens_per_s < 10:
        n = round(tokens_per_s)
        return f"~{n} token{'s' if n != 1 else ''}/s"
    digits = len(str(int(tokens_per_s))) - 2
    return f"~{round(tokens_per_s, -digits):.0f} tokens/s"
