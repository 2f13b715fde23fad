"""Job functions for the RQ test (RQ imports them by name)."""

from __future__ import annotations


def multiply(x: int, y: int) -> int:
    return x * y
