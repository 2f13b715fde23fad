"""The read cache: records read from the device, kept in memory so hot cold keys stay fast.

FASTER's read cache is a second, memory-only log: a record read from disk is copied to its
tail, the oldest records fall off its head, and a record that is read again while it sits in the
oldest ``second_chance_fraction`` of the cache is copied to the tail once more (its second
chance). This one keeps that policy but is keyed by the record's log address instead of being
spliced into the hash chains: records below the head address never change, so an address is a
complete cache key and the index needs no read-cache bit handling. The main log never grows
because of reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class ReadCache:
    def __init__(self, capacity_bytes: int, second_chance_fraction: float = 0.1) -> None:
        if not 0.0 <= second_chance_fraction <= 1.0:
            raise ValueError(
                f"second_chance_fraction must be in [0, 1], got {second_chance_fraction}"
            )
        self.capacity = capacity_bytes
        self.second_chance = second_chance_fraction
        # address -> (record bytes, position in the cache's own logical log)
        self._entries: OrderedDict[int, tuple[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._tail = 0  # logical bytes ever inserted
        self._head = 0  # logical position of the oldest record (a lower bound)
        self._second_chance_bytes = capacity_bytes * second_chance_fraction
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.copies = 0

    def get(self, address: int) -> bytes | None:
        # A plain dict lookup (atomic under the GIL): the hit path takes no lock.
        entry = self._entries.get(address)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        record, position = entry
        if position < self._head + self._second_chance_bytes:
            # Near the head: copy to the tail so that a hot record is not evicted.
            with self._lock:
                if address in self._entries:
                    self._entries.move_to_end(address)
                    self._entries[address] = (record, self._tail)
                    self._tail += len(record)
                    self.copies += 1
        return record

    def put(self, address: int, record: bytes) -> None:
        if self.capacity <= 0 or len(record) > self.capacity:
            return
        with self._lock:
            if address in self._entries:
                return
            self._entries[address] = (record, self._tail)
            self._tail += len(record)
            self.bytes += len(record)
            while self.bytes > self.capacity:
                _, (old, position) = self._entries.popitem(last=False)
                self.bytes -= len(old)
                self._head = position + len(old)  # the oldest position still cached, at most

    def drop_below(self, address: int) -> None:
        """Forget records below ``address`` (the log was truncated there)."""
        with self._lock:
            for addr in [a for a in self._entries if a < address]:
                record, _ = self._entries.pop(addr)
                self.bytes -= len(record)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
