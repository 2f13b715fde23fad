"""F2's cold index: a two-level hash index whose chunks are records of an internal FasterKv.

Level one is arithmetic: the low bits of a key's hash pick a chunk. Level two is the chunk, a
256-byte value of 4 hash buckets of 8 u64 entries (FASTER's cold index geometry: 32 entries in
256 bytes)::

    entry        bits 0-47 address of the newest cold record of the chain, bits 48-63 tag
    slots 0-6    one chain per tag (16-bit tag = high bits of the key hash, never 0)
    slot 7       the bucket's overflow chain: keys whose tag found no free slot

A chunk is stored under its 8-byte chunk number in the chunk store, a FasterKv with its own
device and a small memory budget, so the index costs memory only for the chunk store's hash
index (one entry per chunk) and its few in-memory pages: almost nothing per cold key.

Tag slots are never freed (except by ``clear``). That keeps the one invariant readers rely on:
all records of a (bucket, tag) are on the tag's chain if the tag has a slot, otherwise on the
overflow chain, so a reader that finds no slot for its tag follows the overflow chain. Records
are compared by key on every chain, so sharing a chain between keys is always safe.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from faster_backend.engine.faster_kv import FasterKv

CHUNK_BYTES = 256
BUCKETS_PER_CHUNK = 4
ENTRIES_PER_BUCKET = 8
TAG_SLOTS = 7  # slot 7 is the overflow chain
OVERFLOW = 7
ADDRESS_MASK = (1 << 48) - 1
TAG_SHIFT = 48
_BUCKET = struct.Struct("<8Q")
_CHUNK_KEY = struct.Struct("<Q")
_EMPTY = bytes(CHUNK_BYTES)


def _locate(h: int, mask: int) -> tuple[int, int, int]:
    """(chunk number, byte offset of the bucket in the chunk, tag) of a key hash."""
    return h & mask, ((h >> 40) & 3) * 64, (h >> TAG_SHIFT) or 1


class ColdIndex:
    """Maps a key hash to the newest cold-log address of its chain; chunks live in ``store``."""

    def __init__(self, store: FasterKv, n_chunks: int) -> None:
        if n_chunks < 1 or n_chunks & (n_chunks - 1):
            raise ValueError(f"cold_index_chunks must be a power of two, got {n_chunks}")
        self.store = store
        self.n_chunks = n_chunks
        self.mask = n_chunks - 1
        self.lookups = 0
        self.updates = 0

    def chunk(self, number: int) -> bytes:
        """The 256 bytes of chunk ``number`` (zeros if it was never written)."""
        data = self.store.read(_CHUNK_KEY.pack(number))
        return _EMPTY if data is None else data

    def find(self, h: int) -> int:
        """Address of the chain a key with hash ``h`` is on (0: no chain)."""
        self.lookups += 1
        number, off, tag = _locate(h, self.mask)
        data = self.store.read(_CHUNK_KEY.pack(number))
        if data is None:
            return 0
        words = _BUCKET.unpack_from(data, off)
        for i in range(TAG_SLOTS):
            if words[i] >> TAG_SHIFT == tag:
                return int(words[i] & ADDRESS_MASK)
        return int(words[OVERFLOW] & ADDRESS_MASK)

    def set(self, h: int, address: int, link: Callable[[int], None]) -> None:
        """Point the chain of hash ``h`` at ``address`` (claiming a tag slot if one is free).

        ``link(previous chain address)`` runs inside the chunk's RMW, before the new entry is
        visible: the caller stores it as the new record's previous address there, so a reader
        never follows a new record whose link is not set yet. The caller serialises updates
        (the cold log's write lock); the chunk store's RMW makes each atomic for readers.
        """
        self.updates += 1
        number, off, tag = _locate(h, self.mask)

        def update(old: bytes | None) -> bytes:
            chunk = bytearray(old if old is not None else _EMPTY)
            words = _BUCKET.unpack_from(chunk, off)
            slot = -1
            free = -1
            for i in range(TAG_SLOTS):
                w = words[i]
                if w >> TAG_SHIFT == tag:
                    slot = i
                    break
                if not w and free < 0:
                    free = i
            if slot < 0:
                # Slots are never freed, so a free slot means the bucket never filled up and
                # no key went to the overflow chain yet: claiming it keeps the invariant.
                slot = free if free >= 0 else OVERFLOW
            link(int(words[slot] & ADDRESS_MASK))
            entry = address | (tag << TAG_SHIFT) if slot != OVERFLOW else address
            struct.pack_into("<Q", chunk, off + slot * 8, entry)
            return bytes(chunk)

        self.store.rmw(_CHUNK_KEY.pack(number), update)

    def close(self) -> None:
        ColdIndex.close_store(self.store)

    @staticmethod
    def close_store(store: FasterKv) -> None:
        """Close the chunk store without the checkpoint FasterKv takes at close: the cold
        index's durable state is the chunk checkpoint that an F2 manifest names."""
        store._checkpoints = None
        store.close()

    def stats(self) -> dict[str, int]:
        st = self.store.stats()
        return {
            "cold_index_chunks": self.n_chunks,
            "cold_index_lookups": self.lookups,
            "cold_index_updates": self.updates,
            "cold_index_memory_bytes": st["memory_bytes"],
            "cold_index_hash_bytes": st["index_bytes"],
            "cold_index_disk_bytes": st["log_disk_bytes"],
        }

