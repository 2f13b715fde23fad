"""The read cache: records read from the device, kept in memory so hot cold keys stay fast.

FASTER's read cache is a second, memory-only log: a record read from disk is copied to its
tail, the oldest records fall off its head, and a record that is read again while it sits in the
oldest ``second_chance_fraction`` of the cache is copied to the tail once more (its second
chance). This one keeps that policy but is keyed by the record's log address instead of being
spliced into the hash chains: records below the head address never change, so an address is a
complete cache key and the index needs no read-cache bit handling. The main log never grows
because of reads.

Admission differs from FASTER: a record enters the cache on its *second* device read within a
recent window, not its first. With skewed keys most records read from the device are read once
(FASTER copies every one of them, pushing the hot ones out); a small "seen once" filter of
recently read addresses lets only repeatedly read records in, so the cache holds hot records and
most device reads cost no insert at all.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict

# The "seen once" filter: a direct-mapped table of recently read addresses, at most one 2-byte
# slot per this many bytes of the budget (so at most 1/8 of it, taken from the records' share).
# That remembers about eight times as many addresses as the cache holds 128-byte records: a
# window of device reads long enough for a lukewarm record to be read twice in it.
_BYTES_PER_SLOT = 16


class ReadCache:
    def __init__(self, capacity_bytes: int, second_chance_fraction: float = 0.1) -> None:
        if not 0.0 <= second_chance_fraction <= 1.0:
            raise ValueError(
                f"second_chance_fraction must be in [0, 1], got {second_chance_fraction}"
            )
        self.capacity = capacity_bytes  # the budget: records plus the filter
        self.second_chance = second_chance_fraction
        # address -> (record bytes, position in the cache's own logical log)
        self._entries: OrderedDict[int, tuple[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._tail = 0  # logical bytes ever inserted
        self._head = 0  # logical position of the oldest record (a lower bound)
        bits = max(0, (capacity_bytes // _BYTES_PER_SLOT).bit_length() - 1)
        self._seen = array("H", bytes(2 << bits)) if capacity_bytes > 0 else array("H")
        self._seen_bits = bits
        self._seen_mask = (1 << bits) - 1
        self.record_capacity = max(0, capacity_bytes - self.filter_bytes)
        self._second_chance_bytes = self.record_capacity * second_chance_fraction
        # For the store's lock-free hit path: the dict itself, and the position below which a
        # hit is due for its second chance (that one takes the slow path, ``get``).
        self.entries = self._entries
        self.hit_floor: float = self._second_chance_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.copies = 0
        self.admitted = 0

    @property
    def filter_bytes(self) -> int:
        """Memory of the "seen once" filter, part of ``capacity`` (``bytes`` counts records)."""
        return len(self._seen) * self._seen.itemsize

    def get(self, address: int) -> bytes | None:
        # A plain dict lookup (atomic under the GIL): the hit path takes no lock.
        entry = self._entries.get(address)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        if entry[1] < self._head + self._second_chance_bytes:
            # Near the head: copy to the tail so that a hot record is not evicted.
            self._second_chance(address, entry[0])
        return entry[0]

    def _second_chance(self, address: int, record: bytes) -> None:
        with self._lock:
            if address in self._entries:
                self._entries.move_to_end(address)
                self._entries[address] = (record, self._tail)
                self._tail += len(record)
                self.copies += 1

    def put(self, address: int, record: bytes) -> None:
        """Offer ``record``, just read from the device at ``address``.

        The first offer of an address only remembers it (in a slot of the "seen once" filter,
        which a later address may take over); an offer while it is remembered inserts it.
        """
        if len(record) > self.record_capacity or not self.record_capacity:
            return
        seen = self._seen
        a = address >> 3  # records are 8-byte aligned
        slot = a & self._seen_mask
        # The next 15 address bits, with the top bit set so that no tag equals an empty slot; a
        # false match (two addresses alike in all those bits) only admits a record early.
        tag = 0x8000 | ((a >> self._seen_bits) & 0x7FFF)
        if seen[slot] != tag:
            seen[slot] = tag  # a race with another thread only loses one admission
            return
        seen[slot] = 0
        with self._lock:
            if address in self._entries:
                return
            self._entries[address] = (record, self._tail)
            self._tail += len(record)
            self.bytes += len(record)
            self.admitted += 1
            while self.bytes > self.record_capacity:
                _, (old, position) = self._entries.popitem(last=False)
                self.bytes -= len(old)
                self._head = position + len(old)  # the oldest position still cached, at most
            self.hit_floor = self._head + self._second_chance_bytes

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
            self._seen = array("H", bytes(len(self._seen) * self._seen.itemsize))

    def __contains__(self, address: int) -> bool:
        return address in self._entries

    def __len__(self) -> int:
        return len(self._entries)
