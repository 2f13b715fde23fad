"""Background work that lets go of the GIL every few steps while the store's users wait on
device reads, so that a compaction does not stall them.

A thread that wants the GIL gets it when the holder blocks (I/O, a lock), or else only after the
holder has run for the switch interval (5 ms by default). A compaction runs Python code for
seconds with little I/O of its own, so a reader back from a device read waited up to 5 ms for
each read: on a 1M-key store, YCSB B's p99 latency went from 0.14 ms to 5.2 ms while a hot-cold
compaction ran, and its throughput from 39k to 4.7k operations a second (bench/f2_latency.py).

So a compaction calls its ``Pacer`` once a step, and every ``every`` steps (tens of
microseconds of work) the pacer releases the GIL (``time.sleep(0)``) while the store's users are
reading from the device: when they started device reads (``demand``, a counter of them) since
one of its last ``window`` looks (about 10 ms of work). A reader's read is in flight when the
counter moves, and it wants the GIL back only when the read is done, so one look is too short a
memory. It does not pause otherwise: a user that keeps the CPU busy (a bulk load in memory) would
take the GIL for a whole switch interval at every pause, and the compaction it waits on would
crawl. Nor while ``urgent()``: writers wait for the compaction to make room.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_sleep = time.sleep


def _no_demand() -> int:
    return 0


def _never() -> bool:
    return False


class Pacer:
    """Call it once a step; every ``every``-th call pauses while ``demand()`` moves."""

    __slots__ = ("_active", "_demand", "_every", "_left", "_seen", "_urgent", "_window", "pauses")

    def __init__(
        self,
        demand: Callable[[], int] = _no_demand,
        urgent: Callable[[], bool] = _never,
        every: int = 16,
        window: int = 64,
    ) -> None:
        self._every = every
        self._left = every
        self._window = window
        self._active = 0
        self._demand = demand
        self._urgent = urgent
        self._seen = demand()
        self.pauses = 0

    def __call__(self) -> None:
        self._left -= 1
        if not self._left:
            self._left = self._every
            self.pause()

    def pause(self) -> None:
        """Release the GIL now if users started device reads lately."""
        seen = self._demand()
        if seen != self._seen:
            self._seen = seen
            self._active = self._window
        if self._active and not self._urgent():
            self._active -= 1
            self.pauses += 1
            _sleep(0)


NO_PACING = Pacer()
