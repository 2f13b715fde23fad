"""FASTER's hash index: 2^k buckets, overflow buckets, tags, and incremental growth.

The index maps (bucket, tag) to the address of the newest record whose key hashes there; older
records and tag collisions are reached through each record's previous-address field, so a reader
always compares the key. Growth to 2^(k+1) buckets is incremental (as FASTER's GrowIndex): the
old table stays in use while its buckets are split, a chunk at a time, and an operation on a
bucket that is not yet split still goes to the old table.
"""

from __future__ import annotations

from collections.abc import Callable

from faster_backend.engine.hash_bucket import (
    ADDRESS_MASK,
    BUCKET,
    BUCKET_BYTES,
    ENTRIES_PER_BUCKET,
    HASH_TAG_SHIFT,
    OVERFLOW_SLOT,
    TAG_SHIFT,
    TENTATIVE,
    WORDS_PER_BUCKET,
)

# Given a record address, the key hash and previous address of that record, or None when the
# record cannot be read from memory (it is on disk or gone).
RecordResolver = Callable[[int], tuple[int, int] | None]


class BucketArray:
    """One table: main buckets followed by overflow buckets in a single bytearray."""

    __slots__ = ("buf", "capacity", "free_overflow", "mask", "next_overflow", "size", "words")

    def __init__(self, n_buckets: int) -> None:
        if n_buckets < 1 or n_buckets & (n_buckets - 1):
            raise ValueError(f"index_size must be a power of two, got {n_buckets}")
        self.size = n_buckets
        self.mask = n_buckets - 1
        # Room for overflow buckets up front (1/8 of the table); more is added on demand.
        self.capacity = n_buckets + max(8, n_buckets >> 3)
        self.buf = bytearray(self.capacity * BUCKET_BYTES)
        self.words = memoryview(self.buf).cast("Q")
        self.next_overflow = n_buckets
        self.free_overflow: list[int] = []

    @classmethod
    def from_bytes(
        cls, n_buckets: int, capacity: int, next_overflow: int, free: list[int], raw: bytes
    ) -> BucketArray:
        """A table restored from a checkpoint."""
        table = cls.__new__(cls)
        table.size = n_buckets
        table.mask = n_buckets - 1
        table.capacity = capacity
        table.buf = bytearray(raw)
        table.words = memoryview(table.buf).cast("Q")
        table.next_overflow = next_overflow
        table.free_overflow = list(free)
        return table

    def overflow_in_use(self) -> int:
        return self.next_overflow - self.size - len(self.free_overflow)

    def memory_bytes(self) -> int:
        return (self.size + self.overflow_in_use()) * BUCKET_BYTES

    def _alloc_overflow(self) -> int:
        if self.free_overflow:
            return self.free_overflow.pop()
        if self.next_overflow == self.capacity:
            grow = max(8, self.capacity >> 3)
            # A bytearray cannot resize while a memoryview exports it. Callers hold the store
            # latch, so no other thread is using ``words`` right now.
            self.words.release()
            self.buf.extend(bytes(grow * BUCKET_BYTES))
            self.words = memoryview(self.buf).cast("Q")
            self.capacity += grow
        bucket = self.next_overflow
        self.next_overflow += 1
        return bucket

    def find(self, bucket: int, tag: int) -> int:
        """Word index of the non-tentative entry with ``tag``, or -1."""
        buf = self.buf
        while True:
            words = BUCKET.unpack_from(buf, bucket * BUCKET_BYTES)
            for i in range(ENTRIES_PER_BUCKET):
                if words[i] >> TAG_SHIFT == tag:
                    return bucket * WORDS_PER_BUCKET + i
            bucket = words[OVERFLOW_SLOT]
            if not bucket:
                return -1

    def find_or_create(self, bucket: int, tag: int) -> int:
        """Word index of the entry with ``tag``, creating an empty one (address 0) if absent.

        The new entry is written tentative first and made final only after checking that no
        other entry with the same tag exists in the chain, FASTER's protocol for concurrent
        inserts. Under the store latch the check always passes; it keeps the index correct if
        latching becomes per bucket.
        """
        slot = self.find(bucket, tag)
        if slot >= 0:
            return slot
        words = self.words
        b = bucket
        free = -1
        while free < 0:
            base = b * WORDS_PER_BUCKET
            for i in range(ENTRIES_PER_BUCKET):
                if words[base + i] == 0:
                    free = base + i
                    break
            else:
                nxt = words[base + OVERFLOW_SLOT]
                if not nxt:
                    nxt = self._alloc_overflow()
                    words = self.words
                    words[base + OVERFLOW_SLOT] = nxt
                b = nxt
        tentative = (tag << TAG_SHIFT) | TENTATIVE
        words[free] = tentative
        other = self.find(bucket, tag)
        if other >= 0 and other != free:
            words[free] = 0
            return other
        words[free] = tag << TAG_SHIFT
        return free

    def set_entry(self, bucket: int, tag: int, address: int) -> None:
        """Point the entry with ``tag`` at ``address``, creating it in the first free slot.

        One pass and no tentative protocol: for callers that own the table (recovery replay,
        index growth into a table nobody else uses yet).
        """
        buf = self.buf
        entry = address | tag << TAG_SHIFT
        free = -1
        b = bucket
        while True:
            words = BUCKET.unpack_from(buf, b * BUCKET_BYTES)
            for i in range(ENTRIES_PER_BUCKET):
                w = words[i]
                if w >> TAG_SHIFT == tag:
                    self.words[b * WORDS_PER_BUCKET + i] = entry
                    return
                if w == 0 and free < 0:
                    free = b * WORDS_PER_BUCKET + i
            nxt = words[OVERFLOW_SLOT]
            if not nxt:
                break
            b = nxt
        if free < 0:
            nxt = self._alloc_overflow()
            buf = self.buf
            self.words[b * WORDS_PER_BUCKET + OVERFLOW_SLOT] = nxt
            free = nxt * WORDS_PER_BUCKET
        self.words[free] = entry

    def entries(self, bucket: int) -> list[tuple[int, int]]:
        """(word index, entry) of every used, non-tentative entry in a bucket's chain."""
        out: list[tuple[int, int]] = []
        words = self.words
        b = bucket
        while True:
            base = b * WORDS_PER_BUCKET
            for i in range(ENTRIES_PER_BUCKET):
                e = words[base + i]
                if e and not e & TENTATIVE:
                    out.append((base + i, e))
            b = words[base + OVERFLOW_SLOT]
            if not b:
                return out

    def compact_bucket(self, bucket: int) -> None:
        """Free overflow buckets of a chain whose entries are all empty."""
        words = self.words
        base = bucket * WORDS_PER_BUCKET
        nxt = words[base + OVERFLOW_SLOT]
        if not nxt:
            return
        chain = []
        b = nxt
        while b:
            chain.append(b)
            b = words[b * WORDS_PER_BUCKET + OVERFLOW_SLOT]
        for b in chain:
            ob = b * WORDS_PER_BUCKET
            if any(words[ob + i] for i in range(ENTRIES_PER_BUCKET)):
                return
        words[base + OVERFLOW_SLOT] = 0
        for b in chain:
            ob = b * WORDS_PER_BUCKET
            words[ob + OVERFLOW_SLOT] = 0
            self.free_overflow.append(b)


class HashTable:
    """The store's index; ``old`` is set only while growing."""

    def __init__(self, n_buckets: int, resolver: RecordResolver) -> None:
        self.cur = BucketArray(n_buckets)
        self.old: BucketArray | None = None
        self.split = 0  # old buckets below this are already split into ``cur``
        self._resolve = resolver

    @classmethod
    def from_table(cls, table: BucketArray, resolver: RecordResolver) -> HashTable:
        ht = cls.__new__(cls)
        ht.cur = table
        ht.old = None
        ht.split = 0
        ht._resolve = resolver
        return ht

    @property
    def size(self) -> int:
        return self.cur.size

    @property
    def growing(self) -> bool:
        return self.old is not None

    def table_for(self, key_hash: int) -> tuple[BucketArray, int]:
        old = self.old
        if old is not None and key_hash & old.mask >= self.split:
            return old, key_hash & old.mask
        cur = self.cur
        return cur, key_hash & cur.mask

    def find(self, key_hash: int) -> int:
        """Address the (bucket, tag) entry points to, or 0."""
        table, bucket = self.table_for(key_hash)
        slot = table.find(bucket, (key_hash >> HASH_TAG_SHIFT) or 1)
        return table.words[slot] & ADDRESS_MASK if slot >= 0 else 0

    def find_slot(self, key_hash: int, create: bool) -> tuple[BucketArray, int]:
        """(table, word index) of the key's entry; the index is -1 when absent and not created."""
        table, bucket = self.table_for(key_hash)
        tag = (key_hash >> HASH_TAG_SHIFT) or 1
        if create:
            return table, table.find_or_create(bucket, tag)
        return table, table.find(bucket, tag)

    def memory_bytes(self) -> int:
        total = self.cur.memory_bytes()
        if self.old is not None:
            total += self.old.memory_bytes()
        return total

    def overflow_buckets(self) -> int:
        return self.cur.overflow_in_use() + (self.old.overflow_in_use() if self.old else 0)

    # -- growth ---------------------------------------------------------------------------

    def start_grow(self) -> None:
        if self.old is not None:
            return
        self.old = self.cur
        self.cur = BucketArray(self.old.size * 2)
        self.split = 0

    def grow_step(self, max_buckets: int) -> bool:
        """Split up to ``max_buckets`` old buckets; True when growth has finished."""
        old = self.old
        if old is None:
            return True
        n = old.size
        stop = min(n, self.split + max_buckets)
        cur = self.cur
        resolve = self._resolve
        for b in range(self.split, stop):
            for _, entry in old.entries(b):
                tag = entry >> TAG_SHIFT
                low = high = 0
                addr = entry & ADDRESS_MASK
                while addr and not (low and high):
                    found = resolve(addr)
                    if found is None:
                        # Not readable from memory: both halves keep the chain; readers compare
                        # keys, so sharing it is safe.
                        low = low or addr
                        high = high or addr
                        break
                    key_hash, prev = found
                    if key_hash & n:
                        high = high or addr
                    else:
                        low = low or addr
                    addr = prev
                if low:
                    cur.set_entry(b, tag, low)
                if high:
                    cur.set_entry(b + n, tag, high)
        self.split = stop
        if stop == n:
            self.old = None
            self.split = 0
            return True
        return False

    def grow(self, chunk: int = 4096) -> None:
        """Run a whole growth (callers release their latch between steps if they like)."""
        self.start_grow()
        while not self.grow_step(chunk):
            pass
