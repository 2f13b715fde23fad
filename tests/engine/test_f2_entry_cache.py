"""The cold index's entry cache (engine/f2/entry_cache.py) against a dict model."""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from faster_backend.engine.f2.cold_index import ColdIndex
from faster_backend.engine.f2.entry_cache import SLOT_BYTES, EntryCache
from faster_backend.engine.record import FINAL, INFO


def small(slots: int, begin: list[int]) -> EntryCache:
    """A cache of ``slots`` slots over 2^23 pairs: a check of 24 bits (one set) down to 20
    (nine sets), the rest of 48 for addresses."""
    return EntryCache(SLOT_BYTES * slots, 1 << 23, lambda: begin[0], threading.Lock())


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 9),
    st.lists(
        st.tuples(
            st.sampled_from(["put", "get", "begin"]),
            st.integers(0, 3),
            # 8-byte units: near 0 and near multiples of half the smallest window (2^24)
            st.builds(lambda k, unit: (k << 23) + unit, st.integers(0, 12), st.integers(0, 99)),
        ),
        max_size=120,
    ),
)
# a pair in the second way whose next address is past the window must leave it
@example(1, [("put", 0, 1), ("put", 1, 1), ("put", 0, 2 << 23), ("get", 0, 0)])
def test_a_hit_is_the_pairs_newest_address(slots: int, steps: list[tuple[str, int, int]]) -> None:
    """Any size, puts of any address (past the window too), the begin address moving up: a
    lookup misses, or answers the pair's newest address, or 0 when that lies below the begin
    address (a chain that is gone)."""
    begin = [0]
    cache = small(2 * slots, begin)
    pairs = [p * 977 for p in range(4)]  # spread over the sets, colliding in some
    model: dict[int, int] = {}
    for op, p, unit in steps:
        pair = pairs[p]
        if op == "put":
            cache.put(pair, unit << 3)
            model[pair] = unit << 3
        elif op == "begin":
            begin[0] = max(begin[0], unit << 3)
        else:
            got = cache.get(pair)
            want = model.get(pair)
            assert got == -1 or got == want or (got == 0 and want is not None and want < begin[0])


def test_an_address_past_the_window_moves_the_base_or_is_not_cached() -> None:
    begin = [0]
    cache = small(4, begin)
    cache.put(1, 4096)
    cache.put(2, 8192)
    assert cache.get(1) == 4096 and cache.get(2) == 8192
    assert cache.window == 8 * ((1 << 25) - 1)  # two sets: 23 check bits
    past = cache.window + 4096
    cache.put(1, past)  # the base cannot move (begin 0): not cached, and 4096 forgotten
    assert cache.get(1) == -1 and cache.get(2) == 8192
    begin[0] = 8192
    cache.put(1, past)  # the base moves to the begin address: the cache starts empty
    assert cache.get(1) == past and cache.get(2) == -1
    cache.put(2, 4096)  # below the base: no live chain
    assert cache.get(2) == 0
    assert cache.nbytes == 4 * SLOT_BYTES


def test_two_ways_a_set_and_a_hit_in_the_second_moves_it_first() -> None:
    cache = small(2, [0])  # one set
    cache.put(5, 64)
    cache.put(6, 128)  # 5 moves to the second way
    assert cache.get(5) == 64  # and back to the first
    cache.put(7, 192)  # the second way's pair (6) leaves
    assert cache.get(6) == -1 and cache.get(5) == 64 and cache.get(7) == 192
    assert cache.hits == 3
    cache.clear()
    assert cache.get(5) == cache.get(7) == -1


def test_a_cache_too_small_for_its_check_is_off() -> None:
    # 2^40 pairs over one set would leave 7 address bits
    cache = EntryCache(64, 1 << 40, lambda: 0, threading.Lock())
    assert cache.nbytes == 0
    cache.put(1, 8)
    assert cache.get(1) == -1


def test_the_cold_index_answers_past_the_cache_window_from_its_file(tmp_path: Path) -> None:
    """A cold index whose entry cache has a 128 MiB window (one set over 2^23 pairs): updates
    past the window are not cached, or move the cache's base; every lookup is the file's."""
    ix = ColdIndex(tmp_path / "cidx", 1 << 9, cache_bytes=2 * SLOT_BYTES)
    begin = [0]
    ix.log_begin = lambda: begin[0]
    ix.create()
    page = bytearray(8)
    keys = [p << 40 | p for p in range(1, 6)]  # five chunks, five tags
    model: dict[int, int] = {}
    window = 128 << 20
    for step, address in enumerate([4096, window + 8, 3 * window, 64, 2 * window + 4096]):
        if step == 3:
            begin[0] = 2 * window  # chains below it are gone
        for i, h in enumerate(keys):
            INFO.pack_into(page, 0, FINAL)
            ix.set(h, address + 8 * i, page, 0)
            model[h] = address + 8 * i
            for other in keys:
                want = model.get(other, 0)
                got = ix.find(other)[0]
                assert got == want or (got == 0 and want < begin[0]), (step, i, other)
    assert ix.cache_hits > 0
    ix.close()
