"""A hot-cold compaction's keys in arrays (engine/f2/range_keys.py) against counting.Runs, the
dict of key bytes that ``len()``'s settling uses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from xxhash import xxh3_64_intdigest, xxh64_intdigest

from faster_backend.engine.f2.counting import Runs
from faster_backend.engine.f2.range_keys import RangeKeys
from faster_backend.engine.record import TOMBSTONE, UNCOUNTED

records = st.lists(
    st.tuples(st.integers(0, 40), st.booleans(), st.booleans()),  # key, uncounted, tombstone
    max_size=300,
)


def feed(keys: RangeKeys, runs: Runs, recs: list[tuple[int, bool, bool]], same_h: bool) -> None:
    for n, (k, uncounted, tombstone) in enumerate(recs):
        key = b"key%d" % k
        info = (UNCOUNTED if uncounted else 0) | (TOMBSTONE if tombstone else 0)
        addr = 64 + 8 * n
        # ``same_h``: every key has the same xxh3, so only the second hash tells them apart
        keys.add(7 if same_h else xxh3_64_intdigest(key), xxh64_intdigest(key), addr, info)
        runs.add(addr, info, key)


@settings(max_examples=200, deadline=None)
@given(
    records, st.integers(0, 300), st.booleans(), st.dictionaries(st.integers(0, 40), st.booleans())
)
def test_counts_and_settling_match_the_dict_of_runs(
    recs: list[tuple[int, bool, bool]], settled_at: int, same_h: bool, cold: dict[int, bool]
) -> None:
    settled = 64 + 8 * settled_at
    keys, runs = RangeKeys(settled), Runs(settled, with_prev=False)
    feed(keys, runs, recs, same_h)
    # each record knows its key's id, and each id its key's record count
    assert len(keys.ids) == len(recs)
    ids: dict[int, int] = {}
    for n, (k, _, _) in enumerate(recs):
        assert ids.setdefault(k, keys.ids[n]) == keys.ids[n]
    assert len(keys) == len(ids)
    for k, i in ids.items():
        assert keys.counts[i] == sum(1 for r in recs if r[0] == k)
        assert keys.hashes[i] == (7 if same_h else xxh3_64_intdigest(b"key%d" % k))
    # the runs whose base is below the range, looked up in a model of the cold tier
    def cold_live(k: int) -> int:
        return 1 if cold.get(k, False) else 0

    needs = {k for k, i in ids.items() if keys.needs_base(i)}
    assert needs == {int(key[3:]) for key, state in runs.runs.items() if state < 2}
    for k in needs:
        keys.set_base(ids[k], cold_live(k))
    expected = 0
    for key, state in runs.runs.items():
        base = (state >> 1) - 1
        expected += (state & 1) - (base if base >= 0 else cold_live(int(key[3:])))
    assert keys.delta() == expected


def test_a_base_left_unknown_is_an_error() -> None:
    keys = RangeKeys(0)
    keys.add(1, 2, 64, UNCOUNTED)
    assert keys.needs_base(0)
    try:
        keys.delta()
    except ValueError:
        pass
    else:
        raise AssertionError("delta() summed a run without its base")


def test_many_keys_grow_the_table_and_keep_their_ids() -> None:
    keys = RangeKeys(0)
    for round_ in range(2):
        for k in range(5000):
            key = b"k%d" % k
            keys.add(xxh3_64_intdigest(key), xxh64_intdigest(key), 64 + round_ * 10**6 + k, 0)
    assert len(keys) == 5000
    assert list(keys.ids[:5000]) == list(range(5000)) == list(keys.ids[5000:])
    assert set(keys.counts) == {2}
    assert not any(keys.needs_base(i) for i in range(len(keys))) and keys.delta() == 0
