"""The object store itself: serialized form, corruption checks, eviction and read-back."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.integrations.resp.objects import (
    HASH,
    LIST,
    SET,
    STREAM,
    ZSET,
    CorruptObjectError,
    ObjectStore,
    Stream,
    ZSet,
    deserialize,
    estimate,
    serialize,
)

blobs = st.binary(max_size=40)


def _zset(pairs: dict[bytes, float]) -> ZSet:
    z = ZSet()
    for m, s in pairs.items():
        z.add(m, s)
    return z


def _stream(entries: list[list[bytes]]) -> Stream:
    s = Stream()
    for n, fields in enumerate(entries, 1):
        s.ids.append((n, 0))
        s.data[(n, 0)] = fields
    s.last = (len(entries) + 5, 1)
    return s


def _plain(kind: int, obj: Any) -> Any:
    if kind == STREAM:
        return obj.ids, obj.data, obj.last
    if kind == ZSET:
        return list(obj.order), dict(obj.scores)
    if kind == LIST:
        return list(obj)
    return obj


objects = st.one_of(
    st.dictionaries(blobs, blobs).map(lambda d: (HASH, d)),
    st.lists(blobs).map(lambda v: (LIST, deque(v))),
    st.sets(blobs).map(lambda v: (SET, v)),
    st.dictionaries(blobs, st.floats(allow_nan=False)).map(lambda d: (ZSET, _zset(d))),
    st.lists(st.lists(blobs, min_size=2, max_size=4)).map(lambda e: (STREAM, _stream(e))),
)


@settings(max_examples=200, deadline=None)
@given(objects)
def test_serialized_form_round_trips(item: tuple[int, Any]) -> None:
    kind, obj = item
    image = serialize(kind, obj)
    assert image[:2] == b"FO" and image[2] == 1 and image[3] == kind
    k2, back = deserialize(image)
    assert k2 == kind and _plain(kind, back) == _plain(kind, obj)


def test_corruption_is_detected() -> None:
    image = serialize(HASH, {b"f": b"v", b"g": b"w"})
    flipped = bytearray(image)
    flipped[12] ^= 0xFF
    with pytest.raises(CorruptObjectError, match="checksum mismatch at offset"):
        deserialize(bytes(flipped))
    with pytest.raises(CorruptObjectError, match="bad object header"):
        deserialize(b"XX" + image[2:])
    with pytest.raises(CorruptObjectError, match="too short"):
        deserialize(image[:5])


def test_eviction_writes_back_and_reads_back() -> None:
    store = ObjectStore(None, None)
    one = estimate(HASH, {b"i": b"10"})
    store.max_bytes = 8 * one
    for i in range(40):
        store.create(b"h%d" % i, HASH, {b"i": b"%d" % i})
    assert store.live == 40  # nothing is evicted during a command
    store.sweep()  # the once-a-second job accounts for the new objects and evicts
    assert store.live <= 8 and store.live_bytes <= store.max_bytes
    evicted = [k for k, e in store.items() if e.obj is None]
    assert len(evicted) >= 30 and store.write_backs >= 30
    # Every object is still there: evicted ones come back from the object log.
    for i in range(40):
        e = store.entry(b"h%d" % i)
        assert e is not None and e.obj == {b"i": b"%d" % i}
    assert store.read_backs >= 30
    # Changes made after a read-back are written back at the next eviction or flush.
    e = store.entry(b"h0")
    assert e is not None
    e.obj[b"new"] = b"1"
    store.mark(b"h0", e)
    assert store.flush() >= 1
    assert store.kv is not None
    assert deserialize(store.kv.read(b"h0") or b"")[1] == {b"i": b"0", b"new": b"1"}
    store.close()


def test_large_objects_are_chunked_and_read_back() -> None:
    store = ObjectStore(None, None)
    big = deque(b"%08d" % i + b"x" * 200 for i in range(20_000))  # about 4 MiB
    store.create(b"big", LIST, big)
    store.flush()
    assert store.chunks is not None and len(store.chunks) > 1
    store.max_bytes = 0
    store.evict()
    assert store[b"big"].obj is None and store.live == 0 and store.live_bytes == 0
    e = store.entry(b"big")
    assert e is not None and list(e.obj) == list(big)
    # Shrinking it drops the chunks it no longer needs.
    e.obj = deque([b"small"])
    store.mark(b"big", e)
    store.flush()
    assert len(store.chunks) == 0
    store.delete(b"big")
    assert store.kv is not None and store.kv.read(b"big") is None
    store.close()


def test_expired_objects_vanish() -> None:
    store = ObjectStore(None, None)
    store.create(b"s", SET, {b"a"})
    store.set_expiry(b"s", 1.0)  # long past
    assert store.entry(b"s") is None and b"s" not in store
    store.create(b"t", SET, {b"a"})
    store.set_expiry(b"t", 1.0)
    assert store.sweep() == 1 and b"t" not in store


ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["set", "add", "del", "expire", "ttl", "drain", "sweep", "flush", "read", "evict"]
        ),
        st.integers(0, 5),
        st.binary(min_size=1, max_size=300),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.booleans(), st.integers(0, 3000))
def test_store_accounting_matches_a_model(
    steps: list[tuple[str, int, bytes]], write_through: bool, budget: int
) -> None:
    """Random writes, deletes, drains, evictions and flushes against a dict model: reads see
    the model; an entry in neither ``changed`` nor ``dirty`` is what the object log holds;
    ``live`` and ``live_bytes`` are the sums over the live entries."""
    store = ObjectStore(None, None)
    store.write_through = write_through
    store.max_bytes = budget
    model: dict[bytes, dict[bytes, bytes]] = {}
    for op, k, v in steps:
        key = b"k%d" % k
        if op in ("set", "add"):
            e = store.entry(key)
            if e is None:
                e = store.create(key, HASH, {})
            if op == "set":
                e.obj.clear()
                model[key] = {}
            e.obj[v[:8]] = v
            model.setdefault(key, {})[v[:8]] = v
            store.mark(key, e)
        elif op == "del":
            assert store.alive(key) == (key in model)  # as DEL asks (an expired key is gone)
            store.delete(key)
            model.pop(key, None)
        elif op == "expire" and key in model:
            store.set_expiry(key, 1.0)  # long past: gone at the next access or sweep
            del model[key]
        elif op == "ttl" and key in model:  # maybe on an evicted entry
            store.set_expiry(key, time.time() + 1000 + k)
        elif op == "evict":
            saved, store.max_bytes = store.max_bytes, 0
            store.evict()
            store.max_bytes = saved
        elif op == "drain":
            store.drain(write=write_through)
        elif op == "sweep":
            store.sweep()
        elif op == "flush":
            store.flush()
        else:
            e = store.entry(key)
            assert (e is None) == (key not in model)
            if e is not None:
                assert e.obj == model[key]
        live = [(k2, e2) for k2, e2 in store.items() if e2.obj is not None]
        assert store.live == len(live)
        assert store.live_bytes == sum(e2.size for _k, e2 in live)
        for k2, e2 in store.items():
            if k2 not in store.changed and k2 not in store.dirty and k2 in model:
                assert store.kv is not None
                found = store.kv.read_with_expiry(k2)
                assert found is not None and deserialize(found[0])[1] == model[k2]
                if e2.expires is None:
                    assert found[1] is None
                else:
                    assert found[1] is not None and abs(found[1] - e2.expires) < 5
    store.sweep()
    assert store.live_bytes <= budget
    for key, want in model.items():
        e = store.entry(key)
        assert e is not None and e.obj == want
    assert set(store.live_keys()) == set(model)
    store.close()


def test_size_estimates_are_close_to_the_real_memory() -> None:
    import tracemalloc

    def measured(make: Any) -> tuple[Any, int]:
        tracemalloc.start()
        try:
            obj = make()
            return obj, tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    for kind, make in (
        (HASH, lambda: {b"field%05d" % i: b"v" * (i % 50) for i in range(3000)}),
        (LIST, lambda: deque(b"item-%07d" % i for i in range(3000))),
        (SET, lambda: {b"member-%06d" % i for i in range(3000)}),
        (ZSET, lambda: _zset({b"m%06d" % i: float(i) for i in range(3000)})),
    ):
        obj, real = measured(make)
        assert 0.6 < estimate(kind, obj) / real < 1.6, kind
