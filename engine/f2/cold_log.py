"""F2's cold log: an append-only hybrid log on its own device, indexed by the cold index.

Records have the hot log's layout (engine/record.py) and are never updated in place: only the
compactions append to it (hot-cold moves records in, cold-cold copies live ones to the tail), one
at a time under ``write_lock``. Readers take no lock: a record becomes reachable only after it is
fully written and its index entry set, pages below the head address are on the device and never
change, and a read below the begin address (truncated by cold-cold compaction meanwhile) raises
``AddressTruncatedError`` so the caller looks again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from faster_backend.engine.devices import AddressTruncatedError, StorageDevice
from faster_backend.engine.f2.cold_index import ColdIndex
from faster_backend.engine.hotpath import pread_value as _pread_value
from faster_backend.engine.hybrid_log import HybridLog, RecordTuple
from faster_backend.engine.record import HEADER, HEADER_SIZE, PREV_MASK, size_from_header

_FIRST_READ = 512
_unpack_header = HEADER.unpack_from
_now = time.time


class ColdLog:
    def __init__(
        self, device: StorageDevice, page_size: int, memory_pages: int, index: ColdIndex
    ) -> None:
        self.page_size = page_size
        self.memory_pages = memory_pages
        # The smallest mutable fraction: only the page being filled is unflushed.
        self.log = HybridLog(page_size, memory_pages, 1e-9, None, device)
        self.device = device
        self.index = index
        index.log_begin = lambda: self.log.begin_address
        self.write_lock = threading.Lock()
        self.records_appended = 0
        self.disk_reads = 0

    # -- reading ---------------------------------------------------------------------------

    def read_record(self, addr: int) -> bytes:
        """The whole record at ``addr``, from memory or the device."""
        hlog = self.log
        if addr < hlog.begin_address:
            raise AddressTruncatedError(f"cold log address {addr} was truncated")
        if addr >= hlog.head_address:
            page = hlog.pages[addr >> hlog.page_bits]
            if page is not None:  # else evicted meanwhile: its bytes are on the device
                off = addr & hlog.page_mask
                info, kl, vl = _unpack_header(page, off)
                return bytes(page[off : off + size_from_header(info, kl, vl)])
        self.disk_reads += 1
        page_end = ((addr >> hlog.page_bits) + 1) << hlog.page_bits
        data = self.device.read(addr, min(_FIRST_READ, page_end - addr))
        info, kl, vl = _unpack_header(data, 0)
        size = size_from_header(info, kl, vl)
        if size > len(data):
            data += self.device.read(addr + len(data), size - len(data))
        return data[:size]

    def lookup(self, key: bytes, h: int) -> tuple[int, bytes] | None:
        """(address, record) of ``key``'s newest cold record, tombstones included: on its
        tag's chain, else on its chunk's shared chain (cold_index.py)."""
        return self._lookup(key, h, *self.index.find(h))

    def lookup_at(self, key: bytes, h: int, i: int) -> tuple[int, bytes] | None:
        """``lookup`` of a key of the index's running batch, its ``i``-th pair (the batch's
        compaction: ``ColdIndex.positions``)."""
        return self._lookup(key, h, *self.index.find_at(i))

    def _lookup(self, key: bytes, h: int, addr: int, shared: int) -> tuple[int, bytes] | None:
        hlog = self.log
        segments = self.device.pread_segments
        if segments is not None and hlog.begin_address <= addr < hlog.head_address:
            # The common case: the chain's first record is the key's, read and checked in one
            # compiled call (anything else, the general walk below).
            bits = hlog.page_bits
            room = (((addr >> bits) + 1) << bits) - addr  # a record never crosses its page
            got = _pread_value(
                segments, self.device.segment_size, addr, min(_FIRST_READ, room), key, _now
            )
            if got is not False:
                self.disk_reads += 1
                return addr, got[1]  # type: ignore[index]
        found = self._walk(key, addr)
        if found is None:
            if shared < 0:
                shared = self.index.shared(h)
            if shared:
                found = self._walk(key, shared)
        return found

    def _walk(self, key: bytes, addr: int) -> tuple[int, bytes] | None:
        klen = len(key)
        read_record = self.read_record
        while addr >= self.log.begin_address:
            rec = read_record(addr)
            info, kl, _ = _unpack_header(rec, 0)
            if kl == klen and rec.startswith(key, HEADER_SIZE):
                return addr, rec
            addr = info & PREV_MASK
        return None

    def chain_records(self, addr: int) -> Iterator[tuple[int, bytes]]:
        """(address, record) along a chain, newest first."""
        while addr >= self.log.begin_address:
            rec = self.read_record(addr)
            yield addr, rec
            addr = _unpack_header(rec, 0)[0] & PREV_MASK

    def records(self, start: int, end: int) -> Iterator[RecordTuple]:
        return self.log.records(start, end)

    # -- writing (callers hold write_lock) ---------------------------------------------------

    def append(
        self, key: bytes, h: int, record: bytes | bytearray | memoryview, i: int = -1
    ) -> int:
        """Append a copy of ``record`` (a whole record of ``key``) as the chain's newest; ``i``:
        the key's pair position in the index's running batch, if the caller knows it."""
        hlog = self.log
        size = len(record)
        addr = hlog.allocate(size)
        page = hlog.pages[addr >> hlog.page_bits]
        assert page is not None
        off = addr & hlog.page_mask
        page[off : off + size] = record
        # The record is not reachable before ``set`` publishes it, with its link already set.
        if i < 0:
            self.index.set(h, addr, page, off)
        else:
            self.index.set_at(i, addr, page, off)
        self.records_appended += 1
        return addr

    def truncate_until(self, address: int) -> None:
        self.log.truncate_until(address)

    @property
    def begin_address(self) -> int:
        return self.log.begin_address

    @property
    def head_address(self) -> int:
        return self.log.head_address

    @property
    def tail_address(self) -> int:
        return self.log.tail_address

    def disk_bytes(self) -> int:
        return self.log.head_address - self.log.begin_address

    def size_bytes(self) -> int:
        return self.log.tail_address - self.log.begin_address
