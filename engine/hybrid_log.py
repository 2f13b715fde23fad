"""The hybrid log: an address space of pages, of which the newest ``memory_pages`` are in memory.

Regions, oldest to newest (FASTER's names)::

    begin_address <= head_address <= read_only_address <= tail_address
    [ on device  ) [ read-only in memory  ) [ mutable: updated in place )

Records are appended at the tail. When the tail enters a new page the read-only address follows
``mutable_pages`` behind it, and when more than ``memory_pages`` pages would be in memory the
head page is evicted. Eviction hands the page to ``on_evict`` (to account for what it held, or
to persist it) before its memory is dropped.
"""

from collections.abc import Callable, Iterator

from faster_backend.engine.address import FIRST_ADDRESS, MAX_ADDRESS, page_bits_for
from faster_backend.engine.errors import RecordTooLargeError
from faster_backend.engine.record import HEADER, size_from_header

EvictCallback = Callable[[int, bytearray, int], None]


class HybridLog:
    def __init__(
        self,
        page_size: int,
        memory_pages: int,
        mutable_fraction: float,
        on_evict: EvictCallback | None = None,
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
        self.mutable_pages = max(1, min(memory_pages, int(memory_pages * mutable_fraction)))
        self.on_evict = on_evict
        # Indexed by absolute page number; evicted pages become None.
        self.pages: list[bytearray | None] = [bytearray(page_size)]
        self.views: list[memoryview | None] = [memoryview(self.pages[0])]  # type: ignore[arg-type]
        self.begin_address = FIRST_ADDRESS
        self.head_address = FIRST_ADDRESS
        self.read_only_address = FIRST_ADDRESS
        self.tail_address = FIRST_ADDRESS
        self.evicted_pages = 0

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
        while page - (self.head_address >> self.page_bits) + 1 > self.memory_pages:
            self._evict_head_page()
        buf = bytearray(self.page_size)
        self.pages.append(buf)
        self.views.append(memoryview(buf))
        read_only_page = page - self.mutable_pages + 1
        if read_only_page << self.page_bits > self.read_only_address:
            self.read_only_address = max(self.head_address, read_only_page << self.page_bits)
        self.tail_address = start
        return start

    def _evict_head_page(self) -> None:
        page = self.head_address >> self.page_bits
        buf = self.pages[page]
        assert buf is not None
        end = min(self.tail_address, (page + 1) << self.page_bits)
        if self.on_evict is not None:
            self.on_evict(page, buf, end)
        view = self.views[page]
        if view is not None:
            view.release()
        self.pages[page] = None
        self.views[page] = None
        self.head_address = (page + 1) << self.page_bits
        self.read_only_address = max(self.read_only_address, self.head_address)
        self.begin_address = max(self.begin_address, self.head_address)
        self.evicted_pages += 1

    # -- inspection ------------------------------------------------------------------------

    def records(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """(address, info, key length, value length) of every record in [start, end) in memory."""
        addr = max(start, self.head_address)
        bits, mask, size = self.page_bits, self.page_mask, self.page_size
        while addr < end:
            page = self.pages[addr >> bits]
            off = addr & mask
            if page is None or off + 16 > size:
                addr = ((addr >> bits) + 1) << bits
                continue
            info, klen, vlen = HEADER.unpack_from(page, off)
            if info == 0:
                addr = ((addr >> bits) + 1) << bits  # rest of the page is unused
                continue
            yield addr, info, klen, vlen
            addr += size_from_header(info, klen, vlen)

    def pages_in_memory(self) -> int:
        return (self.tail_address >> self.page_bits) - (self.head_address >> self.page_bits) + 1

    def memory_bytes(self) -> int:
        return self.pages_in_memory() * self.page_size
