"""FasterLog: a durable append-only log of byte entries on a ``StorageDevice``.

Entries are appended to in-memory pages (a ring of ``memory_size // page_size`` preallocated
buffers). A full page is written to the device in the background; ``commit`` writes the partial
tail page, fsyncs, and then atomically writes a commit record naming the committed end, the
begin address and the positions of named iterators. Recovery reads the newest valid commit
record: everything below its end is the log, anything after it is discarded.

Durability contract: an entry is durable once a ``commit`` that started after its ``enqueue``
returned has returned (or ``wait_for_commit`` for its address returned). A crash loses entries
that were not committed; it never loses committed ones, unless the newest commit record itself
is damaged, in which case the log falls back to the previous commit (with a warning).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import xxhash

from faster_backend.engine.data_dir import DataDir
from faster_backend.engine.devices import FileDevice, NullDevice, StorageDevice
from faster_backend.engine.log.commit_store import CommitStore
from faster_backend.engine.log.errors import (
    EntryTooLargeError,
    LogClosedError,
    LogCorruptionError,
    LogFailedError,
)
from faster_backend.engine.log.format import (
    HEADER,
    HEADER_SIZE,
    KIND_ENTRY,
    KIND_FILLER,
    CommitRecord,
    checksum,
)
from faster_backend.engine.log.iterator import LogIterator

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1 << 20
DEFAULT_MEMORY_SIZE = 16 << 20
DEFAULT_SEGMENT_SIZE = 1 << 30

_pack_header = HEADER.pack_into


def _xxh3(data: bytes | bytearray | memoryview, seed: int) -> int:
    return xxhash.xxh3_64_intdigest(data, seed)


class FasterLog:
    """A durable append-only log (FASTER's FasterLog) over a directory or a device."""

    def __init__(
        self,
        target: str | os.PathLike[str] | StorageDevice,
        *,
        page_size: int | None = None,
        memory_size: int = DEFAULT_MEMORY_SIZE,
        segment_size: int | None = None,
        commit_interval: float | None = None,
        name: str = "log",
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        """Open (recovering) or create a log.

        ``target`` is a directory (a ``FileDevice`` is opened there and the directory is locked)
        or a device, whose directory also holds the commit records unless ``directory`` is
        given. ``commit_interval`` (seconds) starts a background commit at that period.
        """
        if commit_interval is not None and commit_interval <= 0:
            raise ValueError(f"commit_interval must be positive, got {commit_interval}")
        self._closed = False
        self._data_dir: DataDir | None = None
        self._owns_device = False
        if isinstance(target, StorageDevice):
            if isinstance(target, NullDevice):
                raise ValueError("FasterLog needs a device that keeps data, not a NullDevice")
            meta_dir = Path(directory) if directory is not None else target.directory
            if meta_dir is None:
                raise ValueError("this device has no directory: pass directory= for commits")
            self.device = target
            self._commits = CommitStore(meta_dir, name)
            record = self._commits.load()
            if record is not None and record.segment_size != target.segment_size:
                raise ValueError(
                    f"the log was written with segment_size={record.segment_size}; the device"
                    f" has {target.segment_size}"
                )
        else:
            meta_dir = Path(directory) if directory is not None else Path(target)
            self._data_dir = DataDir(target)
            try:
                self._commits = CommitStore(meta_dir, name)
                record = self._commits.load()
                if record is not None:
                    if segment_size is not None and segment_size != record.segment_size:
                        raise ValueError(
                            f"the log was created with segment_size={record.segment_size};"
                            f" got {segment_size}"
                        )
                    segment_size = record.segment_size
                self.device = FileDevice(
                    target, name=name, segment_size=segment_size or DEFAULT_SEGMENT_SIZE
                )
            except BaseException:
                self._data_dir.release()
                raise
            self._owns_device = True
        try:
            self._setup(record, page_size, memory_size)
        except BaseException:
            self._release_resources()
            raise
        self._commit_thread: threading.Thread | None = None
        self._commit_interval = commit_interval
        self._commit_requested = False
        if commit_interval is not None:
            self._start_commit_thread()

    # -- set-up and recovery ---------------------------------------------------------------

    def _setup(self, record: CommitRecord | None, page_size: int | None, memory_size: int) -> None:
        if record is not None:
            if page_size is not None and page_size != record.page_size:
                raise ValueError(
                    f"the log was created with page_size={record.page_size}; got {page_size}"
                )
            page_size = record.page_size
        page_size = page_size or DEFAULT_PAGE_SIZE
        sector = self.device.sector_size
        if page_size < 4 * HEADER_SIZE or page_size % sector:
            raise ValueError(f"page_size must be a multiple of {sector} bytes, got {page_size}")
        if self.device.segment_size % page_size:
            raise ValueError(
                f"segment_size ({self.device.segment_size}) must be a multiple of page_size"
                f" ({page_size})"
            )
        pages = memory_size // page_size
        if pages < 2:
            raise ValueError(
                f"memory_size ({memory_size}) must hold at least 2 pages of {page_size} bytes"
            )
        self.page_size = page_size
        self.max_entry_size = page_size - HEADER_SIZE
        self._sector = sector
        self._npages = pages
        self._buffers = [bytearray(page_size) for _ in range(pages)]
        self._views = [memoryview(b) for b in self._buffers]
        self._buffer_page = [-1] * pages  # which page each buffer holds
        self._zeros = bytes(page_size)
        # Reentrant: a device may run a completion callback (which takes this lock) inline.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._commit_lock = threading.Lock()
        self._failure: BaseException | None = None
        self._done_pages: set[int] = set()
        self._pages_in_flight = 0
        self._iterators: dict[str, int] = {}
        if record is None and self.device.begin_segment > 0:
            path = (
                self.device.directory / f"{self.device.name}.begin"
                if self.device.directory
                else None
            )
            raise LogCorruptionError(
                "the device was truncated but no commit record exists; the commit records"
                " (name.commit.*) are missing, so the log cannot be recovered",
                str(path) if path else None,
                0,
            )
        if record is None:
            self._sequence = 0
            self.begin_address = 0
            self.committed_until = 0
        else:
            self._sequence = record.sequence
            self.begin_address = record.begin_address
            self.committed_until = record.committed_until
            self._iterators = dict(record.iterators)
        self._persisted_begin = self.begin_address
        self._persisted_iterators = dict(self._iterators)
        tail = self.committed_until
        page, offset = divmod(tail, page_size)
        index = page % pages
        self._buffer_page[index] = page
        self._tail_view: memoryview | None = self._views[index]
        if offset:
            data = self.device.read(page * page_size, offset)
            self._buffers[index][:offset] = data
            self._verify_range(page * page_size, data, tail)
        self.tail_address = tail
        self._tail_page = page
        self._tail_offset = offset
        self.flushed_until = page * page_size  # every whole page below is on the device
        self._partial_written = offset  # bytes of the tail page already on the device

    def _verify_range(self, start: int, data: bytes | memoryview, end: int) -> None:
        """Check every entry in ``data`` (the page bytes from ``start``) up to ``end``."""
        address = start
        page_size = self.page_size
        while address < end:
            offset = address - start
            room = page_size - address % page_size
            if room < HEADER_SIZE:
                address += room
                continue
            length, kind, stored = HEADER.unpack_from(data, offset)
            if kind == KIND_FILLER:
                address += room
                continue
            size = (HEADER_SIZE + length + 7) & ~7
            if kind != KIND_ENTRY or size > room or address + size > end:
                raise self.corruption(address, f"bad entry header (length {length}, kind {kind})")
            payload = data[offset + HEADER_SIZE : offset + HEADER_SIZE + length]
            if checksum(payload, kind, length) != stored:
                raise self.corruption(address, "entry checksum mismatch")
            address += size

    def corruption(self, address: int, message: str) -> LogCorruptionError:
        path, offset = self.device.locate(address)
        return LogCorruptionError(
            f"{message} (log address {address})", str(path) if path else None, offset
        )

    # -- appending -------------------------------------------------------------------------

    def enqueue(self, entry: bytes | bytearray | memoryview) -> int:
        """Append ``entry``; return its address. Blocks while memory is full of unflushed pages."""
        # _append inlined: this is the hot path
        length = len(entry)
        if length > self.max_entry_size:
            raise self._too_large(length)
        check = xxhash.xxh3_64_intdigest(entry, (KIND_ENTRY << 32) | length)
        size = (HEADER_SIZE + length + 7) & ~7
        with self._lock:
            if self._failure is not None or self._closed:
                self._raise_unusable()
            offset = self._tail_offset
            view = self._tail_view
            while view is None or offset + size > self.page_size:
                self._next_page(True)
                offset = self._tail_offset
                view = self._tail_view
            _pack_header(view, offset, length, KIND_ENTRY, check)
            view[offset + HEADER_SIZE : offset + HEADER_SIZE + length] = entry
            self._tail_offset = offset + size
            address = self.tail_address
            self.tail_address = address + size
            return address

    def try_enqueue(self, entry: bytes | bytearray | memoryview) -> int | None:
        """``enqueue`` that returns ``None`` instead of waiting for memory."""
        return self._append(entry, False)

    def _append(self, entry: bytes | bytearray | memoryview, block: bool) -> int | None:
        length = len(entry)
        if length > self.max_entry_size:
            raise self._too_large(length)
        check = _xxh3(entry, (KIND_ENTRY << 32) | length)
        size = (HEADER_SIZE + length + 7) & ~7
        with self._lock:
            if self._failure is not None or self._closed:
                self._raise_unusable()
            offset = self._tail_offset
            view = self._tail_view
            while view is None or offset + size > self.page_size:
                if not self._next_page(block):
                    return None
                offset = self._tail_offset
                view = self._tail_view
            _pack_header(view, offset, length, KIND_ENTRY, check)
            view[offset + HEADER_SIZE : offset + HEADER_SIZE + length] = entry
            self._tail_offset = offset + size
            address = self.tail_address
            self.tail_address = address + size
            return address

    def _too_large(self, length: int) -> EntryTooLargeError:
        return EntryTooLargeError(
            f"entry of {length} bytes does not fit in a page of {self.page_size} bytes"
            f" (at most {self.max_entry_size})"
        )

    def enqueue_batch(self, entries: Iterable[bytes | bytearray | memoryview]) -> list[int]:
        """Append several entries under one lock acquisition; return their addresses."""
        prepared = []
        for entry in entries:
            length = len(entry)
            if length > self.max_entry_size:
                raise self._too_large(length)
            prepared.append((entry, length, _xxh3(entry, (KIND_ENTRY << 32) | length)))
        addresses = []
        page_size = self.page_size
        with self._lock:
            if self._failure is not None or self._closed:
                self._raise_unusable()
            for entry, length, check in prepared:
                size = (HEADER_SIZE + length + 7) & ~7
                offset = self._tail_offset
                view = self._tail_view
                while view is None or offset + size > page_size:
                    self._next_page(True)
                    offset = self._tail_offset
                    view = self._tail_view
                _pack_header(view, offset, length, KIND_ENTRY, check)
                view[offset + HEADER_SIZE : offset + HEADER_SIZE + length] = entry
                self._tail_offset = offset + size
                addresses.append(self.tail_address)
                self.tail_address += size
        return addresses

    def _next_page(self, block: bool) -> bool:
        """Seal the tail page and give the tail a free buffer (waiting for one). Holds the lock.

        Returns ``False`` if no buffer is free and ``block`` is false.
        """
        if self._tail_view is not None:
            view = self._tail_view
            offset = self._tail_offset
            room = self.page_size - offset
            if room >= HEADER_SIZE:
                _pack_header(view, offset, room - HEADER_SIZE, KIND_FILLER, 0)
            self._flush_page(self._tail_page, view)
            self._tail_page += 1
            self._tail_offset = 0
            self.tail_address = self._tail_page * self.page_size
            self._tail_view = None
            self._partial_written = 0
        while self._tail_view is None:
            page = self._tail_page
            index = page % self._npages
            held = self._buffer_page[index]
            if held < 0 or held * self.page_size < self.flushed_until:
                self._views[index][:] = self._zeros
                self._buffer_page[index] = page
                self._tail_view = self._views[index]
                break
            if not block:
                return False
            if self._failure is not None or self._closed:
                self._raise_unusable()
            self._cond.wait()
        return True

    def _flush_page(self, page: int, view: memoryview) -> None:
        """Write a sealed page in the background (the part a commit has not written yet)."""
        start = self._partial_written - self._partial_written % self._sector
        self._pages_in_flight += 1

        def done(result: int | None, error: BaseException | None) -> None:
            with self._lock:
                self._pages_in_flight -= 1
                if error is not None:
                    if self._failure is None:
                        self._failure = error
                        log.error("FasterLog page flush failed; the log stops: %s", error)
                else:
                    self._done_pages.add(page)
                    page_size = self.page_size
                    while self.flushed_until // page_size in self._done_pages:
                        self._done_pages.discard(self.flushed_until // page_size)
                        self.flushed_until += page_size
                self._cond.notify_all()

        self.device.write_async(page * self.page_size + start, view[start:], done)

    def _raise_unusable(self) -> None:
        if self._closed:
            raise LogClosedError("the log is closed")
        raise LogFailedError(
            f"the log stopped after an I/O error ({self._failure}); entries committed before it"
            " are safe: reopen the log to recover them"
        ) from self._failure

    # -- committing ------------------------------------------------------------------------

    def commit(self, wait: bool = True) -> int:
        """Make every entry enqueued before this call durable; return the committed end.

        With ``wait=False`` the commit runs on the background commit thread and this returns
        at once; ``wait_for_commit`` waits for it.
        """
        with self._lock:
            if self._failure is not None or self._closed:
                self._raise_unusable()
            target = self.tail_address
        if not wait:
            self._request_commit()
            return target
        self._commit_until(target)
        return self.committed_until

    def wait_for_commit(self, until: int | None = None, timeout: float | None = None) -> bool:
        """Wait until the committed end reaches ``until`` (default: the tail at this call).

        ``commit(wait=False)`` returns such an end; for the entry at address ``a`` pass
        ``a + 1``. Returns ``False`` on timeout; raises ``LogFailedError`` if the log stopped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self.tail_address if until is None else until
            while self.committed_until < target:
                if self._failure is not None or self._closed:
                    self._raise_unusable()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _commit_until(self, target: int) -> None:
        with self._commit_lock:
            with self._lock:
                if self._failure is not None:
                    self._raise_unusable()
                if (
                    self.committed_until >= target
                    and self._iterators == self._persisted_iterators
                    and self.begin_address == self._persisted_begin
                ):
                    return  # a commit that ran meanwhile covered us (group commit)
            try:
                self._do_commit()
            except LogFailedError:
                raise  # an earlier failure, already recorded
            except BaseException as exc:
                with self._lock:
                    if self._failure is None:
                        self._failure = exc
                    self._cond.notify_all()
                log.error("FasterLog commit failed; the log stops: %s", exc)
                raise LogFailedError(
                    f"commit failed ({exc}); entries committed before it are safe: reopen the"
                    " log to recover them"
                ) from exc

    def _do_commit(self) -> None:
        page_size = self.page_size
        with self._lock:
            end = self.tail_address
            # the tail page (it may be exactly full and not sealed yet)
            page_start = self._tail_page * page_size
            partial: bytes | None = None
            written_from = 0
            if self._tail_view is not None:
                written_from = self._partial_written - self._partial_written % self._sector
                upto = end - page_start
                if upto > written_from:
                    partial = bytes(self._tail_view[written_from:upto])
            begin = self.begin_address
            iterators = dict(self._iterators)
            while self.flushed_until < page_start:
                if self._failure is not None:
                    self._raise_unusable()
                self._cond.wait()
        if partial is not None:
            self.device.write(page_start + written_from, partial)
            with self._lock:
                if self._tail_page * page_size == page_start:
                    # a later seal writes only the rest of the page
                    self._partial_written = max(self._partial_written, end - page_start)
        self.device.flush()
        record = CommitRecord(
            self._sequence + 1, begin, end, self.device.segment_size, page_size, iterators
        )
        self._commits.write(record)
        self._sequence += 1
        if begin > self._persisted_begin:
            self.device.truncate(begin)  # only now is no durable record pointing below begin
        with self._lock:
            self._persisted_begin = begin
            self._persisted_iterators = iterators
            if end > self.committed_until:
                self.committed_until = end
            self._cond.notify_all()

    def _request_commit(self) -> None:
        with self._lock:
            self._commit_requested = True
            if self._commit_thread is None:
                self._start_commit_thread()
            self._cond.notify_all()

    def _start_commit_thread(self) -> None:
        self._commit_thread = threading.Thread(
            target=self._commit_loop, name="faster-log-commit", daemon=True
        )
        self._commit_thread.start()

    def _commit_loop(self) -> None:
        interval = self._commit_interval
        next_due = None if interval is None else time.monotonic() + interval
        while True:
            with self._lock:
                while not self._commit_requested and not self._closed:
                    timeout = None if next_due is None else next_due - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._closed or self._failure is not None:
                    return
                self._commit_requested = False
                target = self.tail_address
            if interval is not None:
                next_due = time.monotonic() + interval
            try:
                self._commit_until(target)
            except LogFailedError:
                return  # recorded in _failure; waiters see it

    # -- reading ---------------------------------------------------------------------------

    def scan(
        self,
        name: str | None = None,
        start: int | None = None,
        end: int | None = None,
        uncommitted: bool = False,
        follow: bool = False,
    ) -> LogIterator:
        """Iterate ``(address, payload)`` pairs from ``start`` (default: the begin address).

        A named iterator's position is persisted with each commit; scanning again with the same
        name (after a restart too) resumes there. Without ``uncommitted`` only committed entries
        are returned; with ``follow`` the iterator waits for new ones until the log closes.
        """
        with self._lock:
            if self._closed:
                raise LogClosedError("the log is closed")
            if name is not None and name in self._iterators:
                position = self._iterators[name]
            else:
                position = self.begin_address if start is None else start
                if name is not None:
                    self._iterators[name] = max(position, self.begin_address)
            position = max(position, self.begin_address)
        return LogIterator(self, name, position, end, uncommitted, follow)

    def remove_iterator(self, name: str) -> None:
        """Forget a named iterator (persisted by the next commit)."""
        with self._lock:
            self._iterators.pop(name, None)

    def iterator_position(self, name: str) -> int | None:
        with self._lock:
            return self._iterators.get(name)

    def _set_iterator(self, name: str, position: int) -> None:
        with self._lock:
            if name in self._iterators and position > self._iterators[name]:
                self._iterators[name] = position

    def read_entry(self, address: int) -> bytes:
        """The payload of the committed entry at ``address`` (verified)."""
        it = LogIterator(self, None, address, None, False, False)
        for entry_address, payload in it:
            if entry_address != address:
                raise ValueError(f"no entry starts at address {address}")
            return payload
        raise ValueError(f"address {address} is not below the committed end")

    def _page_bytes(self, page: int, limit: int) -> bytes:
        """The bytes of ``page`` below ``limit`` (an address), from memory or the device."""
        page_size = self.page_size
        start = page * page_size
        length = min(page_size, limit - start)
        with self._lock:
            index = page % self._npages
            if self._buffer_page[index] == page:
                return bytes(self._views[index][:length])
            if self._closed:
                raise LogClosedError("the log is closed")
        return self.device.read(start, length)

    def _wait_for_more(self, address: int, uncommitted: bool) -> bool:
        """Block until data beyond ``address`` is readable; ``False`` once the log closes."""
        with self._lock:
            while True:
                limit = self.tail_address if uncommitted else self.committed_until
                if limit > address:
                    return True
                if self._closed:
                    return False
                if self._failure is not None:
                    self._raise_unusable()
                self._cond.wait()

    def _limit(self, uncommitted: bool) -> int:
        with self._lock:
            return self.tail_address if uncommitted else self.committed_until

    # -- space and shutdown ----------------------------------------------------------------

    def truncate_until(self, address: int) -> None:
        """Drop entries below ``address`` (an entry address); segment files wholly below it are
        deleted after the next commit makes the new begin durable."""
        with self._lock:
            if address > self.tail_address:
                raise ValueError(f"cannot truncate to {address}, beyond the tail")
            if address <= self.begin_address:
                return
            self.begin_address = address
            for name, position in self._iterators.items():
                if position < address:
                    self._iterators[name] = address

    def close(self, commit: bool = True) -> None:
        """Commit (unless ``commit=False`` or the log failed), stop threads, release files."""
        if self._closed:
            return
        try:
            if commit and self._failure is None:
                self.commit()
        finally:
            with self._lock:
                self._closed = True
                self._cond.notify_all()
                while self._pages_in_flight:
                    self._cond.wait()
            thread = self._commit_thread
            if thread is not None and thread is not threading.current_thread():
                thread.join()
            self._release_resources()

    def _release_resources(self) -> None:
        if self._owns_device:
            self.device.close()
        if self._data_dir is not None:
            self._data_dir.release()
            self._data_dir = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> FasterLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
