"""The hybrid log: an address space of pages, of which the newest ``memory_pages`` are in memory.

Regions, oldest to newest (FASTER's names)::

    begin_address <= head_address <= read_only_address <= tail_address
    [ on device  ) [ read-only in memory  ) [ mutable: updated in place )

Records are appended at the tail. When the tail enters a new page the read-only address follows
``mutable_pages`` behind it and the pages that became read-only are written to the device in the
background; ``flushed_until_address`` is the contiguous watermark of completed writes (FASTER's
safe read-only address). When more than ``memory_pages`` pages would be in memory the head page is
evicted, which first waits for its flush: writers are held back only when they outrun the device.

With a ``NullDevice`` nothing is kept: an evicted page is handed to ``on_evict`` so the store can
account for the records it loses, and addresses below the head are gone.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator

from xxhash import xxh3_64_intdigest

from faster_backend.engine.address import FIRST_ADDRESS, MAX_ADDRESS, page_bits_for
from faster_backend.engine.devices import NullDevice, StorageDevice
from faster_backend.engine.errors import EngineError, RecordTooLargeError
from faster_backend.engine.record import HEADER, HEADER_SIZE, size_from_header

log = logging.getLogger(__name__)

EvictCallback = Callable[[int, bytearray, int], None]
RecordTuple = tuple[int, int, int, int, memoryview]  # address, info, key len, value len, bytes


class FlushError(EngineError):
    """Writing a log page to the device failed; the store refuses further writes."""


class HybridLog:
    def __init__(
        self,
        page_size: int,
        memory_pages: int,
        mutable_fraction: float,
        on_evict: EvictCallback | None = None,
        device: StorageDevice | None = None,
        begin_address: int = FIRST_ADDRESS,
    ) -> None:
        if not 0.0 < mutable_fraction <= 1.0:
            raise ValueError(f"mutable_fraction must be in (0, 1], got {mutable_fraction}")
        if memory_pages < 2:
            raise ValueError(
                f"the memory budget must hold at least 2 pages of {page_size} bytes"
                f" (got {memory_pages}); raise memory_size or lower page_size"
            )
        self.page_bits = page_bits_for(page_size)
        self.page_size = page_size
        self.page_mask = page_size - 1
        self.memory_pages = memory_pages
        self.device: StorageDevice = device if device is not None else NullDevice()
        self.persistent = not isinstance(self.device, NullDevice)
        if self.persistent and self.device.segment_size % page_size:
            raise ValueError(
                f"the device segment size ({self.device.segment_size}) must be a multiple of"
                f" page_size ({page_size})"
            )
        # At least one read-only page when a device is behind: the page being evicted must have
        # been flushed before, not just now.
        cap = memory_pages - 1 if self.persistent else memory_pages
        self.mutable_pages = max(1, min(cap, int(memory_pages * mutable_fraction)))
        self.on_evict = on_evict
        first_page = begin_address >> self.page_bits
        # Indexed by absolute page number; pages not in memory are None.
        first_buf = bytearray(page_size)
        self.pages: list[bytearray | None] = [None] * first_page
        self.pages.append(first_buf)
        self.views: list[memoryview | None] = [None] * first_page
        self.views.append(memoryview(first_buf))
        self.begin_address = begin_address
        self.head_address = begin_address
        self.read_only_address = begin_address
        self.tail_address = begin_address
        self.flushed_until_address = begin_address
        self.evicted_pages = 0
        self._flush_cv = threading.Condition()
        self._flushes: deque[list[int]] = deque()  # [start, end, done] in address order
        self._flush_error: BaseException | None = None
        # xxh3 of every page flushed whole (a page is immutable once read-only); ``new_sums``
        # holds the ones no commit record has carried yet.
        self.page_sums: dict[int, int] = {}
        self.new_sums: dict[int, int] = {}
        # Pages updated in place since the last snapshot checkpoint (incremental snapshots).
        self.dirty: set[int] = set()

    # -- allocation ------------------------------------------------------------------------

    def allocate(self, size: int) -> int:
        """Reserve ``size`` bytes at the tail and return their address."""
        tail = self.tail_address
        # ">=": a record never ends exactly on a page boundary, so the tail always lies in an
        # open page.
        if (tail & self.page_mask) + size >= self.page_size:
            if size >= self.page_size:
                raise RecordTooLargeError(
                    f"a record of {size} bytes does not fit in a log page of {self.page_size}"
                    " bytes; store smaller values or raise page_size"
                )
            tail = self._open_page((tail >> self.page_bits) + 1)
        self.tail_address = tail + size
        return tail

    def _open_page(self, page: int) -> int:
        start = page << self.page_bits
        if start + self.page_size > MAX_ADDRESS:
            raise RecordTooLargeError("the log address space (47 bits) is exhausted")
        self.check_flush_error()
        read_only = (page - self.mutable_pages + 1) << self.page_bits
        if read_only > self.read_only_address:
            self.shift_read_only(read_only)
        while page - (self.head_address >> self.page_bits) + 1 > self.memory_pages:
            self._evict_head_page()
        buf = bytearray(self.page_size)
        self.pages.append(buf)
        self.views.append(memoryview(buf))
        self.tail_address = start
        return start

    # -- flushing --------------------------------------------------------------------------

    def shift_read_only(self, address: int) -> None:
        """Make [read_only, address) read-only and start writing it to the device."""
        address = min(address, self.tail_address)
        start = self.read_only_address
        if address <= start:
            return
        self.read_only_address = address
        bits = self.page_bits
        while start < address:
            page_end = ((start >> bits) + 1) << bits
            end = min(page_end, address)
            self._flush_range(start, end)
            start = end

    def flush_tail(self) -> None:
        """Write everything up to the tail (the mutable region too) and wait for it."""
        self.shift_read_only(self.tail_address)
        self.wait_flushed(self.tail_address)

    def _flush_range(self, start: int, end: int) -> None:
        page_no = start >> self.page_bits
        page = self.views[page_no]
        assert page is not None
        off = start & self.page_mask
        if self.persistent and (end & self.page_mask) == 0 and end > start:
            # The page is complete and read-only: its checksum can be taken now.
            checksum = xxh3_64_intdigest(page)
            self.page_sums[page_no] = checksum
            self.new_sums[page_no] = checksum
        entry = [start, end, 0]
        with self._flush_cv:
            self._flushes.append(entry)
        # Read-only bytes never change again, so the device may read the page buffer directly.
        data = page[off : off + (end - start)]

        def done(_: int | None, error: BaseException | None) -> None:
            with self._flush_cv:
                if error is not None:
                    self._flush_error = error
                    log.error("flushing log range [%d, %d) failed: %s", start, end, error)
                entry[2] = 1
                flushes = self._flushes
                while flushes and flushes[0][2]:
                    self.flushed_until_address = max(
                        self.flushed_until_address, flushes.popleft()[1]
                    )
                self._flush_cv.notify_all()

        self.device.write_async(start, data, done)

    def wait_flushed(self, address: int, timeout: float | None = None) -> None:
        """Block until every byte below ``address`` is written to the device."""
        with self._flush_cv:
            ok = self._flush_cv.wait_for(
                lambda: self._flush_error is not None or self.flushed_until_address >= address,
                timeout,
            )
        self.check_flush_error()
        if not ok:
            raise FlushError(f"timed out waiting for the log to be written up to {address}")

    def check_flush_error(self) -> None:
        if self._flush_error is not None:
            raise FlushError(
                f"writing the log to {self.device.describe()} failed: {self._flush_error};"
                " the store accepts no more writes (reopen it to recover)"
            ) from self._flush_error

    # -- eviction --------------------------------------------------------------------------

    def _evict_head_page(self) -> None:
        page = self.head_address >> self.page_bits
        buf = self.pages[page]
        assert buf is not None
        end = min(self.tail_address, (page + 1) << self.page_bits)
        if self.persistent:
            self.wait_flushed(end)
        elif self.on_evict is not None:
            self.on_evict(page, buf, end)
        view = self.views[page]
        if view is not None:
            view.release()
        self.pages[page] = None
        self.views[page] = None
        self.head_address = (page + 1) << self.page_bits
        self.read_only_address = max(self.read_only_address, self.head_address)
        if not self.persistent:
            self.begin_address = max(self.begin_address, self.head_address)
            self.flushed_until_address = max(self.flushed_until_address, self.head_address)
        self.evicted_pages += 1

    # -- reading ---------------------------------------------------------------------------

    def records(self, start: int, end: int) -> Iterator[RecordTuple]:
        """Every record in [start, end): from memory where it is there, else from the device.

        The memoryview covers the whole record and is valid until the next iteration step.
        """
        bits, mask, size = self.page_bits, self.page_mask, self.page_size
        addr = max(start, self.begin_address)
        while addr < end:
            page_no = addr >> bits
            page_start = page_no << bits
            page_end = min(page_start + size, end, self.tail_address)
            view = self.views[page_no] if page_no < len(self.views) else None
            if view is None:
                if addr >= self.tail_address:
                    return
                view = memoryview(self.device.read(page_start, size))
            off = addr & mask
            while addr < page_end and off + HEADER_SIZE <= size:
                info, klen, vlen = HEADER.unpack_from(view, off)
                if info == 0:
                    break  # the rest of the page is unused
                rsize = size_from_header(info, klen, vlen)
                yield addr, info, klen, vlen, view[off : off + rsize]
                addr += rsize
                off += rsize
            addr = page_start + size

    def restore(
        self, begin: int, tail: int, pages: dict[int, bytearray], device_end: int
    ) -> None:
        """Recovery: the log is [begin, tail); ``pages`` (consecutive, ending with the tail's
        page) are in memory; the device holds everything below ``device_end``."""
        first = min(pages)
        n = max(pages) + 1
        self.pages = [None] * n
        self.views = [None] * n
        for p, buf in pages.items():
            self.pages[p] = buf
            self.views[p] = memoryview(buf)
        self.begin_address = begin
        self.head_address = max(begin, first << self.page_bits)
        self.read_only_address = max(self.head_address, device_end)
        self.flushed_until_address = max(self.head_address, device_end)
        self.tail_address = tail

    def copy_range(self, start: int, end: int) -> bytes:
        """The in-memory bytes of [start, end)."""
        out = bytearray()
        bits = self.page_bits
        while start < end:
            page_end = min(end, ((start >> bits) + 1) << bits)
            view = self.views[start >> bits]
            assert view is not None
            off = start & self.page_mask
            out += view[off : off + (page_end - start)]
            start = page_end
        return bytes(out)

    def tail_checksum(self, address: int) -> int:
        """xxh3 of [start of ``address``'s page, address), read from memory or the device."""
        start = (address >> self.page_bits) << self.page_bits
        view = self.views[address >> self.page_bits] if address >> self.page_bits < len(
            self.views
        ) else None
        if view is not None:
            return xxh3_64_intdigest(view[: address - start])
        return xxh3_64_intdigest(self.device.read(start, address - start))

    def pages_in_memory(self) -> int:
        return (self.tail_address >> self.page_bits) - (self.head_address >> self.page_bits) + 1

    def memory_bytes(self) -> int:
        return self.pages_in_memory() * self.page_size

    def truncate_until(self, address: int) -> None:
        """Drop the log below ``address`` (a page boundary at or below the head).

        Only logically: the device keeps the bytes until ``release_truncated`` is called with a
        durable begin address, because the last checkpoint or commit may still start below.
        """
        address = min(address, self.head_address)
        if address <= self.begin_address:
            return
        self.begin_address = address
        first = address >> self.page_bits
        for p in [p for p in self.page_sums if p < first]:
            del self.page_sums[p]

    def release_truncated(self, durable_begin: int) -> None:
        """Delete the device's segments below a begin address that is now durable."""
        address = min(durable_begin, self.begin_address)
        if self.persistent and address // self.device.segment_size > self.device.begin_segment:
            self.device.truncate(address)
