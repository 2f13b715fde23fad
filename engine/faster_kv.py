"""FasterKv: FASTER's key-value store (hash index + hybrid log) for bytes keys and values.

Concurrency model: one latch (a ``threading.Lock``) per store serialises operations. Under the
GIL only one thread runs Python code at a time anyway, so finer latching would add cost without
adding parallelism; what matters is that every operation is atomic and that the latch is never
held across I/O or across user code other than an RMW updater. Updaters run under the latch, which
is what makes RMW atomic: they must be quick and must not call back into the store.

The hot paths (``read``, ``upsert``) are written as straight-line code that reaches into the
index's and log's buffers directly: in CPython every call and attribute lookup costs tens of
nanoseconds, and these functions run millions of times per second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from xxhash import xxh3_64_intdigest

from faster_backend.engine.address import FIRST_ADDRESS
from faster_backend.engine.errors import RecordTooLargeError, StoreClosedError
from faster_backend.engine.hash_bucket import ADDRESS_MASK, BUCKET, HASH_TAG_SHIFT, TAG_SHIFT
from faster_backend.engine.hash_table import HashTable
from faster_backend.engine.hybrid_log import HybridLog
from faster_backend.engine.record import (
    EXPIRY,
    EXPIRY_SIZE,
    HAS_EXPIRY,
    HEADER,
    HEADER_SIZE,
    INFO,
    MAX_FIELD,
    PREV_MASK,
    TOMBSTONE,
    VALUE_LEN,
    make_info,
    record_size,
    write_record,
)
from faster_backend.engine.session import Session
from faster_backend.engine.ttl import KEEP_TTL, TtlArg

log = logging.getLogger(__name__)


Updater = Callable[[bytes | None], bytes | None]

_unpack_bucket = BUCKET.unpack_from
_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack_into
_unpack_expiry = EXPIRY.unpack_from
_pack_info = INFO.pack_into
_pack_expiry = EXPIRY.pack_into
_pack_vlen = VALUE_LEN.pack_into
_now = time.time

_SWEEP_EVERY = 64  # writes between two incremental expiry sweeps
_SWEEP_BUCKETS = 16
_GROW_STEP = 256  # old buckets split per write while the index grows
_BIT_REVERSE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse64(v: int) -> int:
    return int.from_bytes(v.to_bytes(8, "little").translate(_BIT_REVERSE), "big")


class _ClosedLatch:
    """Stands in for the latch of a closed store so that the hot paths need no extra check."""

    def acquire(self, *args: Any) -> bool:
        raise StoreClosedError("the store is closed")

    def release(self) -> None:  # pragma: no cover - acquire never succeeds
        pass

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:  # pragma: no cover
        pass


def _ttl_to_expiry(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    return int((_now() + ttl) * 1000)


class FasterKv:
    """A FASTER store of bytes keys and values with optional per-record TTL."""

    def __init__(
        self,
        *,
        memory_size: int = 256 << 20,
        index_size: int = 1 << 16,
        page_size: int | None = None,
        mutable_fraction: float = 0.9,
        index_load_factor: float = 6.0,
    ) -> None:
        if page_size is None:
            page_size = default_page_size(memory_size)
        if index_load_factor <= 0:
            raise ValueError(f"index_load_factor must be positive, got {index_load_factor}")
        self.memory_size = memory_size
        self.page_size = page_size
        self.index_load_factor = index_load_factor
        self.mutable_fraction = mutable_fraction
        self._lock: Any = threading.Lock()
        self._log = HybridLog(page_size, memory_size // page_size, mutable_fraction, self._on_evict)
        self._index = HashTable(index_size, self._resolve)
        self._version = 0
        # RecordInfo bits of a fresh record with no flags: final bit + checkpoint version.
        self._info_bits = make_info(0, self._version, 0)
        self._live = 0
        self._writes = 0
        self._sweep_cursor = 0
        self._grow_at = int(index_size * index_load_factor)
        self._sessions: dict[str, Session] = {}
        self._closed = False
        # counters (plain attributes: cheaper than a dict on the hot path)
        self._n_reads = self._n_hits = self._n_upserts = self._n_rmws = 0
        self._n_in_place = self._n_copies = self._n_deletes = self._n_expired = 0
        self._n_evicted = self._n_grows = 0

    # -- context management ----------------------------------------------------------------

    def __enter__(self) -> FasterKv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's memory; later operations raise StoreClosedError."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._lock = _ClosedLatch()
        log.debug("store closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self) -> Session:
        """A session: the same operations, each numbered with a serial number (for CPR)."""
        s = Session(self)
        self._sessions[s.id] = s
        return s

    def _end_session(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    # -- reads -----------------------------------------------------------------------------

    def read(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None if absent, deleted or expired."""
        h = xxh3_64_intdigest(key)
        tag = (h >> HASH_TAG_SHIFT) or 1
        lock = self._lock
        lock.acquire()
        try:
            self._n_reads += 1
            ix = self._index
            addr = 0
            if ix.old is None:
                table = ix.cur
                buf = table.buf
                b = h & table.mask
                while True:
                    words = _unpack_bucket(buf, b << 6)
                    for e in words:
                        if e >> TAG_SHIFT == tag:
                            addr = e & ADDRESS_MASK
                            break
                    else:
                        b = words[7]
                        if b:
                            continue
                    break
            else:
                addr = ix.find(h)
            hlog = self._log
            head = hlog.head_address
            pages = hlog.pages
            bits = hlog.page_bits
            pmask = hlog.page_mask
            klen = len(key)
            while addr >= head:
                page = pages[addr >> bits]
                off = addr & pmask
                info, kl, vl = _unpack_header(page, off)  # type: ignore[arg-type]
                if kl == klen and page.startswith(key, off + HEADER_SIZE):  # type: ignore[union-attr]
                    if info & TOMBSTONE:
                        return None
                    if info & HAS_EXPIRY:
                        size = ((HEADER_SIZE + kl + vl + 7) & ~7) + EXPIRY_SIZE
                        if _unpack_expiry(page, off + size - EXPIRY_SIZE)[0] <= _now() * 1000:  # type: ignore[arg-type]
                            self._expire_at(addr, key, h)
                            return None
                    self._n_hits += 1
                    start = off + HEADER_SIZE + kl
                    return hlog.views[addr >> bits][start : start + vl].tobytes()  # type: ignore[index]
                addr = info & PREV_MASK
            return None
        finally:
            lock.release()

    def read_with_expiry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """(value, absolute expiry as a unix time or None), or None if there is no live value."""
        h = xxh3_64_intdigest(key)
        with self._lock:
            self._n_reads += 1
            found = self._find_live(key, h)
            if found is None:
                return None
            _, page, off, info, kl, vl = found
            self._n_hits += 1
            value = bytes(page[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            expiry = self._expiry_of(page, off, info, kl, vl)
            return value, None if expiry is None else expiry / 1000.0

    def exists(self, key: bytes) -> bool:
        h = xxh3_64_intdigest(key)
        with self._lock:
            return self._find_live(key, h) is not None

    def ttl(self, key: bytes) -> float | None:
        """Seconds left before ``key`` expires; None for no expiry. Raises KeyError if absent."""
        found = self.read_with_expiry(key)
        if found is None:
            raise KeyError(key)
        expiry = found[1]
        return None if expiry is None else max(0.0, expiry - _now())

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; ``ttl`` in seconds (None: never expires)."""
        h = xxh3_64_intdigest(key)
        if ttl is not None:
            if ttl <= 0:
                self.delete(key)
                return
            expiry = int((_now() + ttl) * 1000)
            with self._lock:
                self._n_upserts += 1
                self._write(key, h, value, expiry)
            return
        tag = (h >> HASH_TAG_SHIFT) or 1
        lock = self._lock
        lock.acquire()
        try:
            self._n_upserts += 1
            ix = self._index
            if ix.old is not None:
                self._write(key, h, value, None)
                return
            # Fast path (no expiry, index not growing): probe the bucket chain inline.
            table = ix.cur
            buf = table.buf
            b = h & table.mask
            slot = empty = -1
            while True:
                words = _unpack_bucket(buf, b << 6)
                for e in words:
                    if e >> TAG_SHIFT == tag:
                        slot = (b << 3) + words.index(e)
                        break
                else:
                    if empty < 0 and 0 in words[:7]:
                        empty = (b << 3) + words.index(0)
                    b = words[7]
                    if b:
                        continue
                break
            hlog = self._log
            klen = len(key)
            vlen = len(value)
            size = (HEADER_SIZE + klen + vlen + 7) & ~7
            prev = 0
            if slot >= 0:
                prev = table.words[slot] & ADDRESS_MASK
                addr = prev
                head = hlog.head_address
                pages = hlog.pages
                bits = hlog.page_bits
                pmask = hlog.page_mask
                while addr >= head:
                    page = pages[addr >> bits]
                    off = addr & pmask
                    info, kl, vl = _unpack_header(page, off)  # type: ignore[arg-type]
                    if kl == klen and page.startswith(key, off + HEADER_SIZE):  # type: ignore[union-attr]
                        # An existing key (live, deleted or expiring): the general path.
                        if (
                            info & (TOMBSTONE | HAS_EXPIRY)
                            or addr < hlog.read_only_address
                            or (HEADER_SIZE + kl + vl + 7) & ~7 != size
                            or vlen > MAX_FIELD
                        ):
                            self._write(key, h, value, None)
                            return
                        start = off + HEADER_SIZE + kl
                        page[start : start + vlen] = value  # type: ignore[index]
                        _pack_vlen(page, off + 12, vlen)  # type: ignore[arg-type]
                        self._n_in_place += 1
                        self._after_write()
                        return
                    addr = info & PREV_MASK
                if addr >= hlog.begin_address:
                    # The chain continues on the device: the key may exist there.
                    self._write(key, h, value, None)
                    return
            elif empty < 0 or klen > MAX_FIELD or vlen > MAX_FIELD:
                self._write(key, h, value, None)  # needs an overflow bucket, or too large
                return
            # A key not in memory: append at the tail.
            tail = hlog.tail_address
            off = tail & hlog.page_mask
            if off + size >= hlog.page_size:
                tail = hlog.allocate(size)
                off = tail & hlog.page_mask
                if slot >= 0:  # eviction may have moved the chain's head out of memory
                    prev = table.words[slot] & ADDRESS_MASK
            else:
                hlog.tail_address = tail + size
            page = hlog.pages[tail >> hlog.page_bits]
            _pack_header(page, off, prev | self._info_bits, klen, vlen)  # type: ignore[arg-type]
            start = off + HEADER_SIZE
            page[start : start + klen] = key  # type: ignore[index]
            page[start + klen : start + klen + vlen] = value  # type: ignore[index]
            table.words[empty if slot < 0 else slot] = tail | tag << TAG_SHIFT
            self._live += 1
            self._after_write()
        finally:
            lock.release()

    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` has no live value; True if it was stored."""
        added = False

        def updater(old: bytes | None) -> bytes | None:
            nonlocal added
            if old is None:
                added = True
                return value
            return None

        if ttl is not None and ttl <= 0:
            return not self.exists(key)
        self.rmw(key, updater, ttl)
        return added

    def rmw(self, key: bytes, updater: Updater, ttl: TtlArg = KEEP_TTL) -> bytes | None:
        """Atomically replace the value with ``updater(old)`` (old is None when absent).

        The updater returns the new value, or None to leave the store unchanged; an exception
        it raises propagates and nothing is written. ``ttl``: seconds, None for no expiry, or
        KEEP_TTL (default) to keep an existing record's expiry. Returns the value now stored.
        """
        h = xxh3_64_intdigest(key)
        with self._lock:
            self._n_rmws += 1
            found = self._find_live(key, h)
            if found is None:
                old = None
                old_expiry = None
            else:
                _, page, off, info, kl, vl = found
                old = bytes(page[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
                old_expiry = self._expiry_of(page, off, info, kl, vl)
            new = updater(old)
            if new is None:
                return old
            if ttl is KEEP_TTL:
                expiry = old_expiry
            elif ttl is None:
                expiry = None
            else:
                if ttl <= 0:  # type: ignore[operator]
                    if found is not None:
                        self._delete(key, h)
                    return None
                expiry = int((_now() + ttl) * 1000)  # type: ignore[operator]
            self._write(key, h, new, expiry)
            return new

    def expire(self, key: bytes, ttl: float | None) -> bool:
        """Set (seconds) or clear (None) the expiry of a live key; ttl <= 0 deletes it."""
        h = xxh3_64_intdigest(key)
        with self._lock:
            found = self._find_live(key, h)
            if found is None:
                return False
            if ttl is not None and ttl <= 0:
                self._delete(key, h)
                return True
            addr, page, off, info, kl, vl = found
            expiry = _ttl_to_expiry(ttl)
            if addr >= self._log.read_only_address and bool(info & HAS_EXPIRY) == (
                expiry is not None
            ):
                if expiry is not None:
                    size = record_size(kl, vl, True)
                    _pack_expiry(page, off + size - EXPIRY_SIZE, expiry)
                self._n_in_place += 1
                return True
            value = bytes(page[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            self._write(key, h, value, expiry)
            return True

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; True if it had a live value."""
        h = xxh3_64_intdigest(key)
        with self._lock:
            return self._delete(key, h)

    def clear(self) -> None:
        """Remove every key."""
        with self._lock:
            size = self._index.size
            self._log = HybridLog(
                self.page_size, self._log.memory_pages, self.mutable_fraction, self._on_evict
            )
            self._index = HashTable(size, self._resolve)
            self._live = 0
            self._sweep_cursor = 0

    # -- iteration -------------------------------------------------------------------------

    def scan(self, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        """Redis-style SCAN over live keys: visits about ``count`` buckets from ``cursor``.

        Returns (next cursor, keys); a full iteration ends when the cursor returned is 0. It
        returns every key that is present for the whole iteration, even while the index grows
        (the reverse-binary cursor of Redis' dictScan), and may return a key more than once.
        """
        keys: list[bytes] = []
        with self._lock:
            ix = self._index
            while not self._grow_step(4096):
                pass
            table = ix.cur
            mask = table.mask
            v = cursor
            visited = 0
            while True:
                self._collect_bucket(table, v & mask, keys)
                visited += 1
                v |= ~mask & 0xFFFFFFFFFFFFFFFF
                v = _reverse64(_reverse64(v) + 1 & 0xFFFFFFFFFFFFFFFF)
                if v == 0 or visited >= count:
                    return v, keys

    def keys(self) -> Iterator[bytes]:
        """Every live key (a full scan; keys written meanwhile may or may not appear)."""
        cursor = 0
        while True:
            cursor, batch = self.scan(cursor, 256)
            yield from batch
            if cursor == 0:
                return

    def __len__(self) -> int:
        """Number of live keys (keys that expired but were not yet swept still count)."""
        return self._live

    def sweep_expired(self, max_buckets: int = 1024) -> int:
        """Delete expired records from the next ``max_buckets`` buckets; returns how many."""
        with self._lock:
            return self._sweep(max_buckets)

    def grow_index(self) -> None:
        """Double the hash index now, letting other threads in between chunks."""
        with self._lock:
            self._index.start_grow()
        while True:
            with self._lock:
                if self._grow_step(4096):
                    return

    # -- statistics ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            hlog = self._log
            ix = self._index
            index_bytes = ix.memory_bytes()
            slots = ix.size * 7
            return {
                "reads": self._n_reads,
                "read_hits": self._n_hits,
                "read_misses": self._n_reads - self._n_hits,
                "upserts": self._n_upserts,
                "rmws": self._n_rmws,
                "in_place_updates": self._n_in_place,
                "copy_updates": self._n_copies,
                "deletes": self._n_deletes,
                "expirations": self._n_expired,
                "evicted_records": self._n_evicted,
                "live_keys": self._live,
                "index_buckets": ix.size,
                "index_overflow_buckets": ix.overflow_buckets(),
                "index_growing": ix.growing,
                "index_grows": self._n_grows,
                "index_load": self._live / slots if slots else 0.0,
                "index_bytes": index_bytes,
                "log_begin_address": hlog.begin_address,
                "log_head_address": hlog.head_address,
                "log_read_only_address": hlog.read_only_address,
                "log_tail_address": hlog.tail_address,
                "log_pages_in_memory": hlog.pages_in_memory(),
                "log_memory_bytes": hlog.memory_bytes(),
                "log_evicted_pages": hlog.evicted_pages,
                "memory_bytes": hlog.memory_bytes() + index_bytes,
                "page_size": self.page_size,
                "memory_size": self.memory_size,
                "sessions": len(self._sessions),
            }

    # -- internals (callers hold the latch) ------------------------------------------------

    def _find_live(
        self, key: bytes, h: int
    ) -> tuple[int, bytearray, int, int, int, int] | None:
        """(address, page, offset, info, key length, value length) of the live record."""
        hlog = self._log
        addr = self._index.find(h)
        head = hlog.head_address
        klen = len(key)
        while addr >= head:
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            info, kl, vl = _unpack_header(page, off)
            if kl == klen and page.startswith(key, off + HEADER_SIZE):
                if info & TOMBSTONE:
                    return None
                if info & HAS_EXPIRY:
                    size = record_size(kl, vl, True)
                    if _unpack_expiry(page, off + size - EXPIRY_SIZE)[0] <= _now() * 1000:
                        self._expire_at(addr, key, h)
                        return None
                return addr, page, off, info, kl, vl
            addr = info & PREV_MASK
        return None

    @staticmethod
    def _expiry_of(page: bytearray, off: int, info: int, kl: int, vl: int) -> int | None:
        if not info & HAS_EXPIRY:
            return None
        size = record_size(kl, vl, True)
        return int(_unpack_expiry(page, off + size - EXPIRY_SIZE)[0])

    def _write(self, key: bytes, h: int, value: bytes, expiry: int | None) -> None:
        """Upsert core: update in place in the mutable region, else append at the tail."""
        klen = len(key)
        vlen = len(value)
        if klen > MAX_FIELD or vlen > MAX_FIELD:
            raise RecordTooLargeError("keys and values are limited to 4 GiB")
        size = record_size(klen, vlen, expiry is not None)
        hlog = self._log
        table, slot = self._index.find_slot(h, create=True)
        entry_addr = table.words[slot] & ADDRESS_MASK
        addr = entry_addr
        head = hlog.head_address
        found = 0
        live_before = False
        while addr >= head:
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            info, kl, vl = _unpack_header(page, off)
            if kl == klen and page.startswith(key, off + HEADER_SIZE):
                found = addr
                live_before = not info & TOMBSTONE
                if (
                    live_before
                    and addr >= hlog.read_only_address
                    and bool(info & HAS_EXPIRY) == (expiry is not None)
                    and record_size(kl, vl, expiry is not None) == size
                ):
                    start = off + HEADER_SIZE + kl
                    page[start : start + vlen] = value
                    _pack_vlen(page, off + 12, vlen)
                    if expiry is not None:
                        _pack_expiry(page, off + size - EXPIRY_SIZE, expiry)
                    self._n_in_place += 1
                    self._after_write()
                    return
                break
            addr = info & PREV_MASK
        new_addr = hlog.allocate(size)
        # Allocation may have evicted pages (and the records we just looked at with them).
        if found and found < hlog.head_address:
            live_before = False
        words = table.words
        entry_addr = words[slot] & ADDRESS_MASK
        page = hlog.pages[new_addr >> hlog.page_bits]
        assert page is not None
        flags = HAS_EXPIRY if expiry is not None else 0
        write_record(
            page,
            new_addr & hlog.page_mask,
            make_info(entry_addr, self._version, flags),
            key,
            value,
            expiry,
            size,
        )
        words[slot] = new_addr | ((h >> HASH_TAG_SHIFT) or 1) << TAG_SHIFT
        if found:
            self._n_copies += 1
        if not live_before:
            self._live += 1
        self._after_write()

    def _after_write(self) -> None:
        self._writes += 1
        ix = self._index
        if ix.old is not None:
            self._grow_step(_GROW_STEP)
        elif self._live > self._grow_at:
            ix.start_grow()
        if not self._writes % _SWEEP_EVERY:
            self._sweep(_SWEEP_BUCKETS)

    def _grow_step(self, max_buckets: int) -> bool:
        """Advance an index growth, if one runs; True when none is left running."""
        ix = self._index
        if ix.old is None:
            return True
        if not ix.grow_step(max_buckets):
            return False
        self._n_grows += 1
        self._grow_at = int(ix.size * self.index_load_factor)
        return True

    def _delete(self, key: bytes, h: int) -> bool:
        found = self._find_live(key, h)
        if found is None:
            return False
        self._tombstone(found[0], key, h)
        self._n_deletes += 1
        return True

    def _expire_at(self, addr: int, key: bytes, h: int) -> None:
        self._tombstone(addr, key, h)
        self._n_expired += 1

    def _tombstone(self, addr: int, key: bytes, h: int) -> None:
        """Mark the live record at ``addr`` deleted: in place if mutable, else append one."""
        hlog = self._log
        if addr >= hlog.read_only_address:
            self._live -= 1
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            _pack_info(page, off, INFO.unpack_from(page, off)[0] | TOMBSTONE)
            return
        size = record_size(len(key), 0, False)
        new_addr = hlog.allocate(size)
        if addr >= hlog.head_address:  # else eviction during allocate already uncounted it
            self._live -= 1
        table, slot = self._index.find_slot(h, create=True)
        words = table.words
        page = hlog.pages[new_addr >> hlog.page_bits]
        assert page is not None
        info = make_info(words[slot] & ADDRESS_MASK, self._version, TOMBSTONE)
        write_record(page, new_addr & hlog.page_mask, info, key, b"", None, size)
        words[slot] = new_addr | ((h >> HASH_TAG_SHIFT) or 1) << TAG_SHIFT

    def _collect_bucket(self, table: Any, bucket: int, out: list[bytes]) -> None:
        """Append the live keys of one bucket's chains to ``out``."""
        hlog = self._log
        head = hlog.head_address
        now_ms = _now() * 1000
        for _, entry in table.entries(bucket):
            addr = entry & ADDRESS_MASK
            seen: set[bytes] = set()
            while addr >= head:
                page = hlog.pages[addr >> hlog.page_bits]
                assert page is not None
                off = addr & hlog.page_mask
                info, kl, vl = _unpack_header(page, off)
                key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
                if key not in seen:
                    seen.add(key)
                    if not info & TOMBSTONE:
                        exp = self._expiry_of(page, off, info, kl, vl)
                        if exp is None or exp > now_ms:
                            out.append(key)
                addr = info & PREV_MASK

    def _sweep(self, max_buckets: int) -> int:
        """Tombstone expired newest-version records in the next buckets of the index."""
        ix = self._index
        if ix.growing:
            return 0
        table = ix.cur
        hlog = self._log
        now_ms = _now() * 1000
        removed = 0
        for _ in range(min(max_buckets, table.size)):
            bucket = self._sweep_cursor & table.mask
            self._sweep_cursor = bucket + 1
            for _, entry in table.entries(bucket):
                addr = entry & ADDRESS_MASK
                seen: set[bytes] = set()
                expired: list[tuple[int, bytes]] = []
                head = hlog.head_address
                while addr >= head:
                    page = hlog.pages[addr >> hlog.page_bits]
                    assert page is not None
                    off = addr & hlog.page_mask
                    info, kl, vl = _unpack_header(page, off)
                    key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
                    if key not in seen:
                        seen.add(key)
                        if info & HAS_EXPIRY and not info & TOMBSTONE:
                            exp = self._expiry_of(page, off, info, kl, vl)
                            if exp is not None and exp <= now_ms:
                                expired.append((addr, key))
                    addr = info & PREV_MASK
                for addr, key in expired:
                    self._expire_at(addr, key, xxh3_64_intdigest(key))
                    removed += 1
        return removed

    def _resolve(self, addr: int) -> tuple[int, int] | None:
        """(key hash, previous address) of an in-memory record, for index growth."""
        hlog = self._log
        if addr < hlog.head_address:
            return None
        page = hlog.pages[addr >> hlog.page_bits]
        if page is None:
            return None
        off = addr & hlog.page_mask
        info, kl, _ = _unpack_header(page, off)
        key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
        return xxh3_64_intdigest(key), info & PREV_MASK

    def _on_evict(self, page_no: int, page: bytearray, end: int) -> None:
        """A page leaves memory with no device behind it: its live records are gone."""
        hlog = self._log
        start = max(FIRST_ADDRESS, page_no << hlog.page_bits)
        index = self._index
        for addr, info, kl, _vl in hlog.records(start, end):
            if info & TOMBSTONE:
                continue
            off = addr & hlog.page_mask
            key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
            # Live only if it is the first record for its key on the chain.
            a = index.find(xxh3_64_intdigest(key))
            while a > addr:
                p = hlog.pages[a >> hlog.page_bits]
                if p is None:
                    break
                o = a & hlog.page_mask
                i2, k2, _ = _unpack_header(p, o)
                if k2 == kl and p.startswith(key, o + HEADER_SIZE):
                    break
                a = i2 & PREV_MASK
            if a == addr:
                self._live -= 1
                self._n_evicted += 1


def default_page_size(memory_size: int) -> int:
    """4 MiB pages, smaller for small budgets so that at least 8 pages fit (min 4 KiB)."""
    size = 4 << 20
    while size > 4096 and size * 8 > memory_size:
        size >>= 1
    return size
