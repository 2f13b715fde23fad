"""F2 across restarts: every key of both tiers reads back (values, deletes, TTLs) against a dict
model, a hypothesis model with restarts, the manifest's corruption checks and fallback, and the
facade's ``tiering`` argument and configuration key. (kill -9: tests/engine/test_crash.py.)"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule
from xxhash import xxh3_64_intdigest

from faster_backend import FasterKV
from faster_backend.config import ConfigError, load_config
from faster_backend.engine import EngineError
from faster_backend.engine import faster_kv as faster_kv_module
from faster_backend.engine.checkpoint import CorruptFileError
from faster_backend.engine.f2 import F2Kv
from faster_backend.engine.f2.manifest import SLOT_NAMES, decode

from .devices.conftest import _DIRECT_OK, _DIRECT_WHY
from .test_f2 import F2StoreModel, f2_store, wait_for

Model = dict[bytes, tuple[bytes, float | None]]  # key -> (value, absolute expiry or None)
KEYS = 2000


@pytest.fixture
def clock() -> Iterator[list[float]]:
    """A fake clock shared with the engine: ``clock[0]`` is now."""
    now = [5_000_000.0]
    orig = faster_kv_module._now
    faster_kv_module._now = lambda: now[0]  # type: ignore[assignment]
    yield now
    faster_kv_module._now = orig  # type: ignore[assignment]


def workload(kv: F2Kv, model: Model, now: list[float], seed: int, n: int) -> None:
    """Upserts (some with TTLs), deletes and RMWs over KEYS keys, compacting both tiers."""
    rng = random.Random(seed)
    for i in range(n):
        key = b"key%d" % rng.randrange(KEYS)
        r = rng.random()
        if r < 0.1:
            assert kv.delete(key) == (live(model, key, now[0]) is not None)
            model.pop(key, None)
        elif r < 0.2:
            ttl = rng.choice([1.0, 50.0, 5000.0])
            value = b"t%d" % i
            kv.upsert(key, value, ttl)
            model[key] = (value, int((now[0] + ttl) * 1000) / 1000)
        elif r < 0.3:
            old = live(model, key, now[0])
            kv.rmw(key, lambda v: (v or b"") + b"+")
            model[key] = ((old or b"") + b"+", model[key][1] if old is not None else None)
        else:
            value = bytes([i % 251]) * rng.randrange(1, 90)
            kv.upsert(key, value)
            model[key] = (value, None)
        if i % 500 == 499:
            now[0] += 2.0  # the 1-second TTLs run out on the way
            kv.compact()  # hot-cold, whatever the hot log's size
        if i % 1500 == 1499:
            kv.compact_cold(kv.stats()["cold_log_tail_address"])  # all of it on the device


def live(model: Model, key: bytes, now: float) -> bytes | None:
    item = model.get(key)
    if item is None or (item[1] is not None and item[1] * 1000 <= int(now * 1000)):
        return None
    return item[0]


def check(kv: F2Kv, model: Model, now: float) -> None:
    for i in range(KEYS):
        key = b"key%d" % i
        value = live(model, key, now)
        assert kv.read(key) == value, key
        got = kv.read_with_expiry(key)
        if value is None:
            assert got is None, key
        else:
            assert got is not None and got[0] == value
            expiry = model[key][1]
            assert (got[1] is None) == (expiry is None), key
            if expiry is not None:
                assert got[1] == pytest.approx(expiry, abs=0.002)
    expected = {k for k in model if live(model, k, now) is not None}
    assert set(kv.keys()) == expected
    for key in model:  # exists() drops expired records, so that len() is exact
        kv.exists(key)
    assert len(kv) == len(expected)


def test_every_key_reads_back_after_restarts(tmp_path: Path, clock: list[float]) -> None:
    model: Model = {}
    kv = f2_store(tmp_path)
    workload(kv, model, clock, 1, 4000)
    st = kv.stats()
    assert st["cold_log_records"] > 0 and st["cold_cold_compactions"] > 0
    seq = st["f2_manifest_seq"]
    assert seq > st["hot_cold_compactions"]  # a manifest per compaction, and the first one
    kv.checkpoint()  # writes one more (background compactions may add theirs)
    assert kv.stats()["f2_manifest_seq"] > seq
    kv.close()
    for round_ in range(2):
        kv = f2_store(tmp_path)
        check(kv, model, clock[0])
        assert kv.stats()["cold_log_records"] > 0
        workload(kv, model, clock, 2 + round_, 2500)
        kv.close()  # a clean close checkpoints both tiers
    kv = f2_store(tmp_path)
    check(kv, model, clock[0])
    kv.clear()
    kv.upsert(b"after", b"clear")
    kv.close()
    kv = f2_store(tmp_path)
    assert kv.read(b"key1") is None and kv.read(b"after") == b"clear" and len(kv) == 1
    kv.close()


@pytest.mark.parametrize("durability", ["always", "periodic"])
def test_commits_without_a_checkpoint_are_recovered(tmp_path: Path, durability: str) -> None:
    """durability="periodic"/"always" commit the hot store; the cold tier's state is in the
    manifest of the last compaction: a store whose last checkpoint predates the compactions
    recovers both (the close checkpoint is skipped by closing the hot files directly)."""
    kv = f2_store(tmp_path, durability=durability, commit_interval_ms=20)
    model: dict[bytes, bytes] = {}
    for i in range(3000):
        key = b"c%d" % (i % 700)
        kv.upsert(key, b"v%d." % i * 8)
        model[key] = b"v%d." % i * 8
        if i % 7 == 0:
            kv.delete(b"c%d" % ((i * 13) % 700))
            model.pop(b"c%d" % ((i * 13) % 700), None)
    kv.run_maintenance()
    kv.compact_cold()
    assert kv.stats()["hot_cold_compactions"] > 0
    if durability == "periodic":  # the background commit covers everything written
        tail = kv.stats()["log_tail_address"]
        wait_for(lambda: kv.stats()["committed_address"] >= tail)
    abandon(kv)
    kv = f2_store(tmp_path)
    assert kv.stats()["checkpoints"] == 0
    for i in range(700):
        assert kv.read(b"c%d" % i) == model.get(b"c%d" % i)
    assert len(kv) == len(model)
    kv.close()


def blind_upserts(tmp_path: Path) -> tuple[F2Kv, dict[bytes, bytes]]:
    """A store whose hot log holds 3000 blind upserts (new keys and rewrites), none settled:
    no background compaction or commit, so a test makes the ones it needs."""
    kv = f2_store(
        tmp_path, durability="periodic", commit_interval_ms=3_600_000, hot_log_size="1MiB"
    )
    model = {}
    for i in range(3000):
        key = b"n%d" % (i % 1200)
        kv.upsert(key, b"v%d" % i * 8)
        model[key] = b"v%d" % i * 8
    return kv, model


def test_a_compaction_right_after_a_commit_is_committed_with_its_settled_count(
    tmp_path: Path,
) -> None:
    """A hot-cold compaction settles its range's blind upserts without writing: its commit at
    the previous commit's tail must still save the new count, or recovery settles the range
    again against the compaction's cold copies (each key its own base) and loses the keys."""
    kv, model = blind_upserts(tmp_path)
    assert not kv.count_is_settled()
    kv.commit()
    moved = kv.compact(
        kv._log.head_address
    )  # settles the range, then commits (no stats(): it counts)
    assert moved > 0 and kv.stats()["log_tail_address"] == kv.stats()["committed_address"]
    abandon(kv)  # before any other commit
    kv = f2_store(tmp_path)
    assert kv.stats()["checkpoints"] == 0
    assert len(kv) == len(model)
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


@contextmanager
def closing_after(kv: F2Kv, copies: int) -> Iterator[None]:
    """While inside: the cold log's ``copies``-th append (by any compaction) is followed by
    what close() does first, which stops the compaction there."""
    append = kv._cold.append
    done = 0

    def append_then_close(*args: Any) -> None:
        nonlocal done
        append(*args)
        done += 1
        if done == copies:
            kv._f2_stopping = True

    kv._cold.append = append_then_close  # type: ignore[method-assign]
    try:
        yield
    finally:
        del kv._cold.append


def cold_records(kv: F2Kv) -> int:
    """The records in the cold log, counted by reading it."""
    cold = kv._cold
    return sum(1 for _ in cold.records(cold.begin_address, cold.tail_address))


def test_a_compaction_stopped_by_close_still_settles_its_range(tmp_path: Path) -> None:
    """close() stops a hot-cold compaction between two moves: its copies stay in the cold log
    and the range in the hot log. Its settling must still finish, or a later one would take a
    key's moved copy for its base and miss the key in len()."""
    kv, model = blind_upserts(tmp_path)
    with closing_after(kv, 50):
        assert kv.compact(kv._log.head_address) == 50
    kv.close()
    for _ in range(2):  # the range moves again after the restart: duplicates, same count
        kv = f2_store(tmp_path)
        assert len(kv) == len(model)
        assert kv.stats()["cold_log_records"] == cold_records(kv)  # the stopped one's copies
        for key, value in model.items():
            assert kv.read(key) == value
        kv.compact(kv._log.head_address)
        kv.close()


def test_a_cold_cold_compaction_stopped_by_close_counts_its_copies(tmp_path: Path) -> None:
    model = filled(tmp_path)
    kv = f2_store(tmp_path)
    with closing_after(kv, 10):
        assert kv.compact_cold(kv._cold.head_address) == 10
    kv.close()
    kv = f2_store(tmp_path)
    assert kv.stats()["cold_log_records"] == cold_records(kv)
    assert len(kv) == len(model)
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


def abandon(kv: F2Kv) -> None:
    """Release an open store's files as a crash would: no checkpoint, nothing flushed."""
    kv._f2_stopping = True
    kv._checkpoints = None
    faster_kv_module.FasterKv.close(kv)
    kv._cold.device.close()
    kv._cold_index.close()
    kv.data_dir.release()


def manifests(path: Path) -> list[tuple[Path, int]]:
    return sorted(((path / n, decode(path / n).seq) for n in SLOT_NAMES), key=lambda x: -x[1])


def filled(path: Path, device: str = "auto") -> dict[bytes, bytes]:
    kv = f2_store(path, device=device)
    model = {}
    for i in range(5000):
        model[b"m%d" % (i % 3000)] = b"x%d" % i * 4
        kv.upsert(b"m%d" % (i % 3000), b"x%d" % i * 4)
    kv.compact(kv.stats()["log_head_address"])  # everything on the device goes cold
    assert kv.stats()["cold_log_records"] > 100
    kv.close()
    return model


def test_a_corrupt_manifest_falls_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = filled(tmp_path)
    newest, _ = manifests(tmp_path)[0]
    data = bytearray(newest.read_bytes())
    data[40] ^= 0xFF
    newest.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        kv = f2_store(tmp_path)
    assert str(newest) in caplog.text and "offset" in caplog.text
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


def test_corrupt_manifests_are_reported_with_file_and_offset(tmp_path: Path) -> None:
    filled(tmp_path)
    for path, _ in manifests(tmp_path):
        path.write_bytes(path.read_bytes()[:-3])  # torn
    with pytest.raises(CorruptFileError) as err:
        f2_store(tmp_path)
    assert "f2.manifest" in str(err.value) and "offset" in str(err.value)
    # the refusal left the directory locked by nobody and the files untouched
    with pytest.raises(CorruptFileError):
        f2_store(tmp_path)


def test_a_corrupt_cold_log_page_is_reported(tmp_path: Path) -> None:
    filled(tmp_path)
    kv = f2_store(tmp_path)
    # the middle of the live cold log: a cold compaction during the fill may have moved the
    # begin past bytes of the first segment, which recovery rightly never reads
    live = (kv.stats()["cold_log_begin_address"] + kv.stats()["cold_log_tail_address"]) // 2
    device = kv._cold.log.device
    segment, offset = (
        Path(device.segment_path(live // device.segment_size)),
        live % device.segment_size,
    )
    kv.close()
    data = bytearray(segment.read_bytes())
    data[offset] ^= 0xFF
    segment.write_bytes(data)
    with pytest.raises(CorruptFileError, match=segment.name):
        f2_store(tmp_path)


DEVICES = [
    "file",
    pytest.param("file_direct", marks=pytest.mark.skipif(not _DIRECT_OK, reason=_DIRECT_WHY)),
]


@pytest.mark.parametrize("device", DEVICES)
def test_a_grown_cold_index_survives_a_crash_and_a_crash_while_growing(
    tmp_path: Path, device: str
) -> None:
    """The cold index grows while the store runs (one chunk to start: crowded at once). After
    a crash it is rebuilt from the cold log with the grown size; a crash between a growth and
    its manifest leaves the old size, and the rebuild uses that. Every key, the count and
    SCAN agree with the model each time, also for keys changed after the growth."""
    kv = f2_store(tmp_path, durability="always", cold_index_chunks=1, device=device)
    model: dict[bytes, bytes] = {}
    for i in range(5000):
        model[b"g%d" % (i % 3000)] = b"x%d" % i * 4
        kv.upsert(b"g%d" % (i % 3000), b"x%d" % i * 4)
    kv.compact(kv._log.head_address)
    grown = kv.stats()["cold_index_chunks"]
    assert kv.stats()["cold_index_growths"] >= 1 and grown >= 32
    for i in range(0, 3000, 3):  # changes after the growth: deletes and new versions
        if i % 2:
            kv.delete(b"g%d" % i)
            model.pop(b"g%d" % i)
        else:
            model[b"g%d" % i] = b"y%d" % i
            kv.upsert(b"g%d" % i, b"y%d" % i)
    kv.compact(kv._log.head_address)

    def check(kv: F2Kv) -> None:
        assert all(kv.read(key) == value for key, value in model.items())
        assert len(kv) == len(model) and set(kv.keys()) == set(model)

    check(kv)
    abandon(kv)
    kv = f2_store(tmp_path, device=device)
    assert kv.stats()["cold_index_rebuilds"] == 1 and kv.stats()["cold_index_chunks"] >= grown
    check(kv)
    chunks = kv.stats()["cold_index_chunks"]

    def crash(*args: Any) -> None:
        raise OSError("simulated crash before the manifest")

    kv._persist_cold = crash  # type: ignore[method-assign]
    with pytest.raises(OSError, match="simulated"):
        kv._grow_cold_index(4, kv._log.begin_address, kv._log.begin_address)
    assert kv._cold_index.n_chunks == 4 * chunks  # the file grew, no manifest names it
    abandon(kv)
    growing = kv._cold_index._growing_path()
    growing.write_bytes(b"left by a crash during a growth")
    kv = f2_store(tmp_path, device=device)
    assert kv.stats()["cold_index_chunks"] == chunks and kv.stats()["cold_index_rebuilds"] == 1
    assert not growing.exists()
    check(kv)
    kv.close()


@pytest.mark.parametrize("device", DEVICES)
def test_the_cold_index_is_trusted_after_a_clean_close_and_rebuilt_after_a_crash(
    tmp_path: Path, device: str
) -> None:
    model = filled(tmp_path, device)  # closed cleanly
    kv = f2_store(tmp_path, device=device)
    # an O_DIRECT store's cold index bypasses the page cache too (the budget binds it)
    direct = bool(fcntl.fcntl(kv._cold_index._fd, fcntl.F_GETFL) & os.O_DIRECT)
    assert direct == (device == "file_direct") == bool(kv.stats()["cold_index_direct"])
    assert kv.stats()["cold_index_rebuilds"] == 0
    for i in range(3000, 3600):  # more cold records, then a crash: the file is in use
        model[b"m%d" % i] = b"y%d" % i
        kv.upsert(b"m%d" % i, b"y%d" % i)
    kv.compact(kv.stats()["log_head_address"])
    abandon(kv)
    kv = f2_store(tmp_path, device=device)
    assert kv.stats()["cold_index_rebuilds"] == 1
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


@pytest.mark.parametrize("device", DEVICES)
def test_a_corrupt_cold_index_is_reported_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, device: str
) -> None:
    model = filled(tmp_path, device)
    index = tmp_path / "cold-index" / "cidx.chunks"
    data = bytearray(index.read_bytes())
    data[4096 + 8 * 5] ^= 0x10  # an entry of chunk 0
    index.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        kv = f2_store(tmp_path, device=device)
    assert str(index) in caplog.text and "offset 4096" in caplog.text
    assert kv.stats()["cold_index_rebuilds"] == 1
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


def test_a_manifest_of_the_older_format_is_refused(tmp_path: Path) -> None:
    filled(tmp_path)
    for path, _ in manifests(tmp_path):
        data = bytearray(path.read_bytes())
        data[:8] = b"F2MANIF1"
        path.write_bytes(data)
    with pytest.raises(CorruptFileError, match="older format"):
        f2_store(tmp_path)


def test_a_manifest_of_the_format_before_blind_upserts_is_read(tmp_path: Path) -> None:
    """F2MANIF2 stores (no uncounted records in their hot log) open as they are."""
    kv = f2_store(tmp_path)
    for i in range(600):
        kv.upsert(b"m%d" % i, b"v%d" % i)
    n = len(kv)
    kv.close()
    for path, _ in manifests(tmp_path):
        body = b"F2MANIF2" + path.read_bytes()[8:-8]
        path.write_bytes(body + xxh3_64_intdigest(body).to_bytes(8, "little"))
    kv = f2_store(tmp_path)
    assert len(kv) == n and kv.read(b"m5") == b"v5"
    kv.close()


def test_a_directory_without_a_manifest_starts_fresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filled(tmp_path)
    for name in SLOT_NAMES:  # as a run that crashed before its first manifest leaves it
        (tmp_path / name).unlink()
    with caplog.at_level(logging.WARNING):
        kv = f2_store(tmp_path)
    assert "discarding" in caplog.text
    assert len(kv) == 0 and kv.read(b"m1") is None
    kv.close()


def test_a_store_with_a_format_1_cold_index_opens_with_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tests/engine/data/f2_format1_store.tgz is a store written by the code before tagged
    chunks (cold index format 1, an entry per 5 hash bits; 84 keys, 105 cold records on 2
    chunks, more chains a chunk than format 2 has entries). Opening it rebuilds the index in
    format 2 from the cold log, doubling the chunks until they fit, and names the new count in
    a manifest; every key reads back, and the next open trusts the index."""
    with tarfile.open(Path(__file__).parent / "data" / "f2_format1_store.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    model = {
        k.encode(): v.encode() for k, v in json.loads((tmp_path / "model.json").read_text()).items()
    }
    store = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="faster_backend.engine.f2.cold_index"):
        kv = f2_store(store, cold_index_chunks=None, cold_log_size="1MiB")
    assert "(format 1)" in caplog.text and "more than 31 chains" in caplog.text
    stats = kv.stats()
    assert stats["cold_index_rebuilds"] == 1 and stats["cold_index_chunks"] == 4
    assert stats["cold_log_records"] == 105
    assert {key: kv.read(key) for key in model} == model
    assert len(kv) == len(model) == len(set(kv.keys()))
    kv.upsert(b"new", b"after the rebuild")
    kv.close()
    kv = f2_store(store, cold_index_chunks=None, cold_log_size="1MiB")
    stats = kv.stats()
    assert stats["cold_index_rebuilds"] == 0 and stats["cold_index_chunks"] == 4
    assert {key: kv.read(key) for key in model} == model and kv.read(b"new") == b"after the rebuild"
    kv.close()


def test_reopening_with_other_sizes(tmp_path: Path) -> None:
    model = filled(tmp_path)
    kv = f2_store(tmp_path)
    kept = kv.stats()["cold_index_chunks"]  # 16, or more if the fill made it grow
    kv.close()
    with pytest.raises(ValueError, match="power of two"):
        f2_store(tmp_path, cold_index_chunks=3 * kept)
    # more chunks: the index grows (a rebuild into a new file, not counted as one at open)
    kv = f2_store(tmp_path, cold_index_chunks=4 * kept)
    stats = kv.stats()
    assert stats["cold_index_chunks"] == 4 * kept and stats["cold_index_growths"] == 1
    assert stats["cold_index_rebuilds"] == 0
    assert all(kv.read(key) == value for key, value in model.items())
    kv.close()
    # fewer: a minimum, the index never shrinks (and was closed cleanly: trusted as it is)
    kv = f2_store(tmp_path, cold_index_chunks=16)
    assert kv.stats()["cold_index_chunks"] == 4 * kept and kv.stats()["cold_index_rebuilds"] == 0
    assert all(kv.read(key) == value for key, value in model.items())
    kv.close()
    with pytest.raises(ValueError, match="page_size"):
        f2_store(tmp_path, page_size="32KiB", memory_size="512KiB")
    # a different memory budget keeps the stored geometry
    kv = f2_store(tmp_path, memory_size="256KiB")
    assert kv.read(b"m1") is not None
    kv.close()


class F2RestartModel(F2StoreModel):
    """test_model's state machine on F2 with checkpoints and restarts in between."""

    @rule()
    def restart(self) -> None:
        self.kv.close()
        self.kv = f2_store(Path(self.tmp.name))  # type: ignore[assignment]

    @rule()
    def checkpoint(self) -> None:
        self.kv.checkpoint()

    @rule(cold=st.booleans(), after=st.integers(1, 30), seed=st.integers(0, 1000))
    def close_during_a_compaction(self, cold: bool, after: int, seed: int) -> None:
        """close() stops a compaction (the background one, or one by hand) after ``after``
        copies to the cold log; the restarted store must still hold every key and count them
        exactly."""
        kv: Any = self.kv
        with closing_after(kv, after):
            # blind upserts of new keys, more than the hot log holds: the compaction that
            # moves a key's first records must settle it with no base, and its copies are
            # where a later settling would look for one
            rng = random.Random(seed)
            for i in range(3000):
                if kv._f2_stopping:
                    break
                key = b"stop%d-%d" % (seed, rng.randrange(600))
                value = bytes([i & 255]) * rng.randrange(40, 100)
                kv.upsert(key, value)
                self.model[key] = (value, None)
            if not kv._f2_stopping:
                if cold:
                    kv.compact_cold(kv._cold.head_address)
                else:
                    kv.compact(kv._log.head_address)
        self.restart()
        for key in list(self.model):
            self.kv.exists(key)  # drops expired records (see count_is_exact)
        assert len(self.kv) == sum(1 for k in self.model if self.live(k) is not None)


TestF2RestartModel = F2RestartModel.TestCase
TestF2RestartModel.settings = settings(max_examples=25, stateful_step_count=50, deadline=None)


# -- the facade and the configuration ----------------------------------------------------------


def test_facade_opens_f2_and_reopens_it(tmp_path: Path) -> None:
    opts: dict[str, Any] = {
        "memory_size": "160KiB",
        "page_size": "16KiB",
        "segment_size": "64KiB",
        "tiering": "f2",
        "hot_log_size": "96KiB",
        "cold_index_chunks": 16,
        "read_cache_size": "8KiB",
    }
    kv = FasterKV(tmp_path, **opts)
    assert isinstance(kv, F2Kv)
    for i in range(2000):
        kv.upsert(b"f%d" % i, b"v%d" % i)
    assert kv.stats()["tiering"] == "f2"
    kv.close()
    kv = FasterKV(tmp_path, **opts)
    assert all(kv.read(b"f%d" % i) == b"v%d" % i for i in range(2000))
    kv.close()
    with pytest.raises(EngineError, match="holds an F2 store"):
        FasterKV(tmp_path, memory_size="160KiB")
    with pytest.raises(ValueError, match="tiering"):
        FasterKV(tmp_path, tiering="f3")
    with pytest.raises(ValueError, match="needs a path"):
        FasterKV(tiering="f2")
    with pytest.raises(ValueError, match="log_size_limit"):
        FasterKV(tmp_path, tiering="f2", log_size_limit="1MiB")
    with pytest.raises(ValueError, match="tiering='f2' only"):
        FasterKV(hot_log_size="1MiB")


def test_config_tiering_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[store]\ntiering = "f3"\n')
    with pytest.raises(ConfigError, match=r"store\.tiering must be one of 'single', 'f2'"):
        load_config(toml, env={})
    data = tmp_path / "data"
    toml.write_text(
        f'[store]\npath = "{data}"\ntiering = "f2"\nmemory_size = "160KiB"\n'
        'page_size = "16KiB"\nsegment_size = "64KiB"\nread_cache_size = "8KiB"\n'
        'cold_index_chunks = 16\nhot_log_size = "96KiB"\ncold_log_size = "1MiB"\n'
    )
    config = load_config(toml, env={})
    kv = FasterKV.from_config(config.store)
    assert isinstance(kv, F2Kv) and kv.cold_log_size == 1 << 20
    kv.upsert(b"a", b"b")
    kv.close()
    kv = FasterKV.from_config(config.store)
    assert kv.read(b"a") == b"b"
    kv.close()


def test_batch_and_counter_operations_reach_the_cold_tier(tmp_path: Path) -> None:
    kv = f2_store(tmp_path)
    kv.upsert_many((b"n%d" % i, b"%d" % i) for i in range(3000))
    kv.compact(kv.stats()["log_head_address"])  # the oldest counters go cold
    assert kv.stats()["cold_log_records"] > 100
    assert kv.incr(b"n1", 5) == 6 and kv.incr(b"new", 2) == 2
    assert kv.read_many([b"n1", b"n2", b"absent", b"new"]) == [b"6", b"2", None, b"2"]
    assert len(kv) == 3001
    kv.close()
    kv = f2_store(tmp_path)
    assert kv.read_many([b"n1", b"n2999", b"new"]) == [b"6", b"2999", b"2"] and len(kv) == 3001
    kv.close()
