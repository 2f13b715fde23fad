"""The hybrid log on a device: flush, eviction, disk reads, read cache, compaction, cache mode."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from faster_backend import FasterKV
from faster_backend.engine import FasterKv
from faster_backend.engine import faster_kv as faster_kv_module
from faster_backend.engine.devices import (
    DeviceIOError,
    Fault,
    FaultyDevice,
    FileDevice,
    InjectedFaultError,
    io_uring_status,
)
from faster_backend.engine.hybrid_log import FlushError

IO_URING_OK, IO_URING_WHY = io_uring_status()
DEVICES = [
    "file",
    pytest.param(
        "io_uring",
        marks=pytest.mark.skipif(not IO_URING_OK, reason=f"io_uring unavailable: {IO_URING_WHY}"),
    ),
]
# A tiny memory budget: 4 pages of 16 KiB, so a few hundred records already reach the device.
TINY = {"memory_size": "64KiB", "page_size": "16KiB", "segment_size": "64KiB", "index_size": 16}


def small_store(path: Path, device: str = "file", **kw: object) -> FasterKV:
    args: dict[str, object] = {**TINY, "device": device, "read_cache_size": "16KiB"}
    args.update(kw)
    return FasterKV(path, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", DEVICES)
def test_twenty_times_the_budget_reads_back(tmp_path: Path, device: str) -> None:
    kv = small_store(tmp_path, device, memory_size="256KiB", segment_size="256KiB")
    n = 20 * 256 * 1024 // 120  # ~20x the memory budget of ~120-byte records
    for i in range(n):
        kv.upsert(b"key:%08d" % i, b"%08d" % i * 12)
    st_ = kv.stats()
    assert st_["log_disk_bytes"] > 15 * 256 * 1024
    assert st_["log_pages_in_memory"] <= 16
    for i in range(n):
        assert kv.read(b"key:%08d" % i) == b"%08d" % i * 12
    assert kv.stats()["disk_reads"] > 0
    assert len(kv) == n == len(set(kv.keys()))
    kv.close()


def rss_after_twenty_budgets(opener: str, index_stat: str) -> tuple[int, int, int]:
    """In a child process: open a store with ``opener`` (code binding ``kv`` to a store of an
    8 MiB budget), write 20x the budget, read a sample back. Returns (RSS growth, the store's
    index bytes as ``stats()[index_stat]``, keys written)."""
    code = textwrap.dedent(
        """
        import gc, os
        from faster_backend import FasterKV

        def rss():
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        budget = 8 << 20
        """
    ) + opener + textwrap.dedent(
        f"""
        value = b"v" * 1000
        gc.collect()
        base = rss()
        n = 20 * budget // 1024
        for i in range(n):
            kv.upsert(b"%012d" % i, value)
        for i in range(0, n, 97):
            assert kv.read(b"%012d" % i) == value
        gc.collect()
        print(rss() - base, kv.stats()[{index_stat!r}], n)
        kv.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=True
    )
    grown, index_bytes, n = map(int, out.stdout.split())
    return grown, index_bytes, n


def test_rss_stays_bounded_by_the_memory_budget(tmp_path: Path) -> None:
    """Write 20x memory_size through a real store in a child process and measure its RSS."""
    grown, index_bytes, n = rss_after_twenty_budgets(
        f"kv = FasterKV({str(tmp_path)!r}, memory_size=budget, index_size=1 << 12)\n",
        "index_bytes",
    )
    budget = 8 << 20
    # the log's pages and read cache (the budget), the index, and per-process slack
    assert grown < budget + index_bytes + (16 << 20), (grown, index_bytes, n)
    assert grown < 20 * budget / 3  # far below what was written


@pytest.mark.parametrize("mode", ["lookup", "scan"])
def test_compaction_keeps_live_records_and_deletes_files(tmp_path: Path, mode: str) -> None:
    kv = small_store(tmp_path)
    n = 3000
    for round_ in range(3):
        for i in range(n):
            kv.upsert(b"k%d" % i, b"r%d-%d" % (round_, i) + b"x" * 40)
    for i in range(0, n, 2):
        kv.delete(b"k%d" % i)
    segments_before = len(list((tmp_path / "log").glob("hlog.*")))
    begin_before = kv.stats()["log_begin_address"]
    copied = kv.compact(kv.stats()["log_head_address"], mode=mode)
    st_ = kv.stats()
    assert st_["log_begin_address"] > begin_before
    assert st_["compactions"] == 1
    assert copied <= n // 2
    assert len(list((tmp_path / "log").glob("hlog.*"))) < segments_before
    for i in range(n):
        expected = None if i % 2 == 0 else b"r2-%d" % i + b"x" * 40
        assert kv.read(b"k%d" % i) == expected
    assert len(kv) == n // 2 == len(set(kv.keys()))
    kv.close()


def test_automatic_compaction_bounds_the_log(tmp_path: Path) -> None:
    kv = small_store(tmp_path, log_size_limit="256KiB")
    for round_ in range(30):
        for i in range(500):
            kv.upsert(b"k%d" % i, b"%d" % round_ + b"y" * 60)
    kv.run_maintenance()  # what the background thread does, here synchronously
    st_ = kv.stats()
    assert st_["compactions"] > 0
    assert st_["log_disk_bytes"] <= 256 * 1024 + 64 * 1024
    for i in range(500):
        assert kv.read(b"k%d" % i) == b"29" + b"y" * 60
    kv.close()


def test_cache_mode_drops_oldest_segments_and_counts_exactly(tmp_path: Path) -> None:
    kv = small_store(tmp_path, max_disk_size="128KiB")
    n = 6000
    for i in range(n):
        kv.upsert(b"k%05d" % i, b"v" * 60)
    kv.run_maintenance()
    st_ = kv.stats()
    assert st_["dropped_keys"] > 0
    assert st_["log_disk_bytes"] <= 128 * 1024 + 64 * 1024
    present = [i for i in range(n) if kv.read(b"k%05d" % i) is not None]
    # FIFO: the oldest keys are misses, the newest all present, values never wrong
    assert present == list(range(n - len(present), n))
    assert len(kv) == len(present) == len(set(kv.keys()))
    kv.close()


def test_read_cache_admits_a_record_on_its_second_read(tmp_path: Path) -> None:
    kv = small_store(tmp_path, read_cache_size="16KiB")
    for i in range(5000):
        kv.upsert(b"k%d" % i, b"v%d" % i + b"." * 50)
    before = kv.stats()

    def delta(name: str) -> int:
        return int(kv.stats()[name] - before[name])

    assert kv.read(b"k7") == b"v7" + b"." * 50  # first read: from the device, only remembered
    assert (delta("disk_reads"), delta("read_cache_hits"), kv.stats()["read_cache_records"]) == (
        1,
        0,
        0,
    )
    assert kv.read(b"k7") == b"v7" + b"." * 50  # second read: from the device, admitted
    assert (delta("disk_reads"), delta("read_cache_hits"), kv.stats()["read_cache_records"]) == (
        2,
        0,
        1,
    )
    for _ in range(20):  # from then on: hits, no device reads
        assert kv.read(b"k7") == b"v7" + b"." * 50
    assert (delta("disk_reads"), delta("read_cache_hits")) == (2, 20)
    # other keys read once each are not admitted and do not push k7 out
    for i in range(100, 400):
        assert kv.read(b"k%d" % i) == b"v%d" % i + b"." * 50
    assert kv.stats()["read_cache_records"] == 1
    assert kv.read(b"k7") == b"v7" + b"." * 50 and delta("read_cache_hits") == 21
    # reads never grow the main log
    st_ = kv.stats()
    assert st_["log_tail_address"] == before["log_tail_address"]
    assert st_["log_memory_bytes"] == before["log_memory_bytes"]
    assert st_["read_cache_bytes"] <= 16 * 1024
    kv.close()


def test_async_reads_do_not_block_the_event_loop(tmp_path: Path) -> None:
    inner = FileDevice(tmp_path, name="hlog", segment_size=64 * 1024)
    dev = FaultyDevice(inner, [Fault("delay", delay=0.05, ops=frozenset({"read"}))])
    kv = FasterKv(memory_size=64 * 1024, page_size=16 * 1024, device=dev, read_cache_size=0)
    for i in range(10000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    assert kv.stats()["log_head_address"] > 40 * 32  # the keys read below are on the device

    async def main() -> tuple[list[bytes | None], int]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        values = await asyncio.gather(*(kv.aread(b"k%d" % i) for i in range(0, 40, 4)))
        stop = True
        await t
        return list(values), ticks

    values, ticks = asyncio.run(main())
    assert values == [b"v%d" % i for i in range(0, 40, 4)]
    assert ticks >= 10  # the loop kept running while the device slept
    assert kv.stats()["disk_reads"] >= 10
    assert asyncio.run(kv.aupsert(b"k0", b"new")) is None
    assert asyncio.run(kv.armw(b"k4", lambda old: (old or b"") + b"!")) == b"v4!"
    assert asyncio.run(kv.adelete(b"k8")) is True
    assert asyncio.run(kv.aread(b"k8")) is None
    assert asyncio.run(kv.aadd(b"k8", b"again")) is True
    assert asyncio.run(kv.aexpire(b"k12", 100)) is True  # a record on the device
    assert kv.ttl(b"k12") == pytest.approx(100, abs=5)
    assert asyncio.run(kv.aexpire(b"missing", 100)) is False
    kv.close()


def test_session_pending_reads(tmp_path: Path) -> None:
    kv = small_store(tmp_path)
    for i in range(3000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    results: dict[int, bytes | None] = {}
    with kv.session() as s:
        statuses = []
        for i in range(0, 3000, 50):
            status, value = s.start_read(b"k%d" % i, i)
            statuses.append(status)
            if status != "pending":
                results[i] = value
        assert "pending" in statuses
        for ctx, status, value in s.complete_pending(wait=True):
            assert status == "ok"
            results[ctx] = value
        assert s.pending == 0
    assert results == {i: b"v%d" % i for i in range(0, 3000, 50)}
    kv.close()


def test_read_errors_reach_the_caller_and_never_return_wrong_values(tmp_path: Path) -> None:
    inner = FileDevice(tmp_path, name="hlog", segment_size=64 * 1024)
    dev = FaultyDevice(inner)
    kv = FasterKv(memory_size=64 * 1024, page_size=16 * 1024, device=dev, read_cache_size=0)
    for i in range(10000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    dev.add_fault(Fault("eio", ops=frozenset({"read"})))
    with pytest.raises((DeviceIOError, InjectedFaultError, OSError)):
        kv.read(b"k1")
    dev.clear_faults()
    assert kv.read(b"k1") == b"v1"  # nothing was lost; the next read succeeds
    kv.close()


def test_write_errors_stop_writes_with_a_clear_error(tmp_path: Path) -> None:
    inner = FileDevice(tmp_path, name="hlog", segment_size=64 * 1024)
    dev = FaultyDevice(inner, [Fault("enospc", after=2)])
    kv = FasterKv(memory_size=64 * 1024, page_size=16 * 1024, device=dev, read_cache_size=0)
    acknowledged: dict[bytes, bytes] = {}
    with pytest.raises(FlushError, match="accepts no more writes"):
        for i in range(5000):
            kv.upsert(b"k%d" % i, b"v%d" % i)
            acknowledged[b"k%d" % i] = b"v%d" % i
    # every acknowledged write whose page is still in memory reads back; none reads wrong
    for key, value in acknowledged.items():
        try:
            got = kv.read(key)
        except (DeviceIOError, InjectedFaultError, OSError):
            continue
        assert got in (value, None)
    kv.close()


KEYS = st.integers(min_value=0, max_value=400).map(lambda i: b"key%d" % i)
VALUES = st.binary(min_size=0, max_size=90)


class LargerThanMemoryModel(RuleBasedStateMachine):
    """A dict model against a store whose memory holds only a few pages."""

    device = "file"

    @initialize(data=st.data())
    def open(self, data: st.DataObject) -> None:
        import tempfile

        self.now = 2_000_000.0
        self._orig = faster_kv_module._now
        faster_kv_module._now = lambda: self.now  # type: ignore[assignment]
        self.tmp = tempfile.TemporaryDirectory()
        self.kv = small_store(Path(self.tmp.name), self.device, index_size=2)
        self.model: dict[bytes, tuple[bytes, float | None]] = {}

    def teardown(self) -> None:
        if hasattr(self, "kv"):
            self.kv.close()
            self.tmp.cleanup()
            faster_kv_module._now = self._orig  # type: ignore[assignment]

    def live(self, key: bytes) -> bytes | None:
        item = self.model.get(key)
        if item is None or (item[1] is not None and item[1] * 1000 <= int(self.now * 1000)):
            return None
        return item[0]

    @rule(key=KEYS, value=VALUES, ttl=st.none() | st.floats(min_value=1, max_value=60))
    def upsert(self, key: bytes, value: bytes, ttl: float | None) -> None:
        self.kv.upsert(key, value, ttl)
        self.model[key] = (value, None if ttl is None else int((self.now + ttl) * 1000) / 1000)

    @rule(n=st.integers(min_value=50, max_value=400), seed=st.integers(0, 1000))
    def bulk(self, n: int, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            key = b"key%d" % rng.randrange(400)
            value = bytes([rng.randrange(256)]) * rng.randrange(90)
            self.kv.upsert(key, value)
            self.model[key] = (value, None)

    @rule(key=KEYS)
    def read(self, key: bytes) -> None:
        assert self.kv.read(key) == self.live(key)

    @rule(key=KEYS)
    def aread(self, key: bytes) -> None:
        assert asyncio.run(self.kv.aread(key)) == self.live(key)

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.kv.delete(key) == (self.live(key) is not None)
        self.model.pop(key, None)

    @rule(key=KEYS, suffix=st.binary(max_size=8))
    def rmw(self, key: bytes, suffix: bytes) -> None:
        old = self.live(key)
        assert self.kv.rmw(key, lambda v: (v or b"") + suffix) == (old or b"") + suffix
        expiry = self.model[key][1] if old is not None else None
        self.model[key] = ((old or b"") + suffix, expiry)

    @rule(seconds=st.floats(min_value=1, max_value=30))
    def advance_clock(self, seconds: float) -> None:
        self.now += seconds

    @rule(mode=st.sampled_from(["lookup", "scan"]))
    def compact(self, mode: str) -> None:
        self.kv.compact(mode=mode)

    @invariant()
    def same_keys(self) -> None:
        if hasattr(self, "kv"):
            live = {k for k in self.model if self.live(k) is not None}
            assert set(self.kv.keys()) == live


TestLargerThanMemoryFile = LargerThanMemoryModel.TestCase
TestLargerThanMemoryFile.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None
)


class IoUringModel(LargerThanMemoryModel):
    device = "io_uring"


TestLargerThanMemoryIoUring = pytest.mark.skipif(
    not IO_URING_OK, reason=f"io_uring unavailable: {IO_URING_WHY}"
)(IoUringModel.TestCase)
TestLargerThanMemoryIoUring.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None
)
