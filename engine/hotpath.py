"""FasterKv's in-memory hot paths: the compiled ones from ``_hotpath.c``, or this reference.

``read``, ``upsert`` and ``incr`` spend most of their time probing a bucket chain and walking a
record chain; in C that walk costs a fraction of the bytecodes it takes here. The functions below
define what the C module must do (the tests run the store's suites on both, and compare them
directly); the store uses the compiled module unless it is not built or the environment sets
``FASTER_BACKEND_PURE_PYTHON=1``. Callers hold the store latch.

Results shared by ``index_read`` and ``chain_read``: the value (bytes); None for a tombstone;
an int >= 0, the chain's first address below ``head`` (0: none); ``-address`` for an expired
record; False when the caller's general path must decide (never returned here: this code fails
loudly instead, where the compiled code declines to read outside a page).
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from xxhash import xxh3_64_intdigest

from faster_backend.engine.hash_bucket import BUCKET, HASH_TAG_SHIFT, TENTATIVE
from faster_backend.engine.record import (
    EXPIRY,
    EXPIRY_SIZE,
    HAS_EXPIRY,
    HEADER,
    HEADER_SIZE,
    MAX_FIELD,
    PREV_MASK,
    TOMBSTONE,
    VALUE_LEN,
)

log = logging.getLogger(__name__)

_unpack_bucket = BUCKET.unpack_from
_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack_into
_unpack_expiry = EXPIRY.unpack_from
_pack_expiry = EXPIRY.pack_into
_pack_vlen = VALUE_LEN.pack_into
_pack_word = struct.Struct("<Q").pack_into
_pread = os.pread
_PADDING = tuple(bytes(n) for n in range(8))
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

Pages = list[bytearray | None]
ReadResult = bytes | int | None


def _probe(buf: bytearray, mask: int, h: int) -> tuple[int, int]:
    """(word index of the entry with h's tag or -1, its address or 0)."""
    tag = (h >> HASH_TAG_SHIFT) or 1
    b = h & mask
    while True:
        words = _unpack_bucket(buf, b << 6)
        for e in words:
            if e >> 48 == tag:
                return (b << 3) + words.index(e), e & PREV_MASK
        b = words[7]
        if not b:
            return -1, 0


def chain_walk(pages: Pages, head: int, bits: int, addr: int, key: bytes) -> tuple[int, bool]:
    """(address of key's record, True), or (first address below head, False)."""
    pmask = (1 << bits) - 1
    klen = len(key)
    while addr >= head:
        page = pages[addr >> bits]
        off = addr & pmask
        info, kl, _ = _unpack_header(page, off)  # type: ignore[arg-type]
        if kl == klen and page.startswith(key, off + HEADER_SIZE):  # type: ignore[union-attr]
            return addr, True
        addr = info & PREV_MASK
    return addr, False


def _expired(
    page: bytearray | bytes, off: int, info: int, kl: int, vl: int, now: Callable[[], float]
) -> bool:
    if not info & HAS_EXPIRY:
        return False
    at = off + ((HEADER_SIZE + kl + vl + 7) & ~7)
    return bool(_unpack_expiry(page, at)[0] <= now() * 1000)


def py_chain_read(
    addr: int, pages: Pages, head: int, bits: int, key: bytes, now: Callable[[], float]
) -> ReadResult:
    addr, hit = chain_walk(pages, head, bits, addr, key)
    if not hit:
        return addr
    page = pages[addr >> bits]
    off = addr & ((1 << bits) - 1)
    info, kl, vl = _unpack_header(page, off)  # type: ignore[arg-type]
    if info & TOMBSTONE:
        return None
    if info & HAS_EXPIRY and _expired(page, off, info, kl, vl, now):  # type: ignore[arg-type]
        return -addr
    start = off + HEADER_SIZE + kl
    return bytes(page[start : start + vl])  # type: ignore[index]


def py_index_read(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: Pages,
    head: int,
    bits: int,
    key: bytes,
    now: Callable[[], float],
) -> ReadResult:
    # The bucket probe inlined (the store's pure-Python read spends most of its time here).
    if h is None:
        h = xxh3_64_intdigest(key)
    tag = (h >> HASH_TAG_SHIFT) or 1
    b = h & mask
    addr = 0
    while True:
        words = _unpack_bucket(index, b << 6)
        for e in words:
            if e >> 48 == tag:
                addr = e & PREV_MASK
                break
        else:
            b = words[7]
            if b:
                continue
        break
    return py_chain_read(addr, pages, head, bits, key, now)


def py_index_read_many(
    index: bytearray,
    mask: int,
    pages: Pages,
    head: int,
    bits: int,
    begin: int,
    keys: list[bytes],
    now: Callable[[], float],
) -> tuple[list[ReadResult | bool], int, int]:
    out: list[ReadResult | bool] = []
    hits = misses = 0
    for key in keys:
        r = py_index_read(index, mask, None, pages, head, bits, key, now)
        if r.__class__ is int and 0 <= r < begin:  # type: ignore[operator]
            r = None
        if r.__class__ is bytes:
            hits += 1
        elif r is None:
            misses += 1
        out.append(r)
    return out, hits, misses


def py_index_locate(
    index: bytearray, mask: int, h: int, pages: Pages, head: int, bits: int, key: bytes
) -> int:
    """The address of key's newest record when it is in memory, else the first address of its
    chain below head (0: none); -1 when the caller must walk itself (never here)."""
    return chain_walk(pages, head, bits, _probe(index, mask, h)[1], key)[0]


def py_index_upsert(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: Pages,
    head: int,
    read_only: int,
    begin: int,
    tail: int,
    bits: int,
    key: bytes,
    value: bytes,
    expiry: int | None,
    info_bits: int,
    dirty: set[int],
    known_end: int,
) -> int:
    """1: updated in place; > 1: appended, the new tail; -address: the chain continues on the
    device at that address (>= begin): the caller may read the key's live record there and call
    again with ``known_end`` = address, which appends only if the chain still ends there. 0: the
    caller's general path must run (not updatable in place, bucket or page full, begin < 0)."""
    klen = len(key)
    vlen = len(value)
    if klen > MAX_FIELD or vlen > MAX_FIELD:
        return 0
    size = base = (HEADER_SIZE + klen + vlen + 7) & ~7
    flags = 0
    if expiry is not None:
        size += EXPIRY_SIZE
        flags = HAS_EXPIRY
    # _probe and chain_walk, inlined (this is the pure-Python store's hot path).
    if h is None:
        h = xxh3_64_intdigest(key)
    tag = (h >> HASH_TAG_SHIFT) or 1
    b = h & mask
    slot = empty = -1
    prev = 0
    while True:
        words = _unpack_bucket(index, b << 6)
        for e in words:
            if e >> 48 == tag:
                slot = (b << 3) + words.index(e)
                prev = e & PREV_MASK
                break
        else:
            if empty < 0 and 0 in words[:7]:
                empty = (b << 3) + words.index(0)
            b = words[7]
            if b:
                continue
        break
    if slot >= 0:
        pmask = (1 << bits) - 1
        addr = prev
        page = None
        info = kl = vl = off = 0
        while addr >= head:
            candidate = pages[addr >> bits]
            off = addr & pmask
            info, kl, vl = _unpack_header(candidate, off)  # type: ignore[arg-type]
            if kl == klen and candidate.startswith(key, off + HEADER_SIZE):  # type: ignore[union-attr]
                page = candidate
                break
            addr = info & PREV_MASK
        if page is not None and info & TOMBSTONE:
            # Deleted: a new record at the chain's head supersedes the tombstone (unless the
            # caller believes the key live on the device: its count would be wrong).
            if known_end:
                return 0
        elif page is not None:
            if (
                info & HAS_EXPIRY != flags
                or addr < read_only
                or (HEADER_SIZE + kl + vl + 7) & ~7 != base
            ):
                return 0
            dirty.add(addr >> bits)
            start = off + HEADER_SIZE + kl
            page[start : start + vlen] = value
            _pack_vlen(page, off + 12, vlen)
            if expiry is not None:
                _pack_expiry(page, off + size - EXPIRY_SIZE, expiry)
            return 1
        elif begin < 0:
            return 0
        elif known_end:
            if addr != known_end:
                return 0  # append only on the chain the caller read
        elif addr >= begin:
            return -addr  # the key may be on the device there
    elif empty < 0 or begin < 0 or known_end:
        return 0
    off = tail & ((1 << bits) - 1)
    if off + size >= 1 << bits:
        return 0  # the caller allocates a page
    page = pages[tail >> bits]
    assert page is not None
    _pack_header(page, off, prev | info_bits | flags, klen, vlen)
    start = off + HEADER_SIZE
    page[start : start + klen] = key
    page[start + klen : start + klen + vlen] = value
    page[start + klen + vlen : off + base] = _PADDING[off + base - start - klen - vlen]
    if expiry is not None:
        _pack_expiry(page, off + base, expiry)
    entry = tail | ((h >> HASH_TAG_SHIFT) or 1) << 48
    _pack_word(index, (slot if slot >= 0 else empty) << 3, entry)
    return tail + size


def py_index_upsert_many(
    index: bytearray,
    mask: int,
    pages: Pages,
    head: int,
    read_only: int,
    begin: int,
    tail: int,
    bits: int,
    items: list[tuple[bytes, bytes]],
    start: int,
    expiry: int | None,
    info_bits: int,
    dirty: set[int],
    hash: Callable[[bytes], int] | None,
) -> tuple[int, int, int, int, int]:
    """``index_upsert`` for ``items[start:]`` in order until one needs more: (next, tail,
    in place, appended, code), ``items[next]`` the first item not done (``len(items)`` when all
    are) and ``code`` what ``index_upsert`` answered for it (0 or -address)."""
    in_place = appended = 0
    i = start
    for i in range(start, len(items)):
        item = items[i]
        if type(item) is not tuple or len(item) != 2:
            break
        key, value = item
        if type(key) is not bytes or type(value) is not bytes:
            break
        r = py_index_upsert(
            index, mask, None if hash is None else hash(key), pages, head, read_only, begin,
            tail, bits, key, value,
            expiry, info_bits, dirty, 0,
        )
        if r == 1:
            in_place += 1
        elif r > 1:
            tail = r
            appended += 1
        else:
            return i, tail, in_place, appended, r
    else:
        i = len(items)
    return i, tail, in_place, appended, 0


def parse_int64(raw: bytes) -> int | None:
    """Redis' string2ll: only the canonical decimal form of an int64 (no sign, space or 0s)."""
    if 0 < len(raw) <= 20:
        try:
            value = int(raw)
        except ValueError:
            return None
        if _INT64_MIN <= value <= _INT64_MAX and b"%d" % value == raw:
            return value
    return None


def py_index_incr(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: Pages,
    head: int,
    read_only: int,
    bits: int,
    key: bytes,
    delta: int,
    now: Callable[[], float],
    dirty: set[int],
) -> int | None:
    """The new value after an in-place INCRBY, or None when the caller's general path must run."""
    if not _INT64_MIN <= delta <= _INT64_MAX:
        return None
    if h is None:
        h = xxh3_64_intdigest(key)
    slot, addr = _probe(index, mask, h)
    if slot < 0:
        return None
    addr, hit = chain_walk(pages, head, bits, addr, key)
    if not hit or addr < read_only:
        return None
    page = pages[addr >> bits]
    assert page is not None
    off = addr & ((1 << bits) - 1)
    info, kl, vl = _unpack_header(page, off)
    if info & TOMBSTONE or _expired(page, off, info, kl, vl, now):
        return None
    start = off + HEADER_SIZE + kl
    cur = parse_int64(bytes(page[start : start + vl]))
    if cur is None or not _INT64_MIN <= cur + delta <= _INT64_MAX:
        return None
    raw = b"%d" % (cur + delta)
    n = len(raw)
    if (HEADER_SIZE + kl + n + 7) & ~7 != (HEADER_SIZE + kl + vl + 7) & ~7:
        return None
    dirty.add(addr >> bits)
    page[start : start + n] = raw
    _pack_vlen(page, off + 12, n)
    return cur + delta


def py_index_incr_many(
    index: bytearray,
    mask: int,
    pages: Pages,
    head: int,
    read_only: int,
    bits: int,
    keys: list[bytes],
    start: int,
    delta: int,
    now: Callable[[], float],
    dirty: set[int],
    out: list[Any],
) -> int:
    i = max(start, 0)
    while i < len(keys):
        new = py_index_incr(
            index, mask, None, pages, head, read_only, bits, keys[i], delta, now, dirty
        )
        if new is None:
            break
        out.append(new)
        i += 1
    return i


def py_expired_entries(
    index: bytearray,
    mask: int,
    start: int,
    count: int,
    pages: Pages,
    head: int,
    bits: int,
    now_ms: float,
) -> list[tuple[int, bytes]]:
    """(address, key) of each expired, live record that an entry of buckets start..start+count
    points to in memory: the store's incremental expiry sweep (newest records only)."""
    out: list[tuple[int, bytes]] = []
    pmask = (1 << bits) - 1
    for n in range(count):
        b = (start + n) & mask
        while True:
            words = _unpack_bucket(index, b << 6)
            for e in words[:7]:
                if not e or e & TENTATIVE:
                    continue
                addr = e & PREV_MASK
                if addr < head:
                    continue
                page = pages[addr >> bits]
                assert page is not None
                off = addr & pmask
                info, kl, vl = _unpack_header(page, off)
                if info & HAS_EXPIRY and not info & TOMBSTONE:
                    at = off + ((HEADER_SIZE + kl + vl + 7) & ~7)
                    if _unpack_expiry(page, at)[0] <= now_ms:
                        out.append((addr, bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])))
            b = words[7]
            if not b:
                break
    return out


_BIT_REVERSE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse64(v: int) -> int:
    return int.from_bytes(v.to_bytes(8, "little").translate(_BIT_REVERSE), "big")


def next_cursor(v: int, mask: int) -> int:
    """The reverse-binary SCAN cursor after bucket ``v & mask`` (Redis' dictScan): it visits
    every bucket present for a whole iteration even while the table doubles."""
    v |= ~mask & 0xFFFFFFFFFFFFFFFF
    return _reverse64(_reverse64(v) + 1 & 0xFFFFFFFFFFFFFFFF)


def py_skip_empty(index: bytearray, mask: int, cursor: int, budget: int) -> tuple[int, int]:
    """(cursor, buckets skipped): advance a reverse-binary SCAN cursor past at most ``budget``
    buckets with no entries (and no overflow bucket); stop at one with some, or at 0."""
    v = cursor
    n = 0
    while n < budget:
        b = v & mask
        if any(_unpack_bucket(index, b << 6)):
            break
        n += 1
        v = next_cursor(v, mask)
        if not v:
            break
    return v, n


def py_collect_bucket(
    index: bytearray,
    mask: int,
    bucket: int,
    pages: Pages,
    head: int,
    bits: int,
    now_ms: float,
    hash: Callable[[bytes], int],
    out: list[bytes],
) -> list[tuple[int, set[bytes]]] | None:
    """Append to ``out`` the live keys (not deleted, not expired, hash(key) & mask == bucket)
    of the in-memory chains of a bucket's entries, each key once; return (address, keys seen)
    for the chains that continue below ``head``. (The compiled one returns None to decline.)

    After the index grew, both halves of a split bucket may share a chain, hence the hash test.
    """
    on_disk: list[tuple[int, set[bytes]]] = []
    pmask = (1 << bits) - 1
    b = bucket
    while True:
        words = _unpack_bucket(index, b << 6)
        for e in words[:7]:
            if not e or e & TENTATIVE:
                continue
            addr = e & PREV_MASK
            seen: set[bytes] = set()
            while addr >= head:
                page = pages[addr >> bits]
                assert page is not None
                off = addr & pmask
                info, kl, vl = _unpack_header(page, off)
                key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
                if key not in seen:
                    seen.add(key)
                    if (
                        not info & TOMBSTONE
                        and not (info & HAS_EXPIRY and _expired_at(page, off, kl, vl, now_ms))
                        and hash(key) & mask == bucket
                    ):
                        out.append(key)
                addr = info & PREV_MASK
            if addr:
                on_disk.append((addr, seen))
        b = words[7]
        if not b:
            return on_disk


def _expired_at(page: bytearray, off: int, kl: int, vl: int, now_ms: float) -> bool:
    return bool(_unpack_expiry(page, off + ((HEADER_SIZE + kl + vl + 7) & ~7))[0] <= now_ms)


def py_record_value(rec: bytes, key: bytes, now: Callable[[], float]) -> bytes | bool | None:
    """The value of key's record ``rec`` (read from the device): the value, None for a
    tombstone or an expired record, False when ``rec`` is another key's record."""
    if len(rec) < HEADER_SIZE:
        return False
    info, kl, vl = _unpack_header(rec, 0)
    size = (HEADER_SIZE + kl + vl + 7) & ~7
    if info & HAS_EXPIRY:
        size += EXPIRY_SIZE
    if len(rec) < size or kl != len(key) or not rec.startswith(key, HEADER_SIZE):
        return False
    if info & TOMBSTONE or _expired(rec, 0, info, kl, vl, now):
        return None
    return rec[HEADER_SIZE + kl : HEADER_SIZE + kl + vl]


class _Segment(Protocol):
    fd: int


def py_pread_value(
    segments: Mapping[int, _Segment],
    segment_size: int,
    addr: int,
    length: int,
    key: bytes,
    now: Callable[[], float],
) -> tuple[bytes | None, bytes] | bool:
    """``read``'s device case in one call: ``pread`` ``length`` bytes at ``addr`` from its open
    segment file (``segments``: the device's number -> Segment) and decode key's record there:
    (value, record), value None for a tombstone or an expired record. False when the general
    path must run (segment not open, crossed, a failed or short read, another key's record)."""
    number, offset = divmod(addr, segment_size)
    seg = segments.get(number)
    if seg is None or offset + length > segment_size or length < HEADER_SIZE:
        return False
    try:
        data = _pread(seg.fd, length, offset)
    except OSError:
        return False
    value = py_record_value(data, key, now) if len(data) == length else False
    if value is False:
        return False
    info, kl, vl = _unpack_header(data, 0)
    size = (HEADER_SIZE + kl + vl + 7) & ~7
    return value, data[: size + EXPIRY_SIZE if info & HAS_EXPIRY else size]  # type: ignore[return-value]


def py_cached_read(
    entries: dict[int, tuple[bytes, int]],
    addr: int,
    key: bytes,
    floor: float,
    now: Callable[[], float],
) -> bytes | bool | None:
    """``read``'s read-cache hit: when ``entries`` (the read cache's address -> (record,
    position)) holds key's record at ``addr`` at a position >= ``floor`` (no second chance
    due), the value, or None for a tombstone or an expired record. True when ``addr`` is not
    in the cache; False when the general path must run (another key, a second chance due)."""
    entry = entries.get(addr)
    if entry is None:
        return True
    if entry[1] < floor:
        return False
    return py_record_value(entry[0], key, now)


index_read = py_index_read
index_locate = py_index_locate
chain_read = py_chain_read
index_upsert = py_index_upsert
index_upsert_many = py_index_upsert_many
index_incr = py_index_incr
expired_entries = py_expired_entries
skip_empty = py_skip_empty
collect_bucket = py_collect_bucket
cached_read = py_cached_read
index_read_many = py_index_read_many
index_incr_many = py_index_incr_many
record_value = py_record_value
pread_value = py_pread_value
NATIVE = False

if os.environ.get("FASTER_BACKEND_PURE_PYTHON", "") not in ("", "0"):
    log.info("FASTER_BACKEND_PURE_PYTHON is set: the store's hot paths run in Python")
else:
    try:
        from faster_backend.engine import _hotpath
    except ImportError:  # not built (no C compiler at install time): the reference runs
        log.warning("faster_backend.engine._hotpath is not built: hot paths run in Python")
    else:
        index_read = _hotpath.index_read
        index_read_many = _hotpath.index_read_many
        index_locate = _hotpath.index_locate
        chain_read = _hotpath.chain_read
        index_upsert = _hotpath.index_upsert
        index_upsert_many = _hotpath.index_upsert_many
        index_incr = _hotpath.index_incr
        index_incr_many = _hotpath.index_incr_many
        expired_entries = _hotpath.expired_entries
        skip_empty = _hotpath.skip_empty
        collect_bucket = _hotpath.collect_bucket
        cached_read = _hotpath.cached_read
        record_value = _hotpath.record_value
        pread_value = _hotpath.pread_value
        NATIVE = True
