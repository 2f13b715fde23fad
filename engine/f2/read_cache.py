"""F2's read cache: cold records that were read, kept in memory by key.

It sits between the hot index and the cold index on the read path, so a read-hot cold key costs
neither a cold-index lookup nor a cold-log read. Entries are FIFO with FASTER's second chance (a
hit in the oldest ``second_chance`` fraction moves the entry to the tail). Whoever changes the
cold tier for a key (a compaction) calls ``invalidate``; a reader inserts what it read only if
that key was not invalidated since it started reading (``epoch``), so a slow reader never caches
a version that a compaction has superseded meanwhile. Invalidated keys are remembered for the
last ``_KEEP_EPOCHS`` invalidations; a reader older than that is refused outright.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

_ENTRY_OVERHEAD = 120  # dict slot, tuple and bytes headers per entry, roughly
_KEEP_EPOCHS = 2


class KeyReadCache:
    def __init__(self, capacity_bytes: int, second_chance: float = 0.1) -> None:
        self.capacity = capacity_bytes
        self.second_chance = second_chance
        self._entries: OrderedDict[bytes, tuple[int, bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._pos = 0  # logical bytes ever inserted: an entry's position in the FIFO
        self.epoch = 0
        # key -> epoch of its last invalidation, for the last _KEEP_EPOCHS epochs
        self._invalidated: list[set[bytes]] = []
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
            if key in self._entries:
                return
            if epoch != self.epoch:
                recent = self._invalidated
                if self.epoch - epoch > len(recent):
                    return  # older than what is remembered
                for keys in recent[len(recent) - (self.epoch - epoch) :]:
                    if key in keys:
                        return
            self._entries[key] = (addr, rec, self._pos)
            self._pos += len(rec) + _ENTRY_OVERHEAD
            self.bytes += cost
            while self.bytes > self.capacity:
                k, (_, old, _) = self._entries.popitem(last=False)
                self.bytes -= len(old) + len(k) + _ENTRY_OVERHEAD

    def invalidate(self, keys: Iterable[bytes]) -> None:
        gone = set(keys)
        with self._lock:
            self.epoch += 1
            self._invalidated.append(gone)
            if len(self._invalidated) > _KEEP_EPOCHS:
                del self._invalidated[0]
            for key in gone:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self.bytes -= len(entry[1]) + len(key) + _ENTRY_OVERHEAD

    def clear(self) -> None:
        with self._lock:
            self.epoch += _KEEP_EPOCHS + 1  # refuses every read that started before
            self._invalidated.clear()
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
