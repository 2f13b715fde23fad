"""The store against a dict model: random operation sequences (hypothesis) and threads."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from faster_backend import FasterKV
from faster_backend.engine import faster_kv as faster_kv_module

KEYS = st.binary(min_size=0, max_size=12) | st.sampled_from([b"a", b"b", b"counter", b"x" * 40])
VALUES = st.binary(min_size=0, max_size=64)
INT_VALUES = st.integers().map(lambda i: b"%d" % i)
TTLS = st.none() | st.floats(min_value=0.5, max_value=50, allow_nan=False)


class StoreModel(RuleBasedStateMachine):
    """Every operation of the store against {key: (value, expiry)} with a fake clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0
        self._orig_now = faster_kv_module._now
        faster_kv_module._now = lambda: self.now  # type: ignore[assignment]
        # a 1-bucket index with a low load factor grows many times during a run
        self.kv = FasterKV(memory_size="64MiB", index_size=1, index_load_factor=1.5)
        self.model: dict[bytes, tuple[bytes, float | None]] = {}

    def teardown(self) -> None:
        self.kv.close()
        faster_kv_module._now = self._orig_now  # type: ignore[assignment]

    def live(self, key: bytes) -> bytes | None:
        item = self.model.get(key)
        if item is None:
            return None
        value, expiry = item
        if expiry is not None and expiry * 1000 <= int(self.now * 1000):
            return None
        return value

    def expiry_for(self, ttl: float | None) -> float | None:
        return None if ttl is None else int((self.now + ttl) * 1000) / 1000

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def upsert(self, key: bytes, value: bytes, ttl: float | None) -> None:
        self.kv.upsert(key, value, ttl)
        self.model[key] = (value, self.expiry_for(ttl))

    @rule(key=KEYS)
    def read(self, key: bytes) -> None:
        assert self.kv.read(key) == self.live(key)

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.kv.delete(key) == (self.live(key) is not None)
        self.model.pop(key, None)

    @rule(key=KEYS, suffix=VALUES)
    def rmw_append(self, key: bytes, suffix: bytes) -> None:
        old = self.live(key)
        result = self.kv.rmw(key, lambda v: (v or b"") + suffix)
        new = (old or b"") + suffix
        assert result == new
        expiry = self.model[key][1] if old is not None else None
        self.model[key] = (new, expiry)

    @rule(key=KEYS, delta=st.integers(min_value=-(2**64), max_value=2**64), create=st.booleans())
    def incr(self, key: bytes, delta: int, create: bool) -> None:
        old = self.live(key)
        if old is None and not create:
            with pytest.raises(KeyError):
                self.kv.incr(key, delta, create=False)
            return
        try:
            cur = 0 if old is None else int(old)
            canonical = old is None or (b"%d" % cur == old and -(2**63) <= cur < 2**63)
        except ValueError:
            canonical = False
        if not canonical:
            with pytest.raises(ValueError, match="not an integer"):
                self.kv.incr(key, delta)
        elif not -(2**63) <= cur + delta < 2**63:
            with pytest.raises(OverflowError):
                self.kv.incr(key, delta)
        else:
            assert self.kv.incr(key, delta) == cur + delta
            expiry = self.model[key][1] if old is not None else None
            self.model[key] = (b"%d" % (cur + delta), expiry)

    @rule(keys=st.lists(KEYS, max_size=5), delta=st.integers(-(2**63), 2**63 - 1))
    def incr_many(self, keys: list[bytes], delta: int) -> None:
        got = self.kv.incr_many(keys, delta)
        assert len(got) == len(keys)
        for key, result in zip(keys, got, strict=True):
            old = self.live(key)
            try:
                cur: int | None = 0 if old is None else int(old)
            except ValueError:
                cur = None
            canonical = cur is not None and (old is None or b"%d" % cur == old)
            if cur is None or not canonical or not -(2**63) <= cur < 2**63:
                assert isinstance(result, ValueError)
            elif not -(2**63) <= cur + delta < 2**63:
                assert isinstance(result, OverflowError)
            else:
                assert result == cur + delta
                expiry = self.model[key][1] if old is not None else None
                self.model[key] = (b"%d" % (cur + delta), expiry)

    @rule(items=st.lists(st.tuples(KEYS, VALUES | INT_VALUES), max_size=5), ttl=TTLS)
    def upsert_many(self, items: list[tuple[bytes, bytes]], ttl: float | None) -> None:
        self.kv.upsert_many(items, ttl)
        for key, value in items:
            self.model[key] = (value, self.expiry_for(ttl))

    @rule(keys=st.lists(KEYS, max_size=5))
    def read_many(self, keys: list[bytes]) -> None:
        assert self.kv.read_many(keys) == [self.live(k) for k in keys]

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def add(self, key: bytes, value: bytes, ttl: float | None) -> None:
        absent = self.live(key) is None
        assert self.kv.add(key, value, ttl) == absent
        if absent:
            self.model[key] = (value, self.expiry_for(ttl))

    @rule(key=KEYS, ttl=TTLS)
    def expire(self, key: bytes, ttl: float | None) -> None:
        value = self.live(key)
        assert self.kv.expire(key, ttl) == (value is not None)
        if value is not None:
            self.model[key] = (value, self.expiry_for(ttl))

    @rule(key=KEYS)
    def read_with_expiry(self, key: bytes) -> None:
        value = self.live(key)
        got = self.kv.read_with_expiry(key)
        if value is None:
            assert got is None
        else:
            assert got is not None
            assert got[0] == value
            expected = self.model[key][1]
            assert (got[1] is None) == (expected is None)
            if expected is not None:
                assert got[1] == pytest.approx(expected, abs=0.002)

    @rule(seconds=st.floats(min_value=0.1, max_value=30))
    def advance_clock(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def sweep(self) -> None:
        self.kv.sweep_expired(64)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear_sometimes(self) -> None:
        if random.random() < 0.05:
            self.kv.clear()
            self.model.clear()

    @invariant()
    def keys_match(self) -> None:
        live = {k for k in self.model if self.live(k) is not None}
        assert set(self.kv.keys()) == live
        # len() counts expired keys until they are swept or read: never fewer than live ones
        assert len(self.kv) >= len(live)


TestStoreModel = StoreModel.TestCase
TestStoreModel.settings = settings(max_examples=120, stateful_step_count=60, deadline=None)


def threads_against_a_model(
    kv: Any, n_threads: int, n_ops: int, n_keys: int, max_value: int,
    mix: tuple[float, float, float],
) -> None:
    """Writers on disjoint key ranges plus shared rmw counters; ``mix`` is the cumulative share
    of upserts, deletes and counter increments (the rest are reads). Afterwards every value, the
    counters and len() match the per-thread models."""
    models: list[dict[bytes, bytes]] = [{} for _ in range(n_threads)]
    errors: list[BaseException] = []

    def incr(old: bytes | None) -> bytes:
        return b"1" if old is None else str(int(old) + 1).encode()

    def work(t: int) -> None:
        rng = random.Random(t)
        model = models[t]
        try:
            for _ in range(n_ops):
                key = b"t%d:%d" % (t, rng.randrange(n_keys))
                op = rng.random()
                if op < mix[0]:
                    value = bytes(rng.randrange(256) for _ in range(rng.randrange(max_value)))
                    kv.upsert(key, value)
                    model[key] = value
                elif op < mix[1]:
                    assert kv.delete(key) == (key in model)
                    model.pop(key, None)
                elif op < mix[2]:
                    kv.rmw(b"shared", incr)
                    kv.rmw(b"t%d:count" % t, incr)
                else:
                    assert kv.read(key) == model.get(key)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    total = 0
    for t, model in enumerate(models):
        count = kv.read(b"t%d:count" % t)
        total += int(count or 0)
        for key, value in model.items():
            assert kv.read(key) == value
    assert int(kv.read(b"shared") or 0) == total
    expected = sum(len(m) for m in models) + (1 if total else 0) + sum(
        1 for t in range(n_threads) if kv.read(b"t%d:count" % t)
    )
    assert len(kv) == expected == len(set(kv.keys()))


def test_threads_against_a_model() -> None:
    kv = FasterKV(memory_size="64MiB", index_size=2, index_load_factor=2.0)
    threads_against_a_model(kv, 6, 3000, 300, 40, (0.4, 0.55, 0.75))
    assert kv.stats()["index_grows"] > 0
    kv.close()
