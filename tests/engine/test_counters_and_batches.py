"""incr (Redis INCRBY semantics), upsert_many and read_many: in memory, on disk, under
durability "always", and from many threads / tasks at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from faster_backend import FasterKV

from .test_durability import crash_after, open_small


def test_incr_follows_redis_rules() -> None:
    kv = FasterKV()
    assert kv.incr(b"n") == 1
    assert kv.incr(b"n", 41) == 42
    assert kv.read(b"n") == b"42"
    assert kv.incr(b"n", -50) == -8
    for bad in (b"", b" 1", b"+1", b"01", b"-0", b"1.5", b"x", b"1_000", b"9" * 20):
        kv.upsert(b"bad", bad)
        with pytest.raises(ValueError, match="not an integer or out of range"):
            kv.incr(b"bad")
        assert kv.read(b"bad") == bad  # nothing written
    kv.upsert(b"max", b"%d" % (2**63 - 1))
    with pytest.raises(OverflowError):
        kv.incr(b"max")
    assert kv.read(b"max") == b"%d" % (2**63 - 1)
    with pytest.raises(KeyError):
        kv.incr(b"absent", create=False)
    assert kv.read(b"absent") is None
    with pytest.raises(OverflowError):
        kv.incr(b"absent", 2**63)
    assert kv.read(b"absent") is None


def test_incr_keeps_the_expiry_and_grows_past_the_record_size() -> None:
    kv = FasterKV()
    kv.upsert(b"n", b"9", ttl=100)
    for _ in range(1000):  # 9 -> 1009: the value outgrows its 8-byte slot on the way
        kv.incr(b"n")
    assert kv.read(b"n") == b"1009"
    ttl = kv.ttl(b"n")
    assert ttl is not None and 90 < ttl <= 100


def test_incr_from_threads_is_atomic() -> None:
    kv = FasterKV()

    def work() -> None:
        for _ in range(2000):
            kv.incr(b"n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kv.read(b"n") == b"8000"


def test_aincr_from_tasks_is_atomic(tmp_path: Path) -> None:
    kv = open_small(tmp_path)

    async def main() -> list[int]:
        return await asyncio.gather(*(kv.aincr(b"n") for _ in range(50)))

    assert sorted(asyncio.run(main())) == list(range(1, 51))
    assert kv.read(b"n") == b"50"
    kv.close()


def test_incr_and_batches_reach_records_on_the_device(tmp_path: Path) -> None:
    kv = open_small(tmp_path)
    kv.upsert(b"counter", b"100", ttl=1000)
    kv.upsert_many((b"k%05d" % i, b"v%d" % i * 20) for i in range(3000))  # evicts "counter"
    assert kv.stats()["log_disk_bytes"] > 128 * 1024
    reads = kv.stats()["disk_reads"]
    assert kv.incr(b"counter", 5) == 105
    assert kv.stats()["disk_reads"] > reads  # the old value came from the device
    assert kv.ttl(b"counter") is not None
    keys = [b"k%05d" % i for i in range(0, 3000, 7)] + [b"nope"]
    assert kv.read_many(keys) == [b"v%d" % i * 20 for i in range(0, 3000, 7)] + [None]
    kv.close()
    kv = open_small(tmp_path)
    assert kv.read(b"counter") == b"105"
    kv.close()


def test_always_durability_covers_incr_and_upsert_many(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        for i in range(200):
            kv.incr(b"n")
            kv.upsert_many([(b"a%d" % i, b"x"), (b"b%d" % i, b"y")], ttl=3600)
        """,
        "always",
    )
    kv = open_small(tmp_path)
    assert kv.read(b"n") == b"200"
    assert kv.read_many([b"a199", b"b199", b"a0"]) == [b"x", b"y", b"x"]
    assert len(kv) == 401
    kv.close()


def test_upsert_many_keeps_order_when_an_item_takes_the_general_path(tmp_path: Path) -> None:
    kv = open_small(tmp_path)
    kv.upsert(b"old", b"on the device soon")
    kv.upsert_many((b"fill%05d" % i, b"x" * 40) for i in range(3000))  # evicts "old"
    long = b"L" * 200  # cannot replace "k"'s record in place: appended by the general path
    kv.upsert(b"k", b"short")
    kv.upsert(b"gone", b"1")
    kv.delete(b"gone")
    kv.upsert_many(
        [(b"k", long), (b"k", b"M" * 200), (b"old", b"new"), (b"old", b"newer"), (b"gone", b"back")]
    )
    got = kv.read_many([b"k", b"old", b"gone", b"fill00007"])
    assert got == [b"M" * 200, b"newer", b"back", b"x" * 40]
    assert len(kv) == 3003
    kv.upsert_many([(b"k", b"t")], ttl=0)  # a non-positive ttl deletes, as in upsert
    assert kv.read(b"k") is None and len(kv) == 3002
    kv.close()
