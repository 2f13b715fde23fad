"""F2 (hot/cold tiers): the engine's dict-model tests in F2 mode, threads, the cold tier's
semantics (deletes, RMW, expiry, exact counts), memory per cold key and directory handling."""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from faster_backend import FasterKV
from faster_backend.engine import EngineError, StoreClosedError
from faster_backend.engine import faster_kv as faster_kv_module
from faster_backend.engine.f2 import F2Kv, compaction, counting
from faster_backend.engine.f2.cold_index import (
    CHUNK_WORDS,
    ON_SHARED,
    SHARED,
    TAG_BITS,
    TAG_MASK,
    ColdIndex,
    CrowdedChunkError,
    _sorted_pairs,
)
from faster_backend.engine.f2.pacing import NO_PACING
from faster_backend.engine.record import FINAL, INFO, PREV_MASK, TOMBSTONE, UNCOUNTED

from .devices.conftest import _DIRECT_OK, _DIRECT_WHY
from .test_larger_than_memory import LargerThanMemoryModel, rss_after_twenty_budgets
from .test_model import StoreModel, threads_against_a_model

# Tiny tiers: 16 KiB pages, a hot log of a few pages and a small cold log, so hot-cold and
# cold-cold compactions happen within a few hundred writes.
TINY: dict[str, Any] = {
    "memory_size": "96KiB",  # the hot log gets 80 KiB (96 - the read cache - 2 cold pages)
    "page_size": "16KiB",
    "segment_size": "64KiB",
    "index_size": 2,
    "index_load_factor": 1.5,
    "hot_log_size": "96KiB",
    "cold_log_size": "48KiB",
    "cold_index_chunks": 16,
    "read_cache_size": "8KiB",
}


def f2_store(path: Path, **kw: Any) -> F2Kv:
    return F2Kv(path, **{**TINY, **kw})


def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class F2StoreModel(StoreModel):
    """test_model's state machine (every operation, fake clock) on a tiny F2 store."""

    options: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        self.kv.close()
        self.tmp = tempfile.TemporaryDirectory()
        self.kv = f2_store(Path(self.tmp.name), **self.options)  # type: ignore[assignment]
        # len() settles a few records at a time: partial settlings meet every operation
        self.step = counting.SETTLE_STEP
        counting.SETTLE_STEP = 512

    def teardown(self) -> None:
        counting.SETTLE_STEP = self.step
        super().teardown()
        self.tmp.cleanup()

    @rule(n=st.integers(min_value=50, max_value=300), seed=st.integers(0, 1000))
    def bulk(self, n: int, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            key = b"bulk%d" % rng.randrange(200)
            value = bytes([rng.randrange(256)]) * rng.randrange(60)
            self.kv.upsert(key, value)
            self.model[key] = (value, None)

    @rule()
    def maintenance(self) -> None:
        self.kv.run_maintenance()

    @rule()
    def compact_cold(self) -> None:
        self.kv.compact_cold()  # type: ignore[attr-defined]

    @invariant()
    def count_is_exact(self) -> None:
        # exists() drops an expired record wherever it is (read() leaves a cold one, as the
        # single log leaves one on its device): then len() is exactly the live count.
        if random.random() < 0.1:
            for key in list(self.model):
                self.kv.exists(key)
            live = sum(1 for k in self.model if self.live(k) is not None)
            assert len(self.kv) == live


TestF2StoreModel = F2StoreModel.TestCase
TestF2StoreModel.settings = settings(max_examples=40, stateful_step_count=50, deadline=None)


class F2GrowingIndexModel(F2StoreModel):
    """The same with a cold index of one chunk: its 31 tagged entries fill at once, so keys
    go to the shared chain and the index grows, and lookups, counts and SCAN meet shared
    chains and chains from before a growth (engine/f2/cold_index.py)."""

    options = {"cold_index_chunks": 1}

    @rule()
    def all_cold(self) -> None:
        for key, value in _all_cold(self.kv).items():  # its filler keys join the model
            self.model[key] = (value, None)


TestF2GrowingIndexModel = F2GrowingIndexModel.TestCase
TestF2GrowingIndexModel.settings = settings(max_examples=30, stateful_step_count=50, deadline=None)


class F2DirectStoreModel(F2StoreModel):
    """The same on O_DIRECT files (every log and the cold index bypass the page cache), with
    a cold-index entry cache of 8 slots, so that most lookups read the file or a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.kv.close()
        self.kv = f2_store(  # type: ignore[assignment]
            Path(self.tmp.name) / "direct", device="file_direct", cold_index_cache_size=64
        )
        assert self.kv.stats()["cold_index_direct"] == 1


TestF2DirectStoreModel = pytest.mark.skipif(not _DIRECT_OK, reason=_DIRECT_WHY)(
    F2DirectStoreModel.TestCase
)
TestF2DirectStoreModel.settings = settings(max_examples=15, stateful_step_count=50, deadline=None)


class F2LargerThanMemoryModel(LargerThanMemoryModel):
    """test_larger_than_memory's state machine on F2; its compact rule is hot-cold compaction."""

    @initialize(data=st.data())
    def open(self, data: st.DataObject) -> None:
        self.now = 2_000_000.0
        self._orig = faster_kv_module._now
        faster_kv_module._now = lambda: self.now  # type: ignore[assignment]
        self.tmp = tempfile.TemporaryDirectory()
        self.kv = f2_store(Path(self.tmp.name))  # type: ignore[assignment]
        self.model = {}

    @rule()
    def compact_cold(self) -> None:
        self.kv.compact_cold()  # type: ignore[attr-defined]

    @rule()
    def maintenance(self) -> None:
        self.kv.run_maintenance()

    @invariant()
    def tiers_used(self) -> None:
        if hasattr(self, "kv"):
            st_ = self.kv.stats()
            assert st_["compaction_error"] is None


TestF2LargerThanMemory = F2LargerThanMemoryModel.TestCase
TestF2LargerThanMemory.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)


def test_cold_cold_compaction_works_in_windows_of_its_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold-cold compaction reads its range a window of records at a time
    (compaction._BATCH_KEYS) and copies a window's live keys before it reads the next, so a
    range of most of the store's keys is never held in memory at once; every live record is
    still copied once and every key reads back."""
    monkeypatch.setattr(compaction, "_BATCH_KEYS", 7)
    kv = f2_store(tmp_path)
    events: list[tuple[str, int]] = []
    begin_batch = kv._cold.index.begin_batch
    records = kv._cold.records

    def counted(hashes: Any, pace: Any = NO_PACING) -> None:
        hashes = list(hashes)
        events.append(("batch", len(hashes)))
        begin_batch(hashes, pace)

    def read(start: int, end: int) -> Any:
        for record in records(start, end):
            events.append(("record", 1))
            yield record

    model = {}
    for i in range(400):
        key = b"w%d" % (i % 150)
        kv.upsert(key, b"%d" % i)
        model[key] = b"%d" % i
    model.update(_all_cold(kv))
    kv.delete(b"w3")
    del model[b"w3"]
    cold = kv._cold
    until = cold.head_address & ~cold.log.page_mask
    in_range = list(cold.records(0, until))
    newest = {bytes(rec[16 : 16 + kl]): info for _, info, kl, _, rec in in_range}
    live = sum(1 for info in newest.values() if not info & TOMBSTONE)
    monkeypatch.setattr(kv._cold.index, "begin_batch", counted)
    monkeypatch.setattr(kv._cold, "records", read)
    appended = cold.records_appended
    copied = compaction.cold_cold(kv, until)
    assert copied == cold.records_appended - appended
    read_so_far, prev = 0, ""
    for kind, n in events:  # a batch of at most 7 keys after each window of 7 records
        if kind == "record":
            read_so_far += 1
            assert read_so_far % 7 != 1 or read_so_far == 1 or prev == "batch"
        else:
            assert 0 < n <= 7
        prev = kind
    assert read_so_far == len(in_range) > 7 * 4
    # the keys still live in the range, each copied once (older versions passed over)
    assert copied <= live and copied > 7
    assert {key: kv.read(key) for key in model} == model and kv.read(b"w3") is None
    assert len(kv) == len(model) == len(set(kv.keys()))
    kv.close()


def test_model_runs_reach_both_compactions(tmp_path: Path) -> None:
    """The tiny configuration the state machines use really moves data between tiers."""
    kv = f2_store(tmp_path)
    rng = random.Random(3)
    model: dict[bytes, bytes] = {}
    for i in range(12000):
        key = b"k%d" % rng.randrange(1500)
        value = b"%d" % i * rng.randrange(1, 10)
        kv.upsert(key, value)
        model[key] = value
    kv.run_maintenance()
    assert kv.stats()["hot_cold_compactions"] > 0
    kv.compact_cold()  # the background thread may have done some already; one more here
    st_ = kv.stats()
    assert st_["cold_cold_compactions"] > 0 and st_["cold_cold_copied_records"] > 0
    assert st_["cold_log_records"] > 0 and st_["cold_index_updates"] > 0
    for key, value in model.items():
        assert kv.read(key) == value
    assert len(kv) == len(model) == len(set(kv.keys()))
    assert kv.stats()["cold_reads"] > 0
    kv.close()


def _all_cold(kv: F2Kv) -> dict[bytes, bytes]:
    """Move everything hot-cold compaction can reach into the cold tier; returns the filler
    keys it wrote on the way, with their values."""
    hlog = kv._log
    hlog.flush_tail()
    with kv._lock:
        hlog.shift_read_only(hlog.tail_address)
    # open pages until the old ones are evicted, then move them
    fillers = {}
    for i in range(4 * hlog.memory_pages * hlog.page_size // 64):
        key, value = b"filler%d" % (i % 50), b"f" * (24 + 8 * (i // 50 % 2))  # never in place
        kv.upsert(key, value)
        fillers[key] = value
    kv.compact(kv._log.head_address)
    return fillers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blind_upserts_are_counted_by_compactions_and_len(tmp_path: Path, seed: int) -> None:
    """Blind upserts leave the count to the compactions' settling (len() is called rarely, so
    most of the count is settled by hot-cold compaction) and survive a restart."""
    rng = random.Random(seed)
    kv = f2_store(tmp_path)
    model: dict[bytes, bytes] = {}
    for i in range(6000):
        key = b"b%d" % rng.randrange(800)
        op = rng.random()
        if op < 0.6:
            value = b"%d" % i * rng.randrange(1, 30)
            kv.upsert(key, value)
            model[key] = value
        elif op < 0.75:
            assert kv.delete(key) is (model.pop(key, None) is not None)
        elif op < 0.85:
            new = kv.rmw(key, lambda old: (old or b"") + b"+")
            assert new == model.get(key, b"") + b"+"
            model[key] = new  # type: ignore[assignment]
        elif op < 0.9:
            assert kv.add(key, b"a") is (key not in model)
            model.setdefault(key, b"a")
        elif op < 0.93:
            kv.upsert_many([(key, b"m"), (b"x" + key, b"m")])
            model[key] = model[b"x" + key] = b"m"
        elif op < 0.96:
            kv.compact()
        elif op < 0.97:
            kv.compact_cold()
        if i == 3999:  # stats() settles the count like len(), after reading its counters
            assert kv.stats()["live_keys"] == len(model) == len(kv)
    kv.run_maintenance()
    kv.compact_cold(kv._cold.head_address)
    for _ in range(400):  # unsettled when the store closes
        key = b"b%d" % rng.randrange(1200)
        kv.upsert(key, b"late")
        model[key] = b"late"
    kv.close()
    kv = f2_store(tmp_path)
    assert kv._n_blind  # the count after a restart is settled by the first len()
    assert kv.stats()["live_keys"] == len(model) == len(kv) == len(set(kv.keys()))
    for key, value in model.items():
        assert kv.read(key) == value
    kv.close()


class _OwnedLatch:
    """The store's latch, knowing which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def acquire(self) -> None:
        self._lock.acquire()
        self.owner = threading.get_ident()

    def release(self) -> None:
        self.owner = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize("writer", [False, True], ids=["alone", "with-a-writer"])
def test_len_settles_in_steps_without_the_latch_for_device_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: bool
) -> None:
    """len() after many blind upserts of cold keys settles the immutable part of the hot log in
    steps and looks the bases up (cold lookups, hot device reads) without holding the latch,
    so readers and writers go on meanwhile; the count stays exact with a writer running."""
    monkeypatch.setattr(counting, "SETTLE_STEP", 8192)
    steps: list[tuple[int, int]] = []
    step = counting._settle_step
    monkeypatch.setattr(
        counting, "_settle_step", lambda kv, a, b: (steps.append((a, b)), step(kv, a, b))[1]
    )
    kv = f2_store(tmp_path, hot_log_size="4MiB")  # no hot-cold compaction settles them
    kv._lock = latch = _OwnedLatch()
    me = threading.get_ident()
    latched: list[str] = []
    for name, obj in (("cold lookup", kv._cold), ("hot device read", kv)):
        attr = "lookup" if obj is kv._cold else "_read_record"
        orig = getattr(obj, attr)

        def watched(*a: Any, _orig: Any = orig, _name: str = name) -> Any:
            if latch.owner == me == threading.get_ident():
                latched.append(_name)
            return _orig(*a)

        monkeypatch.setattr(obj, attr, watched)
    model: set[bytes] = set()
    for i in range(600):
        kv.upsert(b"c%d" % i, b"cold" * 8)
        model.add(b"c%d" % i)
    model.update(_all_cold(kv))
    assert len(kv) == len(model)
    rng = random.Random(5)
    for i in range(3000):  # blind: the keys are cold or absent, unless written lately
        key = b"c%d" % rng.randrange(900)
        if rng.random() < 0.2:
            kv.delete(key)
            model.discard(key)
        else:
            kv.upsert(key, b"%d" % i * 6)
            model.add(key)
    assert kv._n_blind > 1000 and kv._log.head_address > kv._settled  # some on the device
    stop = threading.Event()
    written: set[bytes] = set()

    def write() -> None:
        j = 0
        while not stop.is_set() or j < 200:
            kv.upsert(b"w%d" % (j % 700), b"w")
            written.add(b"w%d" % (j % 700))
            j += 1

    thread = threading.Thread(target=write)
    if writer:
        thread.start()
    try:
        counted = len(kv)
    finally:
        stop.set()
        if writer:
            thread.join()
    assert len(steps) > 3, steps  # the immutable part, a step at a time
    assert latched == []
    if not writer:
        assert counted == len(model)
    assert len(kv) == len(model) + len(written) == len(set(kv.keys()))
    kv.close()


def test_close_waits_for_a_len_step_and_stops_the_settling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() while len() settles (a RESP server's shutdown during a DBSIZE): the step that
    reads the files without the latch ends before they close, the settling stops with
    StoreClosedError, and the reopened store counts exactly."""
    monkeypatch.setattr(counting, "SETTLE_STEP", 8192)
    in_step, go_on = threading.Event(), threading.Event()
    steps: list[int] = []
    step = counting._settle_step

    def held(kv: F2Kv, start: int, end: int) -> None:
        steps.append(start)
        if len(steps) == 3:  # the second step
            in_step.set()
            assert go_on.wait(10)
            time.sleep(0.2)  # close() must still be waiting for this step
        step(kv, start, end)
        steps.append(-1)  # done

    monkeypatch.setattr(counting, "_settle_step", held)
    kv = f2_store(tmp_path, hot_log_size="4MiB")
    model: set[bytes] = set()
    for i in range(3000):  # blind upserts of new keys, most of them on the device
        kv.upsert(b"k%d" % (i % 2000), b"v" * 24)
        model.add(b"k%d" % (i % 2000))
    assert kv._log.head_address > kv._settled + 3 * 8192
    checkpoint = kv.checkpoint

    def slow_checkpoint(kind: str | None = None) -> int:
        seq = checkpoint(kind)  # the held step ends before it can pause the compactions
        time.sleep(0.2)  # room for another step before the files close: none may start
        return seq

    kv.checkpoint = slow_checkpoint  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def count() -> None:
        try:
            len(kv)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=count)
    thread.start()
    assert in_step.wait(10)
    closer = threading.Thread(target=kv.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # waits for the step
    go_on.set()
    closer.join(10)
    thread.join(10)
    assert not closer.is_alive() and not thread.is_alive()
    assert steps[-1] == -1 and len(steps) == 4  # the held step ended; no step after it
    assert len(errors) == 1 and isinstance(errors[0], StoreClosedError), errors
    kv = f2_store(tmp_path)
    assert len(kv) == len(model) == len(set(kv.keys()))
    kv.close()


def test_the_cold_index_entry_cache_is_written_through(tmp_path: Path) -> None:
    path = tmp_path / "cidx"
    ix = ColdIndex(path, 4, cache_bytes=48)  # 4 sets of 2 for 4 x 2^14 pairs: checks tell
    ix.create()
    h = 0x0000_1200_0000_0001  # chunk 1, tag 0x12
    other, third = h + (8 << 40), h + (16 << 40)  # same cache set, other tags
    assert ix.find(h) == (0, 0) and ix.cache_hits == 0  # read from the file, then cached
    assert ix.find(h) == (0, 0) and ix.cache_hits == 1  # the shared chain known to be empty
    assert ix.shared(h) == 0 and ix.stats()["cold_index_device_reads"] == 1
    page = bytearray(32)
    INFO.pack_into(page, 0, UNCOUNTED | FINAL | 77)
    ix.set(h, 4096, page, 0)
    assert INFO.unpack_from(page, 0)[0] == FINAL  # linked to the empty chain, counted
    assert ix.find(h) == (4096, 0) and ix.cache_hits == 2
    ix.set(other, 8192, page, 0)  # h's pair moves to the set's second way
    assert ix.find(h) == (4096, 0) and ix.cache_hits == 3  # a hit there moves it back
    ix.set(third, 12288, page, 0)  # the second way's pair (other's) leaves
    assert ix.find(h) == (4096, 0) and ix.cache_hits == 4
    assert ix.find(other) == (8192, 0) and ix.cache_hits == 4  # from the file again
    assert ColdIndex(path, 4).find(third) == (12288, 0)  # the file has every update
    ix.rebuild([(64, h, False)])  # empties the file and the cache
    assert ix.find(h) == (64, 0) and ix.find(h) == (64, 0) and ix.cache_hits == 5
    other_chunk = h + 1  # chunk 2: its shared chain is not known to be empty
    assert ix.find(other_chunk) == (0, 0) and ix.find(other_chunk) == (0, 0)
    assert ix.stats()["cold_index_memory_bytes"] == 48 + 1  # the slots, a bit a chunk
    ix.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 59), st.booleans()), max_size=150),
    st.integers(1, 11),
)
def test_the_entry_cache_answers_only_for_its_own_pair(
    steps: list[tuple[int, bool]], words: int
) -> None:
    """Any cache size (one word, or two ways of any number of sets) and any order of updates
    and lookups: a lookup returns the pair's newest address, never another pair's."""
    with tempfile.TemporaryDirectory() as tmp:
        ix = ColdIndex(Path(tmp) / "cidx", 2, cache_bytes=8 * words)
        ix.create()
        model: dict[int, int] = {}
        page = bytearray(8)
        for i, (p, update) in enumerate(steps):
            h = (p >> 1) << 40 | (p & 1)  # 30 tags a chunk: every pair has an entry
            if update:
                INFO.pack_into(page, 0, FINAL)
                ix.set(h, 8 * (i + 1), page, 0)
                model[p] = 8 * (i + 1)
            else:
                assert ix.find(h)[0] == model.get(p, 0)
        for p in range(60):
            h = (p >> 1) << 40 | (p & 1)
            assert ix.find(h)[0] == ix.find(h)[0] == model.get(p, 0)
        ix.close()


def pair(h: int, chunks: int = 1 << 10) -> tuple[int, int]:
    """A hash's (chunk, tag) in the cold index (cold_index.py)."""
    return h & (chunks - 1), (h >> 40) & 0x3FFF


def test_a_cold_index_batch_reads_its_chunks_at_once_and_writes_them_at_its_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cidx"
    ix = ColdIndex(path, 1 << 10, cache_bytes=64)  # 8 slots: most pairs are not cached
    ix.create()
    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    page = bytearray(32)
    for i, h in enumerate(hashes[:100]):  # written through, one entry at a time
        ix.set(h, 4096 * (i + 1), page, 0)
    before = {h: ix.find(h)[0] for h in hashes}
    reads = ix.stats()["cold_index_device_reads"]
    ix.begin_batch(hashes)
    # 300 chunks of a 256 KiB file: a few sector runs, not one read per chunk
    assert ix.stats()["cold_index_device_reads"] - reads < 10
    reads = ix.stats()["cold_index_device_reads"]
    assert {h: ix.find(h)[0] for h in hashes} == before
    assert ix.stats()["cold_index_device_reads"] == reads  # all from the batch
    on_file = ColdIndex(path, 1 << 10)
    head = {pair(h): a for h, a in before.items()}  # hashes may share a pair
    for i, h in enumerate(hashes):
        INFO.pack_into(page, 0, FINAL)
        ix.set(h, 1 << 30 | i << 3, page, 0)
        assert (INFO.unpack_from(page, 0)[0] & PREV_MASK) == head[pair(h)]  # the old head
        head[pair(h)] = 1 << 30 | i << 3
    before = {h: head[pair(h)] for h in hashes}
    assert {h: ix.find(h)[0] for h in hashes} == before  # readers see the batch
    assert on_file.find(hashes[-1])[0] != before[hashes[-1]]  # the file does not have it yet
    n = hashes[0] & ((1 << 10) - 1)  # a scan's chunk shows the batch's entries too
    words = CHUNK_WORDS.unpack(ix.chunk(n))
    for h in hashes:
        if h & ((1 << 10) - 1) == n:
            assert (pair(h)[1] << 48 | before[h]) in words
    assert ix.stats()["cold_index_device_reads"] == reads + 1  # the file's, the batch over it
    ix.end_batch()
    fresh = ColdIndex(path, 1 << 10)
    assert {h: fresh.find(h)[0] for h in hashes} == before  # the file has every update
    on_file.close()
    fresh.close()
    ix.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, (1 << 64) - 1), max_size=400), st.integers(0, 30))
def test_a_batch_sorts_its_pairs_in_parts_into_one_order(hashes: list[int], bits: int) -> None:
    """begin_batch's pairs come out sorted whatever the index size (fewer pair bits than
    parts too), duplicates kept."""
    mask = (1 << bits) - 1
    pairs = [(h & mask) << TAG_BITS | (h >> 40) & TAG_MASK for h in hashes + hashes[:7]]
    assert list(_sorted_pairs(hashes + hashes[:7], mask)) == sorted(pairs)


def test_a_full_chunk_puts_new_keys_on_its_shared_chain_until_an_entry_frees(
    tmp_path: Path,
) -> None:
    """One chunk: 31 tags take the tagged entries, the next ones go to the shared chain
    (marked ON_SHARED, so that a rebuild puts them there again); a tag whose chain fell below
    the cold begin address frees its entry for another tag."""
    ix = ColdIndex(tmp_path / "cidx", 1, cache_bytes=1 << 12)
    ix.create()
    begin = [0]
    ix.log_begin = lambda: begin[0]
    hashes = [t << 40 for t in range(1, 41)]  # 40 tags
    records: list[tuple[int, int, bool]] = []
    page = bytearray(8)

    def put(h: int, address: int) -> int:
        INFO.pack_into(page, 0, FINAL)
        ix.set(h, address, page, 0)
        info = INFO.unpack_from(page, 0)[0]
        records.append((address, h, bool(info & ON_SHARED)))
        return info

    assert ix.find(hashes[-1]) == (0, 0)  # the shared chain is known to be empty now ...
    for i, h in enumerate(hashes):
        info = put(h, 4096 + 64 * i)
        if i < SHARED:
            assert info == FINAL  # a tagged entry of its own: an empty chain before it
        else:  # on the shared chain, linked to its previous head
            assert info & ON_SHARED
            assert info & PREV_MASK == (4096 + 64 * (i - 1) if i > SHARED else 0)
    assert ix.stats()["cold_index_overflows"] == 40 - SHARED
    for i, h in enumerate(hashes):
        chain, shared = ix.find(h)
        assert chain == (4096 + 64 * i if i < SHARED else 0)
        assert ix.shared(h) == 4096 + 64 * 39  # ... until it was not
    # tag 1's chain is gone (below the begin address): tag 41 claims its entry
    begin[0] = 4096 + 64
    h41 = 41 << 40
    assert put(h41, 1 << 20) == FINAL  # a fresh chain, not linked to tag 1's
    assert ix.find(h41)[0] == 1 << 20 and ix.stats()["cold_index_overflows"] == 40 - SHARED
    assert ix.find(hashes[0])[0] < begin[0]  # tag 1: nothing left on a tagged chain
    # a tag that went shared gets its own entry when one frees, and its new records go there
    begin[0] = 4096 + 64 * 2
    assert put(hashes[35], 2 << 20) == FINAL
    assert ix.find(hashes[35])[0] == 2 << 20
    found = {h: ix.find(h)[0] for h in [*hashes, h41]}
    shared = ix.shared(h41)
    # a rebuild from the same records (those at or above the begin address) finds the same
    ix.rebuild((a, h, s) for a, h, s in records if a >= begin[0])
    assert {h: ix.find(h)[0] for h in found if found[h] >= begin[0]} == {
        h: a for h, a in found.items() if a >= begin[0]
    }
    assert ix.shared(h41) == shared
    ix.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_key_finds_its_records_with_single_updates_and_in_a_batch(
    tmp_path: Path, seed: int
) -> None:
    """Two chunks, 70 keys (some sharing a tag), crowded: some keys go to shared chains and
    reclaim entries whose chains fell below the begin address. Updated one at a time or in a
    batch (and after the batch, from the file), every key's lookup (its tag's chain, then the
    shared one) reaches exactly its live records, newest first, and a key that is not cold
    reaches none."""
    rng = random.Random(seed)
    keys = [rng.getrandbits(64) & ~(0x3FF << 40) | rng.randrange(40) << 40 for _ in range(70)]
    prevs: dict[int, int] = {}  # record address -> previous address, as set() linked it
    owner: dict[int, int] = {}  # record address -> key hash
    writes = [(keys[rng.randrange(70)], 4096 + 8 * i) for i in range(400)]

    def put(ix: ColdIndex, h: int, address: int) -> None:
        page = bytearray(8)
        INFO.pack_into(page, 0, FINAL)
        ix.set(h, address, page, 0)
        prevs[address] = INFO.unpack_from(page, 0)[0] & PREV_MASK
        owner[address] = h

    def lookup(ix: ColdIndex, h: int, begin: int) -> tuple[int | None, set[int]]:
        """(the first of h's records a lookup meets, all of them on its chains)."""
        head, shared = ix.find(h)
        first, seen = None, set()
        for address in (head, shared if shared >= 0 else ix.shared(h)):
            while address >= begin and address:
                if owner[address] == h:
                    first = address if first is None else first
                    seen.add(address)
                address = prevs[address]
        return first, seen

    for batched in (False, True):
        ix = ColdIndex(tmp_path / f"cidx{batched}", 2, cache_bytes=256)
        ix.create()
        begin = [0]
        ix.log_begin = lambda: begin[0]  # noqa: B023 (read while this index is used)
        for start in range(0, 400, 100):
            begin[0] = 4096 + 8 * max(0, start - 150)  # older records are gone
            if batched:
                ix.begin_batch(h for h, _ in writes[start : start + 100])
            for h, address in writes[start : start + 100]:
                put(ix, h, address)
            if batched:
                ix.end_batch()
            live = [(h, a) for h, a in writes[: start + 100] if a >= begin[0]]
            for h in {*keys, 0x1234}:
                expected = sorted((a for k, a in live if k == h), reverse=True)
                first, seen = lookup(ix, h, begin[0])
                assert first == (expected[0] if expected else None), (h, batched, start)
                assert seen == set(expected), (h, batched, start)
        assert ix.stats()["cold_index_overflows"] > 0  # the crowding happened
        ix.close()


def test_a_rebuild_of_a_crowded_format_1_chunk_doubles_the_chunks(tmp_path: Path) -> None:
    """A cold log written with format 1's index (an entry per 5 hash bits, no limit of tags
    per chunk) can have more chains in a chunk than it has entries: the rebuild doubles the
    chunk count until they fit (the store then names the new count in its manifest)."""
    ix = ColdIndex(tmp_path / "cidx", 1)
    ix.create()
    ix.close_clean(1, 0, 1)
    rng = random.Random(5)
    records = [(64 * (i + 1), rng.getrandbits(64), False) for i in range(100)]
    with pytest.raises(CrowdedChunkError, match="more than 31 chains"):
        ix.rebuild(records)
    ix.open_for(2, 0, 64 * 101, lambda: iter(records))  # names another manifest: rebuilt
    assert ix.n_chunks >= 4 and ix.stats()["cold_index_rebuilds"] == 1
    for address, h, _ in records:
        assert ix.find(h)[0] == address
    ix.close()


def test_delete_of_a_cold_key_writes_a_hot_tombstone(tmp_path: Path) -> None:
    kv = f2_store(tmp_path)
    for i in range(300):
        kv.upsert(b"c%d" % i, b"cold%d" % i)
    _all_cold(kv)
    n = len(kv)
    assert kv._hot_state(b"c7", faster_kv_module.xxh3_64_intdigest(b"c7")) is None  # only cold
    assert kv.read(b"c7") == b"cold7"
    assert kv.delete(b"c7") is True
    assert kv.delete(b"c7") is False
    assert kv.read(b"c7") is None and not kv.exists(b"c7")
    assert len(kv) == n - 1
    # the tombstone travels to the cold tier and still shadows the cold record
    _all_cold(kv)
    kv.compact_cold(kv._cold.head_address)
    assert kv.read(b"c7") is None
    assert len(kv) == n - 1 == len(set(kv.keys()))
    assert kv.add(b"c7", b"again") is True
    assert kv.read(b"c7") == b"again" and len(kv) == n
    kv.close()


def test_rmw_of_a_cold_record_brings_it_to_the_hot_tail(tmp_path: Path) -> None:
    kv = f2_store(tmp_path)
    for i in range(300):
        kv.upsert(b"n%d" % i, b"%d" % i)
    _all_cold(kv)
    n = len(kv)
    h = faster_kv_module.xxh3_64_intdigest(b"n5")
    assert kv._hot_state(b"n5", h) is None
    assert kv.rmw(b"n5", lambda old: b"%d" % (int(old or b"0") + 10)) == b"15"
    state = kv._hot_state(b"n5", h)
    assert state is not None and state[0] >= kv._log.head_address  # in memory at the tail
    assert kv.read(b"n5") == b"15" and len(kv) == n
    assert kv.upsert(b"n6", b"blind") is None and len(kv) == n  # upsert of a cold key
    assert kv.expire(b"n8", 100) is True and kv.ttl(b"n8") is not None
    kv.close()


def test_expiry_in_the_cold_tier_counts_exactly_once(tmp_path: Path) -> None:
    now = [3_000_000.0]
    orig = faster_kv_module._now
    faster_kv_module._now = lambda: now[0]  # type: ignore[assignment]
    try:
        kv = f2_store(tmp_path, cold_log_size=None)  # cold-cold compaction only by hand
        for i in range(200):
            kv.upsert(b"t%d" % i, b"v" * 300, ttl=10 if i % 2 else None)
        _all_cold(kv)
        n = len(kv)
        now[0] += 20
        assert kv.read(b"t1") is None  # expired in the cold tier
        assert kv.read_with_expiry(b"t3") is None
        assert len(kv) == n - 1  # read() does not drop (as in single-log disk reads)
        # cold-cold compaction drops the rest and counts each one once
        assert kv._cold.head_address > kv._cold.begin_address + 16 * 1024
        kv.compact_cold(kv._cold.head_address)
        assert kv.stats()["cold_cold_compactions"] >= 1
        for i in range(200):
            kv.exists(b"t%d" % i)  # drops what compaction could not reach (in memory)
            assert kv.read(b"t%d" % i) == (None if i % 2 else b"v" * 300)
        assert len(kv) == n - 100 == len(set(kv.keys()))
        kv.close()
    finally:
        faster_kv_module._now = orig  # type: ignore[assignment]


def test_background_compaction_and_threads_against_a_model(tmp_path: Path) -> None:
    kv = f2_store(tmp_path, memory_size="256KiB", hot_log_size="128KiB", cold_log_size="192KiB")
    threads_against_a_model(kv, 4, 4000, 400, 60, (0.45, 0.55, 0.7))
    st_ = kv.stats()
    assert st_["hot_cold_compactions"] > 0, st_  # the background thread ran
    assert st_["compaction_error"] is None
    kv.close()


def test_memory_per_cold_key_is_small(tmp_path: Path) -> None:
    """Index memory per key: F2's (hot index + cold index in memory) against a single log's."""
    n = 60_000
    kv = F2Kv(
        tmp_path / "f2",
        memory_size="2MiB",
        page_size="64KiB",
        segment_size="1MiB",
        hot_log_size="1MiB",
        cold_index_chunks=4096,
        index_size=256,
    )
    single = FasterKV(
        tmp_path / "single",
        memory_size="2MiB",
        page_size="64KiB",
        segment_size="1MiB",
        index_size=256,
    )
    for i in range(n):
        key = b"key:%08d" % i
        kv.upsert(key, b"v" * 40)
        single.upsert(key, b"v" * 40)
    kv.run_maintenance()
    st_ = kv.stats()
    assert st_["cold_log_records"] > 0.6 * n  # most keys are cold
    cold_keys = st_["cold_log_records"]
    # the cold index is a file: it holds an entry for every cold key and costs no memory, so
    # all F2 holds is its budget and the hot index
    assert st_["cold_index_updates"] >= cold_keys
    assert st_["memory_bytes"] <= st_["memory_size"] + st_["hot_index_bytes"], st_
    single_per_key = single.stats()["index_bytes"] / n
    assert single_per_key > 12.0  # a single log indexes every key in memory
    # the hot index holds the hot keys only: F2's index costs far less than the single's
    assert st_["hot_index_bytes"] < 0.5 * single_per_key * n, st_
    for i in range(0, n, 997):
        assert kv.read(b"key:%08d" % i) == b"v" * 40
    assert len(kv) == n
    kv.close()
    single.close()


def test_async_api_and_pending_reads(tmp_path: Path) -> None:
    kv = f2_store(tmp_path)
    for i in range(400):
        kv.upsert(b"a%d" % i, b"v%d" % i)
    _all_cold(kv)

    async def main() -> list[bytes | None]:
        return list(await asyncio.gather(*(kv.aread(b"a%d" % i) for i in range(0, 400, 40))))

    assert asyncio.run(main()) == [b"v%d" % i for i in range(0, 400, 40)]
    assert asyncio.run(kv.armw(b"a1", lambda old: (old or b"") + b"!")) == b"v1!"
    assert asyncio.run(kv.adelete(b"a2")) is True
    assert asyncio.run(kv.aexists(b"a2")) is False
    results: dict[int, bytes | None] = {}
    with kv.session() as s:
        for i in range(3, 400, 50):
            status, value = s.start_read(b"a%d" % i, i)
            if status != "pending":
                results[i] = value
        for ctx, _status, value in s.complete_pending(wait=True):
            results[ctx] = value
    assert results == {i: b"v%d" % i for i in range(3, 400, 50)}
    n = len(kv)
    with kv.session() as s:  # session operations on cold keys
        assert s.read(b"a5") == b"v5"
        assert s.rmw(b"a6", lambda old: (old or b"") + b"?") == b"v6?"
        assert s.delete(b"a7") is True
        s.upsert(b"a9", b"nine")
        assert s.serial >= 4
    assert kv.read(b"a7") is None and kv.read(b"a9") == b"nine" and len(kv) == n - 1
    kv.close()


def test_clear_empties_both_tiers(tmp_path: Path) -> None:
    kv = f2_store(tmp_path)
    for i in range(500):
        kv.upsert(b"k%d" % i, b"x" * 30)
    _all_cold(kv)
    kv.clear()
    assert len(kv) == 0 and list(kv.keys()) == []
    assert kv.read(b"k1") is None
    kv.upsert(b"k1", b"new")
    assert kv.read(b"k1") == b"new" and len(kv) == 1
    kv.close()


def test_a_single_log_directory_is_refused(tmp_path: Path) -> None:
    single = FasterKV(tmp_path, memory_size="64KiB", page_size="16KiB", segment_size="64KiB")
    for i in range(3000):
        single.upsert(b"k%d" % i, b"x" * 40)
    single.close()
    with pytest.raises(EngineError, match="single-log store"):
        f2_store(tmp_path)
    # and the refusal left the directory usable (lock released)
    FasterKV(tmp_path, memory_size="64KiB", page_size="16KiB", segment_size="64KiB").close()


def test_twenty_times_the_budget_reads_back(tmp_path: Path) -> None:
    kv = F2Kv(
        tmp_path,
        memory_size="256KiB",
        page_size="16KiB",
        segment_size="256KiB",
        cold_log_size="2MiB",
        cold_index_chunks=256,
    )
    n = 20 * 256 * 1024 // 120  # ~20x the memory budget of ~120-byte records
    for i in range(n):
        kv.upsert(b"key:%08d" % i, b"%08d" % i * 12)
    st_ = kv.stats()
    assert st_["cold_log_disk_bytes"] > 10 * 256 * 1024
    assert st_["hot_log_bytes"] < 3 * st_["hot_log_size"]
    for i in range(n):
        assert kv.read(b"key:%08d" % i) == b"%08d" % i * 12
    assert len(kv) == n == len(set(kv.keys()))
    kv.close()


def test_rss_stays_bounded_by_the_memory_budget(tmp_path: Path) -> None:
    """Write 20x memory_size through an F2 store in a child process and measure its RSS."""
    grown, index_bytes, n = rss_after_twenty_budgets(
        "from faster_backend.engine.f2 import F2Kv\n"
        f"kv = F2Kv({str(tmp_path)!r}, memory_size=budget, cold_index_chunks=1 << 10)\n",
        "hot_index_bytes",
    )
    budget = 8 << 20
    assert grown < budget + index_bytes + (16 << 20), (grown, index_bytes, n)
    assert grown < 20 * budget / 3


_DIRECT = pytest.mark.skipif(not _DIRECT_OK, reason=_DIRECT_WHY)


@pytest.mark.parametrize("device", ["file", pytest.param("file_direct", marks=_DIRECT)])
def test_the_budget_split_follows_the_device(tmp_path: Path, device: str) -> None:
    """On O_DIRECT files most of the budget beyond the hot log goes to the cold-index entry
    cache (a cold miss costs an entry read there), else to the read cache."""
    kv = F2Kv(tmp_path, memory_size="4MiB", page_size="64KiB", device=device)
    st = kv.stats()
    rc, entries = st["cold_read_cache_bytes"], st["cold_index_memory_bytes"]
    if device == "file_direct":
        # 3/8 of 4 MiB, and a bit per chunk (16,384)
        assert rc <= (4 << 20) // 16 and entries == 3 * (4 << 20) // 8 + 2048
    else:
        slots = (1 << 18) // 6 * 6  # 6-byte slots, two a set
        assert (4 << 20) // 4 - 4096 <= rc <= (4 << 20) // 4 and entries == slots + 2048
    kv.close()
