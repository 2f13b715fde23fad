"""Behaviour of the store's operations, one at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from faster_backend import (
    KEEP_TTL,
    DataDirLockedError,
    FasterKV,
    RecordTooLargeError,
    StoreClosedError,
)
from faster_backend.engine import faster_kv as faster_kv_module


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(faster_kv_module, "_now", c)
    return c


def test_upsert_read_delete(kv: FasterKV) -> None:
    assert kv.read(b"k") is None
    kv.upsert(b"k", b"v1")
    assert kv.read(b"k") == b"v1"
    kv.upsert(b"k", b"a longer value that cannot be updated in place")
    assert kv.read(b"k") == b"a longer value that cannot be updated in place"
    assert len(kv) == 1
    assert kv.delete(b"k") is True
    assert kv.read(b"k") is None
    assert kv.delete(b"k") is False
    assert len(kv) == 0
    kv.upsert(b"k", b"again")
    assert kv.read(b"k") == b"again"
    assert len(kv) == 1


def test_empty_key_and_value_and_binary(kv: FasterKV) -> None:
    kv.upsert(b"", b"")
    assert kv.read(b"") == b""
    blob = bytes(range(256)) * 10
    kv.upsert(b"\x00\xff", blob)
    assert kv.read(b"\x00\xff") == blob
    assert kv.read(b"\x00") is None  # a prefix of a key is another key


def test_in_place_and_copy_updates_are_counted(kv: FasterKV) -> None:
    kv.upsert(b"k", b"1234")
    kv.upsert(b"k", b"5678")  # same size: in place in the mutable region
    kv.upsert(b"k", b"x" * 100)  # larger: read-copy-update at the tail
    st = kv.stats()
    assert st["in_place_updates"] == 1
    assert st["copy_updates"] == 1
    assert kv.read(b"k") == b"x" * 100


def test_rmw_semantics(kv: FasterKV) -> None:
    def incr(old: bytes | None) -> bytes:
        return b"1" if old is None else str(int(old) + 1).encode()

    assert kv.rmw(b"n", incr) == b"1"
    assert kv.rmw(b"n", incr) == b"2"
    for _ in range(8):
        kv.rmw(b"n", incr)
    assert kv.read(b"n") == b"10"
    # None from the updater: unchanged, rmw returns the current value
    assert kv.rmw(b"n", lambda old: None) == b"10"
    assert kv.rmw(b"absent", lambda old: None) is None
    assert kv.read(b"absent") is None

    # an exception aborts without writing
    def boom(old: bytes | None) -> bytes:
        raise ValueError("not an integer")

    with pytest.raises(ValueError, match="not an integer"):
        kv.rmw(b"n", boom)
    assert kv.read(b"n") == b"10"


def test_add(kv: FasterKV) -> None:
    assert kv.add(b"k", b"1") is True
    assert kv.add(b"k", b"2") is False
    assert kv.read(b"k") == b"1"
    kv.delete(b"k")
    assert kv.add(b"k", b"3") is True
    assert kv.read(b"k") == b"3"


def test_ttl_expiry_lazy(kv: FasterKV, clock: Clock) -> None:
    kv.upsert(b"t", b"v", ttl=10)
    kv.upsert(b"forever", b"v")
    assert kv.ttl(b"t") == pytest.approx(10, abs=0.01)
    assert kv.ttl(b"forever") is None
    clock.now += 9.9
    assert kv.read(b"t") == b"v"
    clock.now += 0.2
    assert kv.read(b"t") is None
    assert not kv.exists(b"t")
    with pytest.raises(KeyError):
        kv.ttl(b"t")
    assert kv.stats()["expirations"] == 1
    assert len(kv) == 1
    assert kv.add(b"t", b"new") is True  # an expired key is absent for add


def test_ttl_nonpositive_deletes(kv: FasterKV) -> None:
    kv.upsert(b"k", b"v")
    kv.upsert(b"k", b"v2", ttl=0)
    assert kv.read(b"k") is None
    kv.upsert(b"k", b"v")
    kv.upsert(b"k", b"v3", ttl=-1)
    assert kv.read(b"k") is None
    assert len(kv) == 0


def test_rmw_ttl_keep_set_clear(kv: FasterKV, clock: Clock) -> None:
    kv.upsert(b"k", b"1", ttl=100)
    kv.rmw(b"k", lambda old: b"2")  # KEEP_TTL by default
    assert kv.read_with_expiry(b"k") == (b"2", pytest.approx(clock.now + 100))
    kv.rmw(b"k", lambda old: b"3", ttl=5)
    assert kv.ttl(b"k") == pytest.approx(5)
    kv.rmw(b"k", lambda old: b"4", ttl=None)
    assert kv.ttl(b"k") is None
    kv.rmw(b"new", lambda old: b"x", ttl=KEEP_TTL)
    assert kv.ttl(b"new") is None
    kv.rmw(b"k", lambda old: b"5", ttl=0)
    assert kv.read(b"k") is None


def test_expire_and_persist(kv: FasterKV, clock: Clock) -> None:
    assert kv.expire(b"missing", 10) is False
    kv.upsert(b"k", b"v")
    assert kv.expire(b"k", 10) is True
    assert kv.ttl(b"k") == pytest.approx(10)
    assert kv.expire(b"k", 20) is True  # in place
    assert kv.ttl(b"k") == pytest.approx(20)
    assert kv.expire(b"k", None) is True
    assert kv.ttl(b"k") is None
    assert kv.read(b"k") == b"v"
    assert kv.expire(b"k", 0) is True
    assert kv.read(b"k") is None


def test_active_sweep_removes_expired_keys(kv: FasterKV, clock: Clock) -> None:
    for i in range(500):
        kv.upsert(b"e%d" % i, b"v", ttl=1)
    for i in range(100):
        kv.upsert(b"p%d" % i, b"v")
    assert len(kv) == 600
    clock.now += 2
    removed = kv.sweep_expired(max_buckets=kv.stats()["index_buckets"])
    assert removed == 500
    assert len(kv) == 100
    assert sorted(kv.keys()) == sorted(b"p%d" % i for i in range(100))


def test_incremental_sweep_runs_during_writes(kv: FasterKV, clock: Clock) -> None:
    for i in range(200):
        kv.upsert(b"e%d" % i, b"v", ttl=1)
    clock.now += 2
    for i in range(20000):
        kv.upsert(b"w%d" % i, b"v")
    assert kv.stats()["expirations"] > 0  # the piggy-backed sweep found some
    assert len(kv) == 20000 + 200 - kv.stats()["expirations"]


def test_record_too_large(kv: FasterKV) -> None:
    with pytest.raises(RecordTooLargeError, match="page_size"):
        kv.upsert(b"k", b"x" * kv.page_size)
    assert kv.read(b"k") is None
    kv.upsert(b"k", b"fits")
    assert kv.read(b"k") == b"fits"


def test_closed_store_raises() -> None:
    kv = FasterKV(memory_size="8MiB")
    kv.upsert(b"k", b"v")
    kv.close()
    kv.close()  # idempotent
    assert kv.closed
    with pytest.raises(StoreClosedError):
        kv.read(b"k")
    with pytest.raises(StoreClosedError):
        kv.upsert(b"k", b"v")


def test_scan_returns_every_key_once_per_bucket_even_while_growing() -> None:
    kv = FasterKV(memory_size="64MiB", index_size=4, index_load_factor=2.0)
    expected = {b"key:%d" % i for i in range(3000)}
    for k in expected:
        kv.upsert(k, b"v")
    seen: set[bytes] = set()
    cursor = 0
    rounds = 0
    while True:
        cursor, batch = kv.scan(cursor, count=3)
        seen.update(batch)
        rounds += 1
        if rounds == 20:
            # grow the index in the middle of the scan: nothing present throughout is missed
            for i in range(3000, 9000):
                kv.upsert(b"key:%d" % i, b"v")
        if cursor == 0:
            break
    assert expected <= seen
    assert kv.stats()["index_grows"] >= 2
    kv.close()


def test_index_growth_keeps_every_key_and_meets_memory_target() -> None:
    kv = FasterKV(memory_size="256MiB", index_size=1)
    n = 50_000
    for i in range(n):
        kv.upsert(i.to_bytes(8, "big"), b"v%d" % i)
    st = kv.stats()
    assert st["index_grows"] >= 10
    assert not st["index_growing"] or kv.grow_index() is None
    for i in range(n):
        assert kv.read(i.to_bytes(8, "big")) == b"v%d" % i
    assert st["live_keys"] == n
    assert kv.stats()["index_bytes"] / n <= 32  # just after a doubling: at most 2x the target
    kv.close()


def test_tiny_memory_evicts_oldest_records_and_counts_stay_true() -> None:
    kv = FasterKV(memory_size="64KiB", page_size="16KiB", index_size=64)
    n = 5000
    for i in range(n):
        kv.upsert(b"k%d" % i, b"x" * 40)
    st = kv.stats()
    assert st["log_evicted_pages"] > 0
    readable = [i for i in range(n) if kv.read(b"k%d" % i) is not None]
    # the newest keys survive, the oldest were evicted, nothing returns a wrong value
    assert readable == list(range(n - len(readable), n))
    assert len(kv) == len(readable) == len(list(kv.keys()))
    kv.close()


def test_sessions_number_operations(kv: FasterKV) -> None:
    with kv.session() as s:
        s.upsert(b"a", b"1")
        s.rmw(b"a", lambda old: b"2")
        assert s.read(b"a") == b"2"
        assert s.delete(b"a") is True
        assert s.serial == 4
        assert kv.stats()["sessions"] == 1
    assert kv.stats()["sessions"] == 0


def test_clear(kv: FasterKV) -> None:
    for i in range(100):
        kv.upsert(b"%d" % i, b"v")
    kv.clear()
    assert len(kv) == 0
    assert list(kv.keys()) == []
    assert kv.read(b"1") is None
    kv.upsert(b"1", b"w")
    assert kv.read(b"1") == b"w"


def test_rmw_is_atomic_across_threads(kv: FasterKV) -> None:
    def incr(old: bytes | None) -> bytes:
        return b"1" if old is None else str(int(old) + 1).encode()

    def work() -> None:
        for _ in range(2000):
            kv.rmw(b"counter", incr)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kv.read(b"counter") == b"16000"


def test_data_dir_is_locked_against_a_second_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kv = FasterKV(path=data, memory_size="8MiB")
    code = textwrap.dedent(
        f"""
        import sys
        from faster_backend import FasterKV, DataDirLockedError
        try:
            FasterKV(path={str(data)!r}, memory_size="8MiB")
        except DataDirLockedError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert "locked by process" in out.stdout
    assert "faster-backend serve" in out.stdout
    kv.close()
    # released on close: a new opener succeeds
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_same_process_second_open_is_refused_too(tmp_path: Path) -> None:
    kv = FasterKV(path=tmp_path, memory_size="8MiB")
    # the lock belongs to the open file, so a second opener in this process is refused too
    with pytest.raises(DataDirLockedError):
        FasterKV(path=tmp_path, memory_size="8MiB")
    kv.close()


def test_in_place_update_never_mixes_expiry_layouts(kv: FasterKV, clock: Clock) -> None:
    # 8 more value bytes without an expiry occupy exactly the size of the record with one
    kv.upsert(b"k", b"x" * 16, ttl=5)
    kv.upsert(b"k", b"y" * 24)
    clock.now += 10
    assert kv.read(b"k") == b"y" * 24
    assert kv.ttl(b"k") is None
    kv.upsert(b"k", b"z" * 16, ttl=5)
    assert kv.ttl(b"k") == pytest.approx(5)
    clock.now += 6
    assert kv.read(b"k") is None


def test_huge_and_infinite_ttls_mean_practically_never(kv: FasterKV, clock: Clock) -> None:
    kv.upsert(b"inf", b"v", ttl=float("inf"))
    kv.upsert(b"huge", b"v", ttl=1e30)
    kv.rmw(b"rmw", lambda old: b"v", ttl=float("inf"))
    assert kv.add(b"add", b"v", ttl=1e300) is True
    assert kv.expire(b"inf", float("inf")) is True
    clock.now += 1e12  # 30,000 years later
    for key in (b"inf", b"huge", b"rmw", b"add"):
        assert kv.read(key) == b"v"
        assert (kv.ttl(key) or 0) > 1e14
