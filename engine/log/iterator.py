"""``LogIterator``: reads entries in address order, verifying each one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xxhash

from faster_backend.engine.log.format import HEADER, HEADER_SIZE, KIND_ENTRY, KIND_FILLER

if TYPE_CHECKING:
    from faster_backend.engine.log.faster_log import FasterLog

_unpack_header = HEADER.unpack_from


class LogIterator:
    """Yields ``(address, payload)``; created by ``FasterLog.scan``.

    An entry counts as completed when the next one is requested (or ``complete_until`` is
    called); a named iterator persists its completed position with each commit, so after a
    restart it resumes at the first entry not completed (at-least-once delivery).
    """

    def __init__(
        self,
        log: FasterLog,
        name: str | None,
        start: int,
        end: int | None,
        uncommitted: bool,
        follow: bool,
    ) -> None:
        self.log = log
        self.name = name
        self.next_address = start
        self.current_address: int | None = None
        self.end = end
        self.uncommitted = uncommitted
        self.follow = follow
        self._page = -1
        self._data = b""
        self._limit = 0

    def __iter__(self) -> LogIterator:
        return self

    def complete_until(self, address: int) -> None:
        """Mark entries below ``address`` as processed (persisted by the next commit)."""
        if self.name is not None:
            self.log._set_iterator(self.name, address)

    def __next__(self) -> tuple[int, bytes]:
        log = self.log
        page_size = log.page_size
        if self.current_address is not None and self.name is not None:
            log._set_iterator(self.name, self.next_address)
        while True:
            address = self.next_address
            limit = self._limit
            if address >= limit:  # refresh the cached limit only when it is reached
                limit = log._limit(self.uncommitted)
                if self.end is not None:
                    limit = min(limit, self.end)
                self._limit = limit
            if address >= limit:
                following = self.follow and (self.end is None or address < self.end)
                if following and log._wait_for_more(address, self.uncommitted):
                    continue
                raise StopIteration
            page, offset = divmod(address, page_size)
            page_start = page * page_size
            room = page_size - offset
            if room < HEADER_SIZE:
                self.next_address = page_start + page_size
                continue
            need = min(limit, page_start + page_size) - page_start
            if self._page != page or len(self._data) < need:
                self._data = log._page_bytes(page, page_start + need)
                self._page = page
            data = self._data
            if offset + HEADER_SIZE > len(data):
                if self.end is not None and limit == self.end:
                    raise StopIteration  # ``end`` cut into this entry
                raise log.corruption(address, "entry header beyond the end of the data")
            length, kind, stored = _unpack_header(data, offset)
            if kind == KIND_FILLER:
                if length != room - HEADER_SIZE or stored != 0:
                    raise log.corruption(address, "bad page filler")
                self.next_address = page_start + page_size
                continue
            size = (HEADER_SIZE + length + 7) & ~7
            if kind != KIND_ENTRY or size > room:
                raise log.corruption(address, f"bad entry header (length {length}, kind {kind})")
            stop = offset + HEADER_SIZE + length
            if stop > len(data):
                if self.end is not None and limit == self.end:
                    raise StopIteration
                raise log.corruption(address, "entry runs past the committed end")
            payload = data[offset + HEADER_SIZE : stop]
            if xxhash.xxh3_64_intdigest(payload, (kind << 32) | length) != stored:
                raise log.corruption(address, "entry checksum mismatch")
            self.current_address = address
            self.next_address = address + size
            return address, payload
