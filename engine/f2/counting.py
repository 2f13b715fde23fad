"""F2's live-key count with blind upserts: settling the uncounted records.

An upsert of a key that is not in the hot log's memory appends a record without looking the key
up (FASTER's blind upsert), so it cannot tell whether the key is new. The record carries the
uncounted bit (engine/record.py) and the store's live count ``_live`` stays as it was; a write
over an uncounted record inherits the bit and leaves the count alone too. So for every key
whose newest record is uncounted, ``_live`` counts it as the key's newest *counted* record
before that run of uncounted ones says (its *base*: live unless a tombstone or absent), and the
exact count is ``_live`` plus, over those keys, live(newest) - live(base).

Settling a range of the hot log applies those differences for the keys whose newest record in
the range is uncounted and moves the store's ``_settled`` address to the range's end: uncounted
records below it count as counted ones (``_live`` covers them), and ``_settled`` is saved with
every hot commit and checkpoint together with ``_live``. Hot-cold compaction settles the range
it moves (so cold records are always counted) and ``len()`` settles the rest up to the tail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xxhash import xxh3_64_intdigest

from faster_backend.engine.f2.cold_log import ColdLog
from faster_backend.engine.record import (
    HEADER,
    HEADER_SIZE,
    PREV_MASK,
    TOMBSTONE,
    UNCOUNTED,
)

if TYPE_CHECKING:
    from faster_backend.engine.f2.store import F2Kv

_unpack_header = HEADER.unpack_from

class Runs:
    """The uncounted runs of a range, fed its records in address order.

    ``runs`` maps a key whose newest record so far is uncounted to (base + 1) * 2 + live: base
    1 or 0 is the liveness of the key's newest counted record before the run, -1 when the run
    starts the range (the base is below it); live is the liveness of the run's newest record.
    (Small ints, which CPython does not allocate: a compaction range has tens of thousands of
    keys.) With ``with_prev``, ``prevs`` has the previous address of each run's first record,
    where its base lies when it is below the range."""

    def __init__(self, settled: int, with_prev: bool) -> None:
        self.settled = settled
        self.runs: dict[bytes, int] = {}
        self.prevs: dict[bytes, int] | None = {} if with_prev else None
        self._counted: dict[bytes, int] = {}

    def add(self, addr: int, info: int, key: bytes) -> None:
        live = 0 if info & TOMBSTONE else 1
        runs = self.runs
        if info & UNCOUNTED and addr >= self.settled:
            state = runs.get(key)
            if state is None:
                runs[key] = (self._counted.get(key, -1) + 1) * 2 + live
                if self.prevs is not None:
                    self.prevs[key] = info & PREV_MASK
            else:
                runs[key] = (state & ~1) | live
        else:
            # (an uncounted record is never followed by a counted one of its key above the
            # settled address: every write over it inherits the bit)
            self._counted[key] = live
            if key in runs:
                del runs[key]


def cold_live(cold: ColdLog, key: bytes) -> int:
    """1 if the cold tier's newest record of ``key`` is live (not a tombstone), else 0."""
    found = cold.lookup(key, xxh3_64_intdigest(key))
    return 0 if found is None or _unpack_header(found[1], 0)[0] & TOMBSTONE else 1


def settle(kv: F2Kv, runs: Runs) -> int:
    """The count difference of ``runs``. A base below the range is in the cold tier when the
    range starts at the hot begin address; else (``runs.prevs``, under the latch) it is looked
    up from the run's first record down the hot chain first."""
    delta = 0
    prevs = runs.prevs
    for key, state in runs.runs.items():
        base = (state >> 1) - 1
        if base < 0:
            if prevs is not None:
                base = _hot_base(kv, key, prevs[key])
            if base < 0:
                base = cold_live(kv._cold, key)
        delta += (state & 1) - base
    return delta


def _hot_base(kv: F2Kv, key: bytes, addr: int) -> int:
    """Under the latch: the liveness of ``key``'s newest hot record at or below ``addr`` (all
    are counted or settled there), or -1 if the hot log has none."""
    hlog = kv._log
    klen = len(key)
    while addr >= hlog.begin_address:
        if addr >= hlog.head_address:
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            info, kl, _ = _unpack_header(page, off)
            hit = kl == klen and page.startswith(key, off + HEADER_SIZE)
        else:
            rec = kv._read_record(addr)
            info, kl, _ = _unpack_header(rec, 0)
            hit = kl == klen and rec.startswith(key, HEADER_SIZE)
        if hit:
            return 0 if info & TOMBSTONE else 1
        addr = info & PREV_MASK
    return -1


def settle_to_tail(kv: F2Kv) -> None:
    """Settle the hot log from the settled address to the tail. The caller holds the store's
    maintenance lock (no compaction settles meanwhile) and its latch."""
    hlog = kv._log
    start = max(kv._settled, hlog.begin_address)
    tail = hlog.tail_address
    runs = Runs(kv._settled, with_prev=start > hlog.begin_address)
    add = runs.add
    for addr, info, kl, _vl, rec in hlog.records(start, tail):
        add(addr, info, bytes(rec[HEADER_SIZE : HEADER_SIZE + kl]))
    # The cold-index entries of the keys whose base may be cold, read in one pass in file order
    # (cold_index.py, begin_batch): no compaction runs (the maintenance lock), so no writer.
    index = kv._cold.index
    index.begin_batch(xxh3_64_intdigest(key) for key, state in runs.runs.items() if state < 2)
    try:
        kv._live += settle(kv, runs)
    finally:
        index.end_batch()
    kv._settled = tail
    kv._n_blind = 0
