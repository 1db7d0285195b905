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
