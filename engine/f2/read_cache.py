"""F2's read cache: cold records that were read, kept in memory by key.

It sits between the hot index and the cold index on the read path, so a read-hot cold key costs
neither a cold-index lookup nor a cold-log read. Like FASTER's read cache it is a memory-only
log: records (with their cold address) are appended to a ring buffer, the oldest fall off as the
ring wraps, and a hit in the oldest ``second_chance`` fraction is copied to the tail once more.
It is found by key through a small table of 8-slot buckets (a 16-bit hash tag and a logical
ring position per slot; a full bucket drops its oldest slot), so an entry costs its record plus
10 bytes of table and no Python objects: about three times as many records fit in a budget as in
a dict of tuples.

Admission is FASTER's read cache with one change, as in the single log's cache
(engine/read_cache.py): a record enters on its *second* read within a recent window (a
direct-mapped filter of hash tags), not its first. With skewed keys most cold reads are of keys
read once; letting those in would push the read-hot ones out.

Whoever changes the cold tier for some keys (a compaction) calls ``invalidate`` with their
hashes; a reader inserts what it read only if no invalidation happened since it started
(``epoch``), so a slow reader never caches a version that a compaction superseded meanwhile.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections.abc import Iterable
from itertools import islice

from faster_backend.engine.f2.pacing import NO_PACING, Pacer
from faster_backend.engine.record import HEADER, HEADER_SIZE, size_from_header

SLOTS = 8
_INVALIDATE_SLICE = 256  # hashes an invalidation handles per hold of the lock
_ADDR = struct.Struct("<Q")
_unpack_header = HEADER.unpack_from


class KeyReadCache:
    def __init__(self, capacity_bytes: int, second_chance: float = 0.1) -> None:
        self.capacity = capacity_bytes
        self.second_chance = second_chance
        # 1/16 of the budget for the table, 1/16 for the admission filter, the rest for records
        n_buckets = 1 << max(0, (capacity_bytes // (16 * 10 * SLOTS)).bit_length() - 1)
        n_seen = 1 << max(0, (capacity_bytes // (16 * 2)).bit_length() - 1)
        n_slots = SLOTS * n_buckets if capacity_bytes else 0
        self._tags = array("H", bytes(2 * n_slots))
        self._pos = array("Q", bytes(8 * n_slots))
        self._bmask = n_buckets - 1
        self._seen = array("H", bytes(2 * n_seen)) if capacity_bytes else array("H")
        self._smask = n_seen - 1
        ring = capacity_bytes - 10 * n_slots - 2 * len(self._seen)
        self._ring_size = max(0, ring) & ~7
        self._ring = bytearray(self._ring_size)
        self._tail = self._ring_size  # logical; positions below tail - ring size are gone
        self._lock = threading.Lock()
        self.epoch = 0
        self.records = 0
        self.hits = 0
        self.misses = 0

    @property
    def memory_bytes(self) -> int:
        """Memory held: the ring, the table and the filter, all allocated up front."""
        return self._ring_size + 10 * len(self._tags) + 2 * len(self._seen)

    def _slots(self, key: bytes, h: int) -> list[int]:
        """The slots that hold ``key`` (usually none or one)."""
        base = ((h >> 20) & self._bmask) * SLOTS
        tag = (h >> 48) or 1
        tags = self._tags
        if tag not in tags[base : base + SLOTS]:  # the common miss, decided in C
            return []
        positions = self._pos
        ring = self._ring
        low = self._tail - self._ring_size
        klen = len(key)
        out = []
        for i in range(base, base + SLOTS):
            if tags[i] == tag:
                pos = positions[i]
                if pos >= low:
                    off = (pos % self._ring_size) + 8
                    if _unpack_header(ring, off)[1] == klen and ring.startswith(
                        key, off + HEADER_SIZE
                    ):
                        out.append(i)
        return out

    def get(self, key: bytes, h: int) -> tuple[int, bytes] | None:
        """(cold address, record) of ``key``, or None."""
        if not self._ring_size:
            return None
        with self._lock:
            found = self._slots(key, h)
            if not found:
                self.misses += 1
                return None
            self.hits += 1
            i = found[0]
            pos = self._pos[i]
            ring = self._ring
            off = pos % self._ring_size
            info, kl, vl = _unpack_header(ring, off + 8)
            rec = bytes(ring[off + 8 : off + 8 + size_from_header(info, kl, vl)])
            addr: int = _ADDR.unpack_from(ring, off)[0]
            if pos < self._tail - self._ring_size * (1.0 - self.second_chance):
                for j in found:
                    self._tags[j] = 0
                self._append(h, addr, rec)
            return addr, rec

    def put(self, key: bytes, h: int, addr: int, rec: bytes, epoch: int) -> None:
        size = 8 + len(rec)
        if size > self._ring_size:
            return
        with self._lock:
            if epoch != self.epoch:
                return  # the cold tier changed since this reader started
            seen = h & self._smask
            tag = (h >> 48) or 1
            if self._seen[seen] != tag:
                self._seen[seen] = tag  # first read: remember it, do not admit
                return
            # (A reader that raced this one may have put the same version: invalidate and
            # second chance handle every copy of a key.)
            self._append(h, addr, rec)

    def _append(self, h: int, addr: int, rec: bytes) -> None:
        size = (8 + len(rec) + 7) & ~7
        ring_size = self._ring_size
        pos = self._tail
        if pos % ring_size + size > ring_size:
            pos += ring_size - pos % ring_size  # records do not wrap: skip the ring's end
        self._tail = pos + size
        off = pos % ring_size
        ring = self._ring
        _ADDR.pack_into(ring, off, addr)
        ring[off + 8 : off + 8 + len(rec)] = rec
        self.records += 1
        base = ((h >> 20) & self._bmask) * SLOTS
        tags = self._tags
        positions = self._pos
        low = self._tail - ring_size
        victim = base
        oldest = -1
        for i in range(base, base + SLOTS):
            p = positions[i]
            if not tags[i] or p < low:
                victim = i  # free, or its record was overwritten
                break
            if oldest < 0 or p < oldest:
                victim, oldest = i, p
        tags[victim] = (h >> 48) or 1
        positions[victim] = pos

    def invalidate(self, hashes: Iterable[int], pace: Pacer = NO_PACING) -> None:
        """Forget the keys of ``hashes`` (xxh3). A slot of another key with the same bucket and
        tag goes too (about 1 in 65k of them): a lost entry, never a stale one."""
        with self._lock:
            self.epoch += 1
            if not self._ring_size:
                return
        # In slices, each under the lock, with a pause between them (engine/f2/pacing.py): a
        # compaction may name 400k keys. A read between two slices is of the truth (the
        # callers' keys are still in the hot log, or their cold records were copied whole).
        hashes = iter(hashes)
        while part := list(islice(hashes, _INVALIDATE_SLICE)):
            with self._lock:
                tags = self._tags
                bmask = self._bmask
                for h in part:
                    base = ((h >> 20) & bmask) * SLOTS
                    tag = (h >> 48) or 1
                    if tag in tags[base : base + SLOTS]:
                        for i in range(base, base + SLOTS):
                            if tags[i] == tag:
                                tags[i] = 0
            pace.pause()

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1  # refuses every read that started before
            self._tags = array("H", bytes(2 * len(self._tags)))

    def __len__(self) -> int:
        low = self._tail - self._ring_size
        return sum(1 for t, p in zip(self._tags, self._pos, strict=True) if t and p >= low)
