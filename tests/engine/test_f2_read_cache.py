"""F2's read cache (engine/f2/read_cache.py) on its own: admission on the second read, hits that
always return the record that was put for the key, invalidation, the epoch rule and the ring
wrapping over old records."""

from __future__ import annotations

import random

from xxhash import xxh3_64_intdigest

from faster_backend.engine.f2.read_cache import KeyReadCache
from faster_backend.engine.record import record_size, write_record


def record(key: bytes, value: bytes) -> bytes:
    size = record_size(len(key), len(value), False)
    buf = bytearray(size)
    write_record(buf, 0, 1 << 63, key, value, None, size)
    return bytes(buf)


def offer(cache: KeyReadCache, key: bytes, addr: int, rec: bytes) -> None:
    """A cold read of ``key`` that missed the cache, as F2's read path does it."""
    h = xxh3_64_intdigest(key)
    epoch = cache.epoch
    assert cache.get(key, h) is None
    cache.put(key, h, addr, rec, epoch)


def test_a_record_is_admitted_on_its_second_read() -> None:
    cache = KeyReadCache(64 << 10)
    key, rec = b"k1", record(b"k1", b"v" * 50)
    h = xxh3_64_intdigest(key)
    offer(cache, key, 4096, rec)
    assert cache.get(key, h) is None  # seen once: not admitted
    offer(cache, key, 4096, rec)
    assert cache.get(key, h) == (4096, rec)
    assert len(cache) == 1


def test_hits_are_always_the_records_put_for_the_key_while_the_ring_wraps() -> None:
    cache = KeyReadCache(16 << 10)  # room for about a hundred records: the ring wraps often
    rng = random.Random(5)
    latest: dict[bytes, tuple[int, bytes]] = {}
    hits = 0
    for i in range(20_000):
        key = b"key%d" % int(rng.paretovariate(1.2) * 10)
        h = xxh3_64_intdigest(key)
        got = cache.get(key, h)
        if got is not None:
            hits += 1
            assert got == latest[key]
            continue
        if key in latest and rng.random() < 0.2:  # the cold tier changed: a new version
            cache.invalidate([h])
            del latest[key]
        if key not in latest:
            latest[key] = (8 * i + 8, record(key, b"%d" % i * rng.randrange(1, 20)))
        epoch = cache.epoch
        cache.put(key, h, *latest[key], epoch)
    assert hits > 5000  # the skewed keys are served from the cache
    assert cache.memory_bytes <= 16 << 10


def test_invalidation_and_the_epoch_refuse_stale_records() -> None:
    cache = KeyReadCache(64 << 10)
    key, old, new = b"k", record(b"k", b"old"), record(b"k", b"new")
    h = xxh3_64_intdigest(key)
    offer(cache, key, 100, old)
    offer(cache, key, 100, old)
    assert cache.get(key, h) == (100, old)
    slow_reader_epoch = cache.epoch
    cache.invalidate([h])  # a compaction moved a newer version to the cold log
    assert cache.get(key, h) is None
    cache.put(key, h, 100, old, slow_reader_epoch)  # read before the invalidation: refused
    assert cache.get(key, h) is None
    offer(cache, key, 200, new)
    assert cache.get(key, h) == (200, new)
    cache.clear()
    assert cache.get(key, h) is None and len(cache) == 0


def test_a_zero_budget_caches_nothing() -> None:
    cache = KeyReadCache(0)
    rec = record(b"k", b"v")
    for _ in range(3):
        offer(cache, b"k", 8, rec)
    assert cache.memory_bytes == 0 and len(cache) == 0


def test_racing_readers_put_twice_and_invalidation_removes_both() -> None:
    cache = KeyReadCache(64 << 10)
    key, rec = b"k", record(b"k", b"v1")
    h = xxh3_64_intdigest(key)
    offer(cache, key, 8, rec)  # seen once
    epoch = cache.epoch
    assert cache.get(key, h) is None  # two readers miss at the same time...
    assert cache.get(key, h) is None
    cache.put(key, h, 8, rec, epoch)  # ...and both put the version they read
    cache.put(key, h, 8, rec, epoch)
    assert len(cache) == 2
    cache.invalidate([h])
    assert cache.get(key, h) is None and len(cache) == 0


def test_invalidation_by_hash_leaves_other_keys_cached() -> None:
    cache = KeyReadCache(1 << 20)
    keys = [b"key%d" % i for i in range(1200)]  # an invalidation in several slices
    for i, key in enumerate(keys):
        offer(cache, key, 8 * i + 8, record(key, b"v"))
        offer(cache, key, 8 * i + 8, record(key, b"v"))
    cache.invalidate(xxh3_64_intdigest(key) for key in keys[::2])
    for i, key in enumerate(keys):
        got = cache.get(key, xxh3_64_intdigest(key))
        assert got == (None if i % 2 == 0 else (8 * i + 8, record(key, b"v")))
