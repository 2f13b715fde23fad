"""A compaction lets go of the GIL while the store's users read from the device, and only then
(engine/f2/pacing.py)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from xxhash import xxh3_64_intdigest

from faster_backend.engine.f2 import pacing
from faster_backend.engine.f2.pacing import Pacer

from .test_f2 import _all_cold, f2_store


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses pacers take (``time.sleep`` calls), recorded instead of slept."""
    calls: list[float] = []
    monkeypatch.setattr(pacing, "_sleep", calls.append)
    return calls


def test_a_pacer_pauses_for_a_window_after_demand_moves_and_never_when_urgent(
    sleeps: list[float],
) -> None:
    reads = [0]
    urgent = [False]
    pace = Pacer(lambda: reads[0], lambda: urgent[0], every=4, window=3)
    for _ in range(40):
        pace()
    assert sleeps == []  # no reads: a busy user would take the GIL for a switch interval
    reads[0] += 1
    for _ in range(40):  # 10 looks: the first sees the move, and 3 in all pause
        pace()
    assert sleeps == [0, 0, 0] and pace.pauses == 3
    reads[0] += 1
    urgent[0] = True  # writers wait for room: no pause, whatever the readers do
    for _ in range(40):
        pace()
        reads[0] += 1
    assert pace.pauses == 3


@pytest.mark.parametrize("users_read", [False, True])
def test_a_compaction_pauses_every_few_records_while_users_read_and_not_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, users_read: bool
) -> None:
    kv = f2_store(tmp_path)
    try:
        for i in range(3000):
            kv.upsert(b"key%d" % i, b"v" * 40)
        kv._log.flush_tail()
        # the records the compaction has read so far, at each of its pauses
        read = [0]
        at_pauses: list[int] = []
        monkeypatch.setattr(pacing, "_sleep", lambda _: at_pauses.append(read[0]))
        records = kv._log.records

        def counted(start: int, end: int) -> Any:
            for record in records(start, end):
                read[0] += 1
                yield record

        monkeypatch.setattr(kv._log, "records", counted)
        # users start device reads all the time; or none do (a bulk load, say)
        pacer = Pacer(itertools.count().__next__ if users_read else lambda: 0)
        monkeypatch.setattr(kv, "_pacer", lambda: pacer)
        moved = kv.compact(kv._log.head_address)
        assert moved > 100 and read[0] >= 2 * moved  # (the range, twice)
        if users_read:  # never more than 16 records (and a pacer's look) without a pause
            ends = [*at_pauses, read[0]]
            assert max(b - a for a, b in zip([0, *at_pauses], ends, strict=True)) <= 16
        else:
            assert at_pauses == [] and pacer.pauses == 0
        assert all(kv.read(b"key%d" % i) == b"v" * 40 for i in range(3000))
    finally:
        kv.close()


def test_users_cold_reads_move_the_demand_and_the_compactions_own_do_not(
    tmp_path: Path,
) -> None:
    kv = f2_store(tmp_path, read_cache_size=0)
    try:
        model: dict[bytes, bytes] = {b"k%d" % i: b"v%d" % i for i in range(200)}
        for key, value in model.items():
            kv.upsert(key, value)
        model.update(_all_cold(kv))
        key = b"k7"
        assert kv._cold.lookup(key, xxh3_64_intdigest(key)) is not None  # cold, not hot
        kv._compactor = 0
        before = kv._n_user_cold_reads
        assert kv.stats()["compaction_pauses"] == 0  # nobody read while it loaded
        assert kv.read(key) == model[key]
        assert kv._n_user_cold_reads == before + 1
        got: list[Any] = []

        def compactor() -> None:
            kv._pacer()  # this thread now runs a compaction: its cold reads are its own
            got.append(kv.read(key))

        thread = threading.Thread(target=compactor)
        thread.start()
        thread.join()
        assert got == [model[key]] and kv._n_user_cold_reads == before + 1
        # and the other way round: this thread compacts, another one reads
        pace = kv._pacer()
        pace.pause()
        assert kv.stats()["compaction_pauses"] == 0
        reader = threading.Thread(target=lambda: got.append(kv.read(b"k8")))
        reader.start()
        reader.join()
        pace.pause()
        assert got[-1] == model[b"k8"] and kv.stats()["compaction_pauses"] == 1
    finally:
        kv.close()
