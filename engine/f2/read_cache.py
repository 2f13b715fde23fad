"""F2's read cache: cold records that were read, kept in memory by key.

It sits between the hot index and the cold index on the read path, so a read-hot cold key costs
neither a cold-index lookup nor a cold-log read. Entries are FIFO with FASTER's second chance (a
hit in the oldest ``second_chance`` fraction moves the entry to the tail). Whoever changes the
cold tier for some keys (a compaction) calls ``invalidate`` with them; a reader inserts what it
read only if no invalidation happened since it started reading (``epoch``), so a slow reader
never caches a version that a compaction superseded meanwhile. Compactions are rare next to
reads, so refusing those few inserts costs little, and no invalidated keys are kept in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

# Python objects per entry beyond the key's and record's bytes: the OrderedDict slot and node,
# the (address, record, position) tuple, two ints and two bytes headers (measured, CPython 3.11)
_ENTRY_OVERHEAD = 288


class KeyReadCache:
    def __init__(self, capacity_bytes: int, second_chance: float = 0.1) -> None:
        self.capacity = capacity_bytes
        self.second_chance = second_chance
        self._entries: OrderedDict[bytes, tuple[int, bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._pos = 0  # logical bytes ever inserted: an entry's position in the FIFO
        self.epoch = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> tuple[int, bytes] | None:
        """(cold address, record) of ``key``, or None."""
        if not self.capacity:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            addr, rec, pos = entry
            oldest = next(iter(self._entries.values()))[2]
            if pos < oldest + self.capacity * self.second_chance:
                self._entries.move_to_end(key)
                self._entries[key] = (addr, rec, self._pos)
                self._pos += len(rec) + _ENTRY_OVERHEAD
            return addr, rec

    def put(self, key: bytes, addr: int, rec: bytes, epoch: int) -> None:
        cost = len(rec) + len(key) + _ENTRY_OVERHEAD
        if cost > self.capacity:
            return
        with self._lock:
            if epoch != self.epoch or key in self._entries:
                return  # the cold tier changed since this reader started
            self._entries[key] = (addr, rec, self._pos)
            self._pos += len(rec) + _ENTRY_OVERHEAD
            self.bytes += cost
            while self.bytes > self.capacity:
                k, (_, old, _) = self._entries.popitem(last=False)
                self.bytes -= len(old) + len(k) + _ENTRY_OVERHEAD

    def invalidate(self, keys: Iterable[bytes]) -> None:
        with self._lock:
            self.epoch += 1
            for key in keys:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self.bytes -= len(entry[1]) + len(key) + _ENTRY_OVERHEAD

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1  # refuses every read that started before
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
