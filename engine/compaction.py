"""Log compaction (copy live records from the log's head to its tail, then drop the head) and
cache-mode truncation (drop the head, losing what it held), as FASTER does them.

Both read the part of the log being reclaimed from the device without holding the store latch
and take the latch only per record, so readers and writers keep working. Files are deleted by the
device at segment granularity once the begin address has passed them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from xxhash import xxh3_64_intdigest

from faster_backend.engine.record import HEADER_SIZE, TOMBSTONE, size_from_header

if TYPE_CHECKING:
    from faster_backend.engine.faster_kv import FasterKv, Found

log = logging.getLogger(__name__)

_compaction_lock = threading.Lock()  # one compaction at a time per process is plenty


def _range(kv: FasterKv, until: int | None) -> tuple[int, int]:
    hlog = kv._log
    with kv._lock:
        begin = hlog.begin_address
        head = hlog.head_address
        if until is None:
            # At least one page, so that a small log still makes progress.
            until = begin + max(hlog.page_size, int((head - begin) * kv.compaction_fraction))
        until = min(until, head) & ~hlog.page_mask
    return begin, until


class CompactionResult(NamedTuple):
    copied: int  # live records copied to the tail
    reclaimed: int  # bytes of log the begin address moved past
    copied_bytes: int


def compact(kv: FasterKv, until: int | None, mode: str) -> CompactionResult:
    """See ``FasterKv.compact``."""
    if mode not in ("lookup", "scan"):
        raise ValueError(f"compaction mode must be 'lookup' or 'scan', got {mode!r}")
    hlog = kv._log
    if not hlog.persistent:
        return CompactionResult(0, 0, 0)
    with _compaction_lock:
        begin, until = _range(kv, until)
        if until <= begin:
            return CompactionResult(0, 0, 0)
        candidates: list[tuple[bytes, int]]
        if mode == "lookup":
            candidates = [
                (bytes(rec[HEADER_SIZE : HEADER_SIZE + kl]), addr)
                for addr, info, kl, _vl, rec in hlog.records(begin, until)
                if not info & TOMBSTONE
            ]
        else:
            newest: dict[bytes, tuple[int, int]] = {}
            for addr, info, kl, _vl, rec in hlog.records(begin, until):
                newest[bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])] = (addr, info)
            candidates = [(k, a) for k, (a, info) in newest.items() if not info & TOMBSTONE]
        sizes = [_relocate(kv, key, addr) for key, addr in candidates]
        copied = sum(1 for size in sizes if size)
        with kv._lock:
            hlog.truncate_until(until)
            kv._read_cache.drop_below(until)
            kv._n_compactions += 1
            kv._n_compacted_copies += copied
        _release(kv, until)
        log.info("compacted log [%d, %d): %d live records copied to the tail", begin, until, copied)
        return CompactionResult(copied, until - begin, sum(sizes))


def _release(kv: FasterKv, until: int) -> None:
    """Delete the reclaimed files once a durable point starts at or after ``until``: commit
    first when the store persists its state, so recovery never needs deleted segments."""
    if kv._commit_log is None:
        kv._log.release_truncated(until)
    else:
        kv.commit()  # releases the segments once its commit record is durable


def _relocate(kv: FasterKv, key: bytes, addr: int) -> int:
    """Copy ``key``'s record at ``addr`` to the tail if it is still the key's live record;
    returns the bytes copied (0 when the record was dead)."""
    from faster_backend.engine.faster_kv import _expiry_of

    h = xxh3_64_intdigest(key)

    def op(found: Found | None) -> int:
        if found is None or found[0] != addr:
            return 0  # deleted, expired or superseded: dropped with the range
        _, buf, off, info, kl, vl = found
        value = bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
        kv._write(key, h, value, _expiry_of(buf, off, info, kl, vl), found)
        kv._n_copies -= 1  # a relocation, not a user's copy-update
        return size_from_header(info, kl, vl)

    return kv._run(key, h, op)


def drop_oldest(kv: FasterKv, until: int) -> int:
    """Cache mode: drop the log below ``until``; its live keys become misses. Returns how many."""
    hlog = kv._log
    if not hlog.persistent:
        return 0
    with _compaction_lock:
        begin, until = _range(kv, until)
        if until <= begin:
            return 0
        # Which keys have their newest record in the range (so they are lost with it)?
        with kv._lock:
            mark = hlog.tail_address
        lost: list[tuple[bytes, int]] = []
        for addr, info, kl, _vl, rec in hlog.records(begin, until):
            if info & TOMBSTONE:
                continue
            key = bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])
            h = xxh3_64_intdigest(key)
            if kv._run(key, h, _is_record_at(addr)):
                lost.append((key, h))
        with kv._lock:
            # Writes since ``mark`` are in memory; a key written meanwhile is not lost (its
            # writer saw the old record live and did not count it again).
            gone = sum(1 for key, h in lost if not _written_since(kv, key, h, mark))
            hlog.truncate_until(until)
            kv._read_cache.drop_below(until)
            kv._live -= gone
            kv._n_dropped_segments_keys += gone
        _release(kv, until)
        log.info("cache mode: dropped log [%d, %d) holding %d live keys", begin, until, gone)
        return gone


def _is_record_at(addr: int) -> Callable[[Found | None], bool]:
    def check(found: Found | None) -> bool:
        return found is not None and found[0] == addr

    return check


def _written_since(kv: FasterKv, key: bytes, h: int, mark: int) -> bool:
    """Under the latch: has ``key`` a record at or after ``mark`` (necessarily in memory)?"""
    from faster_backend.engine.faster_kv import _unpack_header
    from faster_backend.engine.record import PREV_MASK

    hlog = kv._log
    addr = kv._index.find(h)
    while addr >= max(mark, hlog.head_address):
        page = hlog.pages[addr >> hlog.page_bits]
        assert page is not None
        off = addr & hlog.page_mask
        info, kl, _ = _unpack_header(page, off)
        if kl == len(key) and page.startswith(key, off + HEADER_SIZE):
            return True
        addr = info & PREV_MASK
    return False
