"""Builds the data directories the tool tests corrupt, in a child process that ends like a
crash (os._exit after its last commit, no clean-close checkpoint).

Operation i writes the value ``b"op<i>"`` (or deletes), so the state of a recovered store tells
exactly which prefix of the operations it holds.

    python store_builder.py DIR
"""

from __future__ import annotations

import os
import sys

from faster_backend import FasterKV

OPTIONS = dict(memory_size="256KiB", page_size="4KiB", segment_size="32KiB")


def operations() -> list[tuple[bytes, bytes | None]]:
    """(key, value or None for a delete) in order."""
    ops: list[tuple[bytes, bytes | None]] = []
    for i in range(1500):
        ops.append((b"k%d" % i, None))
    for i in range(800):
        ops.append((b"k%d" % (i * 3 % 1500), None))
    for i in range(100):
        ops.append((b"k%d" % (1000 + i), None))  # deletes
    for i in range(600):
        ops.append((b"k%d" % (1500 + i), None))
    return [(k, None if 2300 <= n < 2400 else b"op%d" % n) for n, (k, _) in enumerate(ops)]


# indexes of ops after which the builder takes a checkpoint / a commit
FOLD_OVER_AT = 1500
SNAPSHOT_AT = 2300
COMMITS_AT = (1800, 2100, 2400, 2700, 3000)


def build(path: str) -> None:
    kv = FasterKV(path, durability="periodic", commit_interval_ms=3_600_000, **OPTIONS)
    for n, (key, value) in enumerate(operations(), 1):
        if value is None:
            kv.delete(key)
        else:
            kv.upsert(key, value)
        if n == FOLD_OVER_AT:
            kv.checkpoint("fold-over")
        if n == SNAPSHOT_AT:
            kv.checkpoint("snapshot")
        if n in COMMITS_AT:
            kv.commit()
    os._exit(0)


if __name__ == "__main__":
    build(sys.argv[1])
