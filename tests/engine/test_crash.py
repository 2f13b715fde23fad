"""Crash test in FASTER's SumStore style: kill -9 a writer at random moments, recover, verify.

After every recovery: each acknowledged operation is present (durability="always"), each
session's state is exactly the prefix of its operations up to its recovered serial number
(counter sums equal the number of increments in that prefix, upserts after it are absent), and
the key count is exact. Sessions continue across cycles, so the checks accumulate.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from crash_child import (
    COUNTERS,
    counter_key,
    is_upsert,
    open_store,
    run_and_kill,
    upsert_key,
    upsert_value,
)

CYCLES = int(os.environ.get("FASTER_CRASH_CYCLES", "25"))
THREADS = 3


def run_child_and_kill(path: Path, rng: random.Random, tiering: str) -> dict[int, int]:
    """Start the child, let it work for a random time, kill -9 it; the last ack per thread."""
    return run_and_kill(path, THREADS, rng.uniform(0.05, 0.6), tiering)


stats: list[dict[str, object]] = []


def verify(path: Path, acks: dict[int, int], tiering: str) -> dict[int, int]:
    kv = open_store(str(path), durability="none", tiering=tiering)
    try:
        serials = {int(sid[1:]): n for sid, n in kv.recover().items()}
        expected_keys = 0
        for t in range(THREADS):
            r = serials.get(t, 0)
            assert r >= acks.get(t, 0), f"session {t}: acknowledged {acks.get(t)} > recovered {r}"
            increments = [0] * COUNTERS
            for n in range(1, r + 1):
                if not is_upsert(n):
                    increments[n % COUNTERS] += 1
            for c in range(COUNTERS):
                got = kv.read(counter_key(t, c))
                assert int(got or 0) == increments[c], (t, c, got, increments[c], r)
                expected_keys += 1 if increments[c] else 0
            for n in range(3, r + 1, 3):
                assert kv.read(upsert_key(t, n)) == upsert_value(n), (t, n, r)
                expected_keys += 1
            for n in range(r + 1, r + 60):  # nothing beyond the prefix
                if is_upsert(n):
                    assert kv.read(upsert_key(t, n)) is None, (t, n, r)
        assert len(kv) == expected_keys
        assert len(set(kv.keys())) == expected_keys
        stats.append(kv.stats())
        return serials
    finally:
        kv.close()


@pytest.mark.slow
@pytest.mark.parametrize("tiering", ["single", "f2"])
def test_kill_9_cycles_keep_every_acknowledged_write(tmp_path: Path, tiering: str) -> None:
    rng = random.Random(int(os.environ.get("FASTER_CRASH_SEED", "7")))
    serials: dict[int, int] = {}
    stats.clear()
    cycles = CYCLES if tiering == "single" else max(1, CYCLES * 3 // 5)
    for _ in range(cycles):
        acks = run_child_and_kill(tmp_path, rng, tiering)
        assert acks, "the child acknowledged nothing before it was killed"
        new = verify(tmp_path, acks, tiering)
        for t, n in serials.items():
            assert new.get(t, 0) >= n  # a recovered prefix never shrinks
        serials = new
    assert sum(serials.values()) > cycles * 10
    # the runs went through eviction, disk reads and compaction, not only memory
    last = stats[-1]
    assert int(last["log_begin_address"]) > 64, last  # type: ignore[call-overload]
    if tiering == "single":
        assert int(last["disk_reads"]) > 0, last  # type: ignore[call-overload]
    else:  # records moved to the cold tier and were read back from it
        assert int(last["cold_log_records"]) > 0, last  # type: ignore[call-overload]
        assert int(last["cold_reads"]) > 0, last  # type: ignore[call-overload]
