"""Argument types shared by the commands: counts that argparse checks before any work starts."""

from __future__ import annotations

import argparse


def at_least(minimum: int):
    """An ``int`` type for argparse that refuses values below ``minimum`` with a usage error."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its "invalid int value" message
    return parse


positive_int = at_least(1)
non_negative_int = at_least(0)


MIN_CONTEXT = 64  # tokens: below this no chat template and answer fit; llama.cpp would take 0 as "the model's own"
context_length = at_least(MIN_CONTEXT)


def byte_size(text: str) -> int:
    """``16G``, ``800M``, ``123456`` for argparse: a clear usage error for anything else."""
    from macapp.core.units import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16G, 800M or a number of bytes)") from None


byte_size.__name__ = "size"


def add_budget_option(p: argparse.ArgumentParser, help_prefix: str = "") -> None:
    """``--budget BYTES``: the memory budget estimates are judged against (default: this machine's)."""
    p.add_argument(
        "--budget",
        type=byte_size,
        default=None,
        metavar="BYTES",
        help=f"{help_prefix}memory budget (e.g. 16G); default: this machine's (see `macapp doctor`)",
    )


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads N``: llama.cpp's CPU threads (default: Settings' CPU threads, else automatic)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for llama.cpp (default: your setting, else one per physical core)",
    )


def add_context_options(p: argparse.ArgumentParser, ctx_default: int | None, ctx_help: str, kv_default: str | None):
    """``--ctx N`` (at least ``MIN_CONTEXT`` tokens) and ``--kv-type`` (the KV cache's element type)."""
    from macapp.core.models.estimate import KV_TYPES

    p.add_argument("--ctx", type=context_length, default=ctx_default, metavar="N", help=ctx_help)
    p.add_argument(
        "--kv-type",
        choices=list(KV_TYPES),
        default=kv_default,
        help="KV cache element type: f16 (full precision) or q8_0 (half the memory)"
        + (f" (default {kv_default})" if kv_default else ""),
    )
