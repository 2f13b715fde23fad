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

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from xxhash import xxh3_64_intdigest

from faster_backend.engine.errors import StoreClosedError
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
    from faster_backend.engine.hybrid_log import RecordTuple

_unpack_header = HEADER.unpack_from
SETTLE_STEP = 1 << 20  # hot log bytes settled per hold of the maintenance lock (len())
_LATCHED_LOOKUPS = 64  # bases that len() may look up holding the latch (device reads)
_ROUNDS = 4  # of lookups without the latch at most, for the keys writers keep adding


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

    def copy(self) -> Runs:
        other = Runs(self.settled, self.prevs is not None)
        other.runs = self.runs.copy()
        if self.prevs is not None:
            other.prevs = self.prevs.copy()
        other._counted = self._counted.copy()
        return other

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
    return live_of(cold.lookup(key, xxh3_64_intdigest(key)))


def live_of(found: tuple[int, bytes] | None) -> int:
    """1 if ``found`` (a cold lookup's answer) is a live record, else 0."""
    return 0 if found is None or _unpack_header(found[1], 0)[0] & TOMBSTONE else 1


def settle(kv: F2Kv, runs: Runs, bases: dict[bytes, int] | None = None) -> int:
    """The count difference of ``runs``. A base below the range is in the cold tier when the
    range starts at the hot begin address; else (``runs.prevs``, under the latch) it is looked
    up from the run's first record down the hot chain first. ``bases`` has bases looked up
    beforehand (``prefetch_bases``)."""
    delta = 0
    prevs = runs.prevs
    for key, state in runs.runs.items():
        base = (state >> 1) - 1
        if base < 0 and bases is not None:
            base = bases.get(key, -1)
        if base < 0:
            if prevs is not None:
                base = _hot_base(kv, key, prevs[key], nullcontext())
            if base < 0:
                base = cold_live(kv._cold, key)
        delta += (state & 1) - base
    return delta


def _hot_base(kv: F2Kv, key: bytes, addr: int, latch: AbstractContextManager[object]) -> int:
    """The liveness of ``key``'s newest hot record at or below ``addr`` (all are counted or
    settled there), or -1 if the hot log has none. ``latch`` is held for each record in
    memory (the store's latch, or a no-op for a caller holding it)."""
    hlog = kv._log
    klen = len(key)
    while addr >= hlog.begin_address:
        with latch:
            page = hlog.pages[addr >> hlog.page_bits] if addr >= hlog.head_address else None
            if page is not None:
                off = addr & hlog.page_mask
                info, kl, _ = _unpack_header(page, off)
                hit = kl == klen and page.startswith(key, off + HEADER_SIZE)
        if page is None:
            # below the head: immutable, on the device
            rec = kv._read_record(addr)
            info, kl, _ = _unpack_header(rec, 0)
            hit = kl == klen and rec.startswith(key, HEADER_SIZE)
        if hit:
            return 0 if info & TOMBSTONE else 1
        addr = info & PREV_MASK
    return -1


def prefetch_bases(kv: F2Kv, runs: Runs, known: dict[bytes, int] | None = None) -> dict[bytes, int]:
    """Without the latch (the caller holds the maintenance lock, so the cold tier stays as it
    is): the bases below the range of ``runs``'s keys whose base is not in the range (nor in
    ``known``). A base is a record older than the key's newest: nothing changes it in place."""
    bases: dict[bytes, int] = {}
    cold: list[bytes] = []
    prevs = runs.prevs
    for key, state in runs.runs.items():
        if state < 2 and (known is None or key not in known):
            base = -1 if prevs is None else _hot_base(kv, key, prevs[key], kv._lock)
            if base < 0:
                cold.append(key)
            else:
                bases[key] = base
    # their cold-index entries in one pass in file order (cold_index.py, begin_batch)
    index = kv._cold.index
    index.begin_batch(xxh3_64_intdigest(key) for key in cold)
    try:
        for key in cold:
            bases[key] = cold_live(kv._cold, key)
    finally:
        index.end_batch()
    return bases


def settle_to_tail(kv: F2Kv) -> None:
    """Settle the hot log from the settled address to the tail (``len()``), holding neither
    the store's latch nor its maintenance lock across device reads for long.

    The range below the read-only address is immutable: it is settled in steps of
    ``SETTLE_STEP`` bytes (``_settle_step``), each under the maintenance lock (no compaction
    or other settling meanwhile) but without the latch, so readers and writers go on, and a
    compaction waits for one step at most. The rest, the mutable region, is settled last
    (``_settle_rest``)."""
    hlog = kv._log
    # Each pass settles up to the read-only address as it was when the pass began (writers
    # could keep a moving one out of reach); the second one, what writers added meanwhile,
    # so that little is left for ``_settle_rest``.
    for _ in range(2):
        with kv._lock:
            if hlog.tail_address - max(kv._settled, hlog.read_only_address) > SETTLE_STEP:
                # Much of it is mutable: make it read-only (as every commit does), so that
                # it is settled in steps too, not under the maintenance lock all at once.
                hlog.shift_read_only(hlog.tail_address)
            target = hlog.read_only_address
        while True:
            if kv._hot_over():
                # The compaction thread would rarely win the lock between two steps, and
                # writers wait for the room it makes: compact here.
                kv.run_maintenance()
            with kv._maint_lock:
                _check_open(kv)
                with kv._lock:
                    start = max(kv._settled, hlog.begin_address)
                if start >= target:
                    break
                _settle_step(kv, start, min(target, start + SETTLE_STEP))
    with kv._maint_lock:
        _check_open(kv)
        _settle_rest(kv)


def _check_open(kv: F2Kv) -> None:
    """Under the maintenance lock: ``close()`` waits for the lock's holder (the files stay
    open for a step's unlatched reads), then a settling stops here."""
    if kv._f2_stopping:
        raise StoreClosedError("the store is closing")


def _settle_step(kv: F2Kv, start: int, end: int) -> None:
    """Settle [start, end), below the read-only address; the caller holds the maintenance
    lock. A partial settling is exact: a key's records above ``end`` find their base at or
    below it when they are settled (their run's first record links down to it)."""
    hlog = kv._log
    with kv._lock:
        runs = Runs(kv._settled, with_prev=start > hlog.begin_address)
        device = max(start, min(hlog.head_address, end))
    # (``end`` need not be a record's address: the step ends after the last record it read)
    last = _feed(runs, hlog.records(start, device))  # on the device: no page of it is reused
    with kv._lock:
        last = max(last, _feed(runs, hlog.records(device, end)))
    delta = settle(kv, runs, prefetch_bases(kv, runs))
    with kv._lock:
        kv._live += delta
        kv._settled = last or end


def _settle_rest(kv: F2Kv) -> None:
    """Settle [settled, tail); the caller holds the maintenance lock. The latch is held for
    reading the range (in memory: the mutable region and a little more) and for applying the
    difference; the bases are looked up without it in between, for the range as it was then
    (a base is never changed in place; the mutable region's records may be, so it is read
    again), until only a few keys written meanwhile are left for the latch to look up, or for
    ``_ROUNDS`` rounds: writers of new keys may be faster than the lookups."""
    hlog = kv._log
    with kv._lock:
        settled = kv._settled
        start = max(settled, hlog.begin_address)
        stable = max(start, hlog.read_only_address)
        runs = Runs(settled, with_prev=start > hlog.begin_address)
        _feed(runs, hlog.records(start, stable))
    bases: dict[bytes, int] = {}
    for round_ in range(_ROUNDS):
        with kv._lock:
            tail = hlog.tail_address
            now = runs.copy()
            _feed(now, hlog.records(stable, tail))
            if round_ == _ROUNDS - 1 or _unknown_bases(now, bases) <= _LATCHED_LOOKUPS:
                kv._live += settle(kv, now, bases)
                kv._settled = tail
                kv._n_blind = 0
                return
        bases.update(prefetch_bases(kv, now, bases))


def _unknown_bases(runs: Runs, bases: dict[bytes, int]) -> int:
    return sum(1 for key, state in runs.runs.items() if state < 2 and key not in bases)


def _feed(runs: Runs, records: Iterable[RecordTuple]) -> int:
    """Feed ``records`` to ``runs``; the address after the last one (0 if none)."""
    add = runs.add
    after = 0
    for addr, info, kl, _vl, rec in records:
        add(addr, info, bytes(rec[HEADER_SIZE : HEADER_SIZE + kl]))
        after = addr + len(rec)
    return after
