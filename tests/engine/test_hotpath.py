"""The compiled hot paths (engine/_hotpath.c) against their pure-Python reference (hotpath.py).

The store's other suites run on whichever is in use (the compiled one when it is built); here the
model suites also run on the reference, and both are driven through the same operations with
their logs and indexes compared byte for byte.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend import FasterKV
from faster_backend.engine import faster_kv as faster_kv_module
from faster_backend.engine import hotpath

from .test_larger_than_memory import LargerThanMemoryModel, small_store
from .test_model import StoreModel

try:
    from faster_backend.engine import _hotpath
except ImportError:  # pragma: no cover - the install had no C compiler
    _hotpath = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(_hotpath is None, reason="_hotpath is not built")

PURE = {
    "_index_read": hotpath.py_index_read,
    "_index_read_many": hotpath.py_index_read_many,
    "_index_locate": hotpath.py_index_locate,
    "_chain_read": hotpath.py_chain_read,
    "_index_upsert": hotpath.py_index_upsert,
    "_index_upsert_many": hotpath.py_index_upsert_many,
    "_index_incr": hotpath.py_index_incr,
    "_index_incr_many": hotpath.py_index_incr_many,
    "_expired_entries": hotpath.py_expired_entries,
    "_skip_empty": hotpath.py_skip_empty,
    "_cached_read": hotpath.py_cached_read,
    "_record_value": hotpath.py_record_value,
    "_pread_value": hotpath.py_pread_value,
    "_bucket_keys": hotpath.py_collect_bucket,
}


def _native_table() -> dict[str, object]:
    assert _hotpath is not None
    return {
        "_index_read": _hotpath.index_read,
        "_index_read_many": _hotpath.index_read_many,
        "_index_locate": _hotpath.index_locate,
        "_chain_read": _hotpath.chain_read,
        "_index_upsert": _hotpath.index_upsert,
        "_index_upsert_many": _hotpath.index_upsert_many,
        "_index_incr": _hotpath.index_incr,
        "_index_incr_many": _hotpath.index_incr_many,
        "_expired_entries": _hotpath.expired_entries,
        "_skip_empty": _hotpath.skip_empty,
        "_cached_read": _hotpath.cached_read,
        "_record_value": _hotpath.record_value,
        "_pread_value": _hotpath.pread_value,
        "_bucket_keys": _hotpath.collect_bucket,
    }


def _use(table: dict[str, object]) -> dict[str, object]:
    """Point the store module at ``table``; returns what it replaced."""
    old = {name: getattr(faster_kv_module, name) for name in table}
    for name, fn in table.items():
        setattr(faster_kv_module, name, fn)
    return old


def test_the_compiled_module_is_built_where_required() -> None:
    # scripts/test.sh sets this, so CI fails if the extension silently did not build.
    if os.environ.get("FASTER_BACKEND_REQUIRE_NATIVE") == "1":
        assert hotpath.NATIVE, "faster_backend.engine._hotpath did not build or import"
    elif os.environ.get("FASTER_BACKEND_PURE_PYTHON", "") not in ("", "0"):
        assert not hotpath.NATIVE
    else:
        assert (_hotpath is not None) == hotpath.NATIVE


class OnTheReference:
    """Mixin: a state machine whose store runs hotpath.py's pure-Python reference."""

    def __init__(self) -> None:
        self._replaced = _use(PURE)
        super().__init__()

    def teardown(self) -> None:
        super().teardown()  # type: ignore[misc]
        _use(self._replaced)


class PureStoreModel(OnTheReference, StoreModel):
    pass


class PureLargerThanMemoryModel(OnTheReference, LargerThanMemoryModel):
    pass


TestPureStoreModel = PureStoreModel.TestCase
TestPureStoreModel.settings = settings(max_examples=40, stateful_step_count=50, deadline=None)
TestPureLargerThanMemory = PureLargerThanMemoryModel.TestCase
TestPureLargerThanMemory.settings = settings(
    max_examples=10, stateful_step_count=30, deadline=None
)


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "upsert",
                "upsert_ttl",
                "upsert_many",
                "read",
                "read_many",
                "incr",
                "incr_many",
                "delete",
                "tick",
                "expire",
            ]
        ),
        st.integers(min_value=0, max_value=60),
        st.binary(max_size=40) | st.integers(-(2**63), 2**63 - 1).map(lambda i: b"%d" % i),
        st.integers(-(2**64), 2**64),
    ),
    max_size=300,
)


def _run(ops: list[tuple[str, int, bytes, int]], path: Path) -> tuple[list[object], bytes]:
    """The results of ``ops`` on a fresh store that spills to ``path``, and its bytes in memory
    (index and log pages) at the end."""
    clock = [3_000_000.0]
    saved = faster_kv_module._now
    faster_kv_module._now = lambda: clock[0]  # type: ignore[assignment]
    kv = small_store(path, "file", index_size=4)
    out: list[object] = []
    try:
        for op, k, value, delta in ops:
            key = b"k%d" % k
            try:
                if op == "upsert":
                    out.append(kv.upsert(key, value))
                elif op == "upsert_many":
                    batch = [(b"k%d" % ((k + j) % 61), value[: j * 7]) for j in range(k % 9)]
                    out.append(kv.upsert_many(batch, None if k % 3 else 2 + k % 5))
                elif op == "upsert_ttl":
                    out.append(kv.upsert(key, value, 1 + k % 7))
                elif op == "read":
                    out.append(kv.read(key))
                elif op == "read_many":
                    out.append(kv.read_many([b"k%d" % ((k + j * 5) % 61) for j in range(k % 11)]))
                elif op == "incr":
                    out.append(kv.incr(key, delta))
                elif op == "incr_many":
                    keys = [b"k%d" % ((k + j * 3) % 61) for j in range(k % 7)]
                    out.append([repr(r) for r in kv.incr_many(keys, delta)])
                elif op == "delete":
                    out.append(kv.delete(key))
                elif op == "expire":
                    out.append(kv.expire(key, 2 + k % 3))
                else:
                    clock[0] += 1 + k % 4
                    out.append(kv.sweep_expired(64))
            except (ValueError, OverflowError) as exc:
                out.append(type(exc).__name__)
        out.append(sorted(kv.keys()))
        stats = kv.stats()
        out.append([stats[name] for name in ("reads", "read_hits", "read_misses", "disk_reads")])
        hlog = kv._log
        table = kv._index.cur
        state = bytes(table.buf) + b"".join(bytes(p) for p in hlog.pages if p is not None)
        state += b"%d/%d/%d" % (hlog.tail_address, hlog.head_address, hlog.read_only_address)
    finally:
        kv.close()
        faster_kv_module._now = saved  # type: ignore[assignment]
    return out, state


@needs_native
@settings(max_examples=100, deadline=None)
@given(ops=OPS)
def test_compiled_and_reference_leave_the_same_bytes(
    ops: list[tuple[str, int, bytes, int]],
) -> None:
    results = []
    for table in (PURE, _native_table()):
        old = _use(table)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(_run(ops, Path(tmp)))
        finally:
            _use(old)
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]


@needs_native
@given(raw=st.binary(max_size=22) | st.integers().map(lambda i: b"%d" % i))
def test_incr_accepts_exactly_redis_integers(raw: bytes) -> None:
    expected = hotpath.parse_int64(raw)
    with FasterKV(memory_size="1MiB") as kv:
        kv.upsert(b"n", raw)
        if expected is None or expected == 2**63 - 1:
            with pytest.raises((ValueError, OverflowError)):
                kv.incr(b"n", 1)
            assert kv.read(b"n") == raw  # nothing written
        else:
            assert kv.incr(b"n", 1) == expected + 1
            assert kv.read(b"n") == b"%d" % (expected + 1)


@pytest.fixture
def page_store() -> Iterator[FasterKV]:
    with FasterKV(memory_size="1MiB", index_size=1 << 4) as kv:
        for i in range(50):
            kv.upsert(b"key%d" % i, b"v%d" % i)
        yield kv


@needs_native
def test_compiled_walk_declines_pages_it_cannot_read(page_store: FasterKV) -> None:
    """A chain pointing past the pages it was given gets False (the store then walks in
    Python), never bytes read from outside a page."""
    assert _hotpath is not None
    table, hlog = page_store._index.cur, page_store._log
    h = faster_kv_module.xxh3_64_intdigest(b"key7")
    now = faster_kv_module._now

    def read(pages: object, bits: int = hlog.page_bits) -> object:
        return _hotpath.index_read(
            table.buf, table.mask, h, pages, hlog.head_address, bits, b"key7", now  # type: ignore[arg-type]
        )

    assert read(hlog.pages) == b"v7"
    assert read([]) is False
    assert read([bytearray(32) if p is not None else None for p in hlog.pages]) is False
    with pytest.raises(TypeError):
        read(tuple(hlog.pages))
    with pytest.raises(ValueError):
        read(hlog.pages, 99)
    with pytest.raises(TypeError):
        _hotpath.index_read(table.buf, table.mask, h)  # type: ignore[call-arg]


def test_random_workload_through_both_implementations_matches_a_dict(tmp_path: Path) -> None:
    rng = random.Random(7)
    tables = [PURE] + ([_native_table()] if _hotpath is not None else [])
    for n, table in enumerate(tables):
        old = _use(table)
        try:
            kv = small_store(tmp_path / str(n), "file", index_size=2)
            model: dict[bytes, bytes] = {}
            for _ in range(5000):
                key = b"key%d" % rng.randrange(300)
                if rng.random() < 0.5:
                    value = bytes([rng.randrange(256)]) * rng.randrange(60)
                    kv.upsert(key, value)
                    model[key] = value
                else:
                    assert kv.read(key) == model.get(key)
            assert {k: kv.read(k) for k in model} == model
            kv.close()
        finally:
            _use(old)


def test_stats_say_which_implementation_runs() -> None:
    with FasterKV(memory_size="1MiB") as kv:
        assert kv.stats()["compiled_hot_paths"] is hotpath.NATIVE


def test_scan_of_a_chain_with_many_keys_sharing_a_tag() -> None:
    """More distinct keys in one chain than the compiled walk tracks: it declines, the
    reference walks, and every key is still reported once."""
    by_tag: dict[int, list[bytes]] = {}
    i = 0
    while True:
        key = b"t%d" % i
        i += 1
        same = by_tag.setdefault(faster_kv_module.xxh3_64_intdigest(key) >> 50, [])
        same.append(key)
        if len(same) == 70:
            break
    with FasterKV(memory_size="1MiB", index_size=1, index_load_factor=1000.0) as kv:
        for key in same:
            kv.upsert(key, b"v")
        kv.delete(same[3])
        if _hotpath is not None:
            table, hlog = kv._index.cur, kv._log
            declined = _hotpath.collect_bucket(
                table.buf, table.mask, 0, hlog.pages, hlog.head_address, hlog.page_bits, 0.0,
                faster_kv_module.xxh3_64_intdigest, out := [b"kept"],
            )
            assert declined is None and out == [b"kept"]
        assert sorted(kv.keys()) == sorted(k for k in same if k != same[3])
        assert kv.read(same[0]) == b"v"


def _record(key: bytes, value: bytes, flags: int = 0, expiry: int | None = None) -> bytes:
    from faster_backend.engine.record import HAS_EXPIRY, make_info, record_size, write_record

    size = record_size(len(key), len(value), expiry is not None)
    buf = bytearray(size)
    info = make_info(0, 0, flags | (HAS_EXPIRY if expiry is not None else 0))
    write_record(buf, 0, info, key, value, expiry, size)
    return bytes(buf)


@pytest.mark.parametrize("impl", ["reference", "compiled"])
def test_cached_read_answers_only_what_it_can_answer_alone(impl: str) -> None:
    from faster_backend.engine.record import TOMBSTONE

    if impl == "compiled" and _hotpath is None:
        pytest.skip("_hotpath is not built")
    fn = hotpath.py_cached_read if impl == "reference" else _hotpath.cached_read

    def now() -> float:
        return 1000.0

    entries = {
        64: (_record(b"k", b"value"), 500),
        128: (_record(b"k", b""), 10),  # due for its second chance (below the floor)
        192: (_record(b"k", b"", TOMBSTONE), 500),
        256: (_record(b"k", b"old", expiry=999_000), 500),  # expired at 1000 s
        320: (_record(b"k", b"new", expiry=1_001_000), 500),
        384: (_record(b"k", b"value")[:20], 500),  # truncated
    }
    assert fn(entries, 64, b"k", 100.0, now) == b"value"
    assert fn(entries, 64, b"other", 100.0, now) is False  # another key: walk on
    assert fn(entries, 64, b"k", 600.0, now) is False
    assert fn(entries, 128, b"k", 100.0, now) is False
    assert fn(entries, 192, b"k", 100.0, now) is None
    assert fn(entries, 256, b"k", 100.0, now) is None
    assert fn(entries, 320, b"k", 100.0, now) == b"new"
    assert fn(entries, 999, b"k", 100.0, now) is True  # not cached: read the device
    if impl == "compiled":  # the reference trusts the cache's records; C checks their length
        assert fn(entries, 384, b"k", 100.0, now) is False


def test_upserts_of_keys_on_the_device_keep_the_count_exact(tmp_path: Path) -> None:
    """Updating keys whose newest record is on the device (live, deleted or expired there)."""
    clock = [4_000_000.0]
    saved = faster_kv_module._now
    faster_kv_module._now = lambda: clock[0]  # type: ignore[assignment]
    try:
        kv = small_store(tmp_path, "file", index_size=64)
        model = {b"k%d" % i: b"x" * 40 for i in range(1500)}
        for key, value in model.items():
            kv.upsert(key, value)
        kv.delete(b"k5")
        del model[b"k5"]
        kv.upsert(b"k6", b"short-lived", ttl=5)
        model[b"k6"] = b"short-lived"
        for i in range(1500, 2500):  # push k5's tombstone and k6 to the device
            model[b"k%d" % i] = b"f" * 40
            kv.upsert(b"k%d" % i, b"f" * 40)
        clock[0] += 10
        del model[b"k6"]
        fast = kv.stats()["disk_reads"]
        for i in range(0, 1500, 3):  # k0, k3, k6 ...: most are on the device
            model[b"k%d" % i] = b"z" * 40
            kv.upsert(b"k%d" % i, b"z" * 40)
        kv.upsert_many([(b"k5", b"back"), (b"k7", b"seven")])
        model[b"k5"] = b"back"
        model[b"k7"] = b"seven"
        assert kv.stats()["disk_reads"] > fast
        assert len(kv) == len(model)
        assert sorted(kv.keys()) == sorted(model)
        assert kv.read_many(list(model)) == list(model.values())
        kv.close()
        kv = small_store(tmp_path, "file", index_size=64)  # and after recovery
        assert len(kv) == len(model)
        assert kv.read(b"k6") == b"z" * 40 and kv.read(b"k5") == b"back"
        kv.close()
    finally:
        faster_kv_module._now = saved  # type: ignore[assignment]


@settings(max_examples=60, deadline=None)
@given(
    values=st.dictionaries(
        st.integers(0, 9).map(lambda i: b"c%d" % i),
        st.sampled_from([b"0", b"7", b"-3", b"x", b"9223372036854775806", b"99999", b""]),
    ),
    keys=st.lists(st.integers(0, 11).map(lambda i: b"c%d" % i), max_size=30),
    delta=st.sampled_from([1, -1, 5, 2**62, -(2**63)]),
)
def test_incr_many_is_incr_of_each_key_in_order(
    values: dict[bytes, bytes], keys: list[bytes], delta: int
) -> None:
    with FasterKV(memory_size="1MiB") as many, FasterKV(memory_size="1MiB") as one:
        for kv in (many, one):
            kv.upsert_many(list(values.items()))
        expected: list[object] = []
        for key in keys:
            try:
                expected.append(one.incr(key, delta))
            except (ValueError, OverflowError) as e:
                expected.append(type(e))
        got = [r if isinstance(r, int) else type(r) for r in many.incr_many(keys, delta)]
        assert got == expected
        names = sorted(one.keys())
        assert sorted(many.keys()) == names
        assert many.read_many(names) == one.read_many(names)
