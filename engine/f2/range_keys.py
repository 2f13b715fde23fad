"""A hot-cold compaction's keys, held in arrays instead of dicts of key bytes.

A compaction reads its range twice: the first pass records, for each key, how many of its
records the range holds and its uncounted run (engine/f2/counting.py, ``Runs``); the second
settles the runs and moves each key's newest record. A dict keyed by the key's bytes cost
about 190 B a key, and a compaction at 10M keys holds about 400k keys. Here a key is its 64-bit
xxh3 (the cold index's hash) and its 64-bit xxh64 together, a 128-bit identity (two distinct
keys share both with a probability of about n^2 / 2^129 per compaction), given a dense id by
an open-addressing table, and each record of the range remembers its key's id: about 40 B a
key in all, in a few arrays that are freed whole.
"""

from __future__ import annotations

from array import array

from faster_backend.engine.f2.pacing import NO_PACING, Pacer
from faster_backend.engine.record import TOMBSTONE, UNCOUNTED

# A key's state byte: its newest counted record's liveness + 1 (0 when none so far) in bits
# 0-1; _RUN when its newest record so far is uncounted and not settled, with the run's base
# (the counted liveness before the run, + 1; 0 when the run starts the range and its base is
# below it, in the cold tier) in bits 2-3 and the run's newest record's liveness in bit 4.
_COUNTED = 0b11
_BASE_SHIFT = 2
_BASE = 0b11 << _BASE_SHIFT
_LIVE = 1 << 4
_RUN = 1 << 5
_EMPTY = 0xFFFFFFFF


class RangeKeys:
    """The keys of a compaction range, fed its records in address order."""

    def __init__(self, settled: int, pace: Pacer = NO_PACING) -> None:
        self.settled = settled
        self._pace = pace
        self.hashes = array("Q")  # by id: the key's xxh3 (the cold index's hash)
        self.checks = array("Q")  # by id: the key's xxh64
        self.counts = array("I")  # by id: the key's records left in the range
        self.states = array("B")  # by id: see the state byte above
        self.ids = array("I")  # by record, in address order: its key's id
        self._slots = array("I", [_EMPTY]) * 1024  # open addressing: id, or _EMPTY
        self._mask = len(self._slots) - 1

    def __len__(self) -> int:
        return len(self.hashes)

    def add(self, h: int, check: int, addr: int, info: int) -> None:
        """The range's next record: at ``addr``, of the key (``h``, ``check``)."""
        i = self._id(h, check)
        self.ids.append(i)
        self.counts[i] += 1
        state = self.states[i]
        live = 0 if info & TOMBSTONE else 1
        if info & UNCOUNTED and addr >= self.settled:
            if state & _RUN:
                self.states[i] = (state & ~_LIVE) | live << 4
            else:
                # (an uncounted record is never followed by a counted one of its key above
                # the settled address: every write over it inherits the bit)
                self.states[i] = state | _RUN | (state & _COUNTED) << _BASE_SHIFT | live << 4
        else:
            self.states[i] = live + 1

    def _id(self, h: int, check: int) -> int:
        slots = self._slots
        mask = self._mask
        s = h & mask
        hashes = self.hashes
        while True:
            i = slots[s]
            if i == _EMPTY:
                break
            if hashes[i] == h and self.checks[i] == check:
                return i
            s = (s + 1) & mask
        i = len(hashes)
        slots[s] = i
        hashes.append(h)
        self.checks.append(check)
        self.counts.append(0)
        self.states.append(0)
        if 2 * (i + 1) > len(slots):  # at most half full
            self._grow()
        return i

    def _grow(self) -> None:
        slots = array("I", [_EMPTY]) * (2 * len(self._slots))
        mask = len(slots) - 1
        pace = self._pace  # the table grows to 1M slots at 10M keys
        for i, h in enumerate(self.hashes):
            pace()
            s = h & mask
            while slots[s] != _EMPTY:
                s = (s + 1) & mask
            slots[s] = i
        self._slots = slots
        self._mask = mask

    def needs_base(self, i: int) -> bool:
        """Whether key ``i``'s run starts the range, so that its base is below it, in the cold
        tier: the caller looks it up there and gives it to ``set_base``."""
        state = self.states[i]
        return bool(state & _RUN) and not state & _BASE

    def set_base(self, i: int, live: int) -> None:
        self.states[i] |= (live + 1) << _BASE_SHIFT

    def delta(self) -> int:
        """The count difference of the range's runs: live(newest) - live(base) per run. Every
        base must be known (``set_base``)."""
        delta = 0
        pace = self._pace
        for state in self.states:
            pace()
            if state & _RUN:
                base = (state & _BASE) >> _BASE_SHIFT
                if not base:
                    raise ValueError("a run's base was not looked up")
                delta += (state >> 4 & 1) - (base - 1)
        return delta

    def release(self) -> None:
        """Free what only the first pass needs (the table and the second hashes)."""
        self._slots = array("I")
        self.checks = array("Q")
