"""``IoUringDevice``: segment files driven by one io_uring (PyPI ``liburing``).

One ring thread owns the ring: it registers the ring fd (registered ring fds are per thread),
submits queued operations in batches and reaps completions. Callers append operations to a
deque and poke an eventfd; the ring signals the same eventfd when completions arrive (it is
registered with the ring), so the thread sleeps in ``os.eventfd_read``, which releases the GIL,
where the binding's own waits would hold it. Blocking reads skip the ring (see ``read``).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
from typing import Any

from faster_backend.engine.devices.base import (
    DEFAULT_SECTOR_SIZE,
    DEFAULT_SEGMENT_SIZE,
    Buffer,
    Callback,
    ReadCallback,
    StorageDevice,
    WriteCallback,
)
from faster_backend.engine.devices.errors import (
    DeviceClosedError,
    DeviceError,
    DeviceIOError,
    IoUringUnavailableError,
)
from faster_backend.engine.devices.segment_files import Segment, SegmentFiles, pread_rest

log = logging.getLogger(__name__)

_READ, _WRITE, _FSYNC = 0, 1, 2
_NAMES = {_READ: "reading", _WRITE: "writing", _FSYNC: "syncing"}


def _load_liburing() -> Any:
    try:
        import liburing
    except ImportError as exc:
        raise IoUringUnavailableError(
            "the liburing binding is not installed (pip install 'faster-backend[iouring]')"
        ) from exc
    return liburing


_probe_result: tuple[bool, str] | None = None
_probe_lock = threading.Lock()


def io_uring_status() -> tuple[bool, str]:
    """Whether an io_uring can be created here, and why not (probed once per process)."""
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            try:
                uring = _load_liburing()
                ring = uring.Ring()
                uring.io_uring_queue_init(2, ring)
                uring.io_uring_queue_exit(ring)
                _probe_result = (True, "io_uring is available")
            except IoUringUnavailableError as exc:
                _probe_result = (False, str(exc))
            except OSError as exc:
                _probe_result = (False, f"the kernel refuses io_uring: {exc}")
        return _probe_result


class _Part:
    """One operation on one segment file; short transfers are resubmitted for the rest."""

    __slots__ = (
        "buffer",
        "done",
        "fd",
        "kind",
        "length",
        "offset",
        "out",
        "owner",
        "seg",
        "segment",
    )

    def __init__(
        self,
        owner: _Request,
        kind: int,
        seg: Segment,
        offset: int,
        buffer: bytes | bytearray,
        length: int,
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.seg = seg  # held until the part completes: its descriptor stays open
        self.fd = seg.fd
        self.segment = seg.number
        self.offset = offset
        self.buffer = buffer  # what the kernel reads into / writes from next
        self.out = buffer  # reads: the final buffer of this part
        self.length = length
        self.done = 0


class _Request:
    """A device-level operation: its parts, and the callback once all are done."""

    __slots__ = ("buffers", "callback", "error", "kind", "nbytes", "pending")

    def __init__(self, kind: int, callback: Callback[Any], nbytes: int) -> None:
        self.kind = kind
        self.callback = callback
        self.nbytes = nbytes
        self.buffers: list[bytearray] = []
        self.pending = 0
        self.error: BaseException | None = None


class IoUringDevice(StorageDevice):
    """Segment files read and written through io_uring with batched submissions."""

    kind = "io_uring"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str = "log",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        entries: int = 256,
        sector_size: int = DEFAULT_SECTOR_SIZE,
    ) -> None:
        super().__init__(directory, name, segment_size, sector_size)
        self._uring = _load_liburing()
        assert self.directory is not None
        self.files = SegmentFiles(self.directory, name)
        self.pread_segments = self.files.open
        self.begin_segment = self.files.begin_segment
        self.entries = entries
        self.ring_fd_registered = False
        self.submit_calls = 0  # io_uring_submit calls, and the operations they carried:
        self.submitted_ops = 0  # their ratio is the batching achieved
        self._queue: collections.deque[_Part] = collections.deque()
        self._efd = os.eventfd(0, os.EFD_CLOEXEC)
        self._closing = False
        self._submit_lock = threading.Lock()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._ring_main, name=f"io-uring-{name}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            os.close(self._efd)
            self.files.close()
            self._closed = True
            raise IoUringUnavailableError(
                f"the kernel refuses io_uring: {self._start_error}"
            ) from self._start_error

    # -- the ring thread -------------------------------------------------------------------

    def _ring_main(self) -> None:
        uring = self._uring
        ring = uring.Ring()
        try:
            uring.io_uring_queue_init(self.entries, ring)
        except OSError as exc:
            self._start_error = exc
            self._ready.set()
            return
        try:
            try:
                uring.io_uring_register_ring_fd(ring)
                self.ring_fd_registered = True
            except OSError:
                pass  # older kernels: plain ring fd, still correct
            uring.io_uring_register_eventfd(ring, self._efd)
        except OSError as exc:
            uring.io_uring_queue_exit(ring)
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(uring, ring)
        finally:
            uring.io_uring_queue_exit(ring)

    def _loop(self, uring: Any, ring: Any) -> None:
        queue = self._queue
        efd = self._efd
        cqe = uring.Cqe()
        capacity = self.entries
        in_flight: dict[int, _Part] = {}
        next_id = 1
        get_sqe = uring.io_uring_get_sqe
        prep_read = uring.io_uring_prep_read
        prep_write = uring.io_uring_prep_write
        prep_fsync = uring.io_uring_prep_fsync
        part: _Part | None = None
        while True:
            # The last part handled holds its Segment: let it go before sleeping, or a
            # truncated segment's file would stay open until the next operation.
            part = None
            os.eventfd_read(efd)
            while True:
                submitted = 0
                while queue and len(in_flight) < capacity:
                    part = queue.popleft()
                    sqe = get_sqe(ring)
                    if part.kind == _READ:
                        prep_read(sqe, part.fd, part.buffer, part.offset + part.done)
                    elif part.kind == _WRITE:
                        prep_write(sqe, part.fd, part.buffer, part.offset + part.done)
                    else:
                        prep_fsync(sqe, part.fd)
                    sqe.user_data = next_id
                    in_flight[next_id] = part
                    next_id += 1
                    submitted += 1
                if submitted:
                    uring.io_uring_submit(ring)
                    self.submit_calls += 1
                    self.submitted_ops += submitted
                reaped = 0
                for _ in uring.CqeIter(ring, cqe):
                    entry = cqe[0]
                    part = in_flight.pop(entry.user_data)
                    try:
                        res = entry.res
                    except OSError as exc:
                        res = -(exc.errno or errno.EIO)
                    reaped += 1
                    self._complete_part(part, res)
                if reaped:
                    uring.io_uring_cq_advance(ring, reaped)
                if not submitted and not reaped:
                    break
            if self._closing and not queue and not in_flight:
                return

    def _complete_part(self, part: _Part, res: int) -> None:
        if res < 0:
            self._finish_part(part, self._io_error(-res, part))
            return
        if part.kind == _FSYNC:
            self._finish_part(part, None)
            return
        if part.kind == _READ and part.buffer is not part.out:
            part.out[part.done : part.done + res] = part.buffer[:res]  # type: ignore[index]
        part.done += res
        if part.done >= part.length or (res == 0 and part.kind == _READ):
            # res == 0 on a read is the end of the file: the rest was never written (zeros).
            self._finish_part(part, None)
        elif res == 0:
            self._finish_part(part, DeviceIOError(errno.EIO, "write made no progress"))
        else:  # a short transfer: continue where it stopped
            if part.kind == _READ:
                part.buffer = bytearray(part.length - part.done)
            else:
                part.buffer = part.buffer[res:]
            self._queue.append(part)

    def _finish_part(self, part: _Part, error: BaseException | None) -> None:
        request = part.owner
        if error is not None and request.error is None:
            request.error = error
        request.pending -= 1
        if request.pending == 0:
            self._finish_request(request)

    def _finish_request(self, request: _Request) -> None:
        try:
            self._deliver(request)
        except Exception:  # a failing callback must not kill the ring thread
            log.exception("an IoUringDevice completion callback raised")

    def _deliver(self, request: _Request) -> None:
        if request.error is not None:
            request.callback(None, request.error)
            return
        if request.kind == _READ:
            chunks = request.buffers
            result: Any = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            self._count(reads=1, nread=request.nbytes)
        elif request.kind == _WRITE:
            result = request.nbytes
            self._count(writes=1, nwritten=request.nbytes)
        else:
            result = None
        request.callback(result, None)

    def _io_error(self, code: int, part: _Part) -> DeviceIOError:
        path = self.files.path(part.segment)
        offset = part.offset + part.done
        return DeviceIOError(
            code,
            f"{os.strerror(code)} {_NAMES[part.kind]} {path} at offset {offset}"
            f" (address {part.segment * self.segment_size + offset}; io_uring)",
            str(path),
        )

    # -- submitting ------------------------------------------------------------------------

    def _submit(self, parts: list[_Part]) -> None:
        with self._submit_lock:  # nothing is queued once close has begun
            if not self._closing:
                self._queue.extend(parts)
                os.eventfd_write(self._efd, 1)
                return
        raise DeviceClosedError(f"{self.describe()} is closed")

    def read_async(self, address: int, length: int, callback: ReadCallback) -> None:
        self._check_args(address, length)
        request = _Request(_READ, callback, length)
        parts: list[_Part] = []
        try:
            for segment, offset, _, size in self.split(address, length):
                buffer = bytearray(size)
                request.buffers.append(buffer)
                seg = self.files.get(segment)
                if seg is not None:  # no file: the zeros of the fresh buffer are the answer
                    parts.append(_Part(request, _READ, seg, offset, buffer, size))
        except DeviceError as exc:
            callback(None, exc)
            return
        if not parts:
            self._count(reads=1, nread=length)
            callback(bytes(length), None)
            return
        request.pending = len(parts)
        self._submit(parts)

    def write_async(self, address: int, data: Buffer, callback: WriteCallback) -> None:
        self._check_args(address, 0)
        view = memoryview(data).cast("B")
        request = _Request(_WRITE, callback, len(view))
        pieces = list(self.split(address, len(view)))
        parts: list[_Part] = []
        try:
            for segment, offset, start, size in pieces:
                if len(pieces) == 1 and isinstance(data, bytes | bytearray):
                    buffer: bytes | bytearray = data
                else:
                    buffer = bytes(view[start : start + size])  # the binding takes no views
                seg = self.files.acquire(segment, create=True)
                assert seg is not None
                parts.append(_Part(request, _WRITE, seg, offset, buffer, size))
        except DeviceError as exc:
            callback(None, exc)
            return
        if not parts:
            callback(0, None)
            return
        request.pending = len(parts)
        self._submit(parts)

    def read(self, address: int, length: int) -> bytes:
        """A ``pread`` on the calling thread, not the ring.

        A blocking read is a single, latency-bound request: through the ring it would cost two
        thread hand-offs (caller to ring thread and back, about 8x a ``pread`` on page-cache
        hits) and save nothing, since there is nothing to batch it with. It also makes a
        blocking read legal inside a completion callback (it never waits for the ring).
        """
        if self._closed:
            self._check_open()
        segment, offset = divmod(address, self.segment_size)
        if offset + length <= self.segment_size and address >= 0 and length >= 0:
            seg = self.files.open.get(segment) or self.files.get(segment)  # as in FileDevice
            if seg is None:
                data = bytes(length)
            else:
                try:
                    data = pread_rest(seg.fd, os.pread(seg.fd, length, offset), length, offset)
                except OSError as exc:
                    raise self._pread_error(exc, seg, offset) from exc
            with self._stats_lock:
                stats = self.stats
                stats.reads += 1
                stats.bytes_read += length
            return data
        parts: list[bytes] = []
        for segment, offset, _, size in self.split(address, length):
            seg = self.files.get(segment)
            if seg is None:
                parts.append(bytes(size))
                continue
            try:
                parts.append(pread_rest(seg.fd, b"", size, offset))
            except OSError as exc:
                raise self._pread_error(exc, seg, offset) from exc
        self._count(reads=1, nread=length)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _pread_error(self, exc: OSError, seg: Segment, offset: int) -> DeviceIOError:
        path = self.files.path(seg.number)
        return DeviceIOError(
            exc.errno or errno.EIO,
            f"{exc.strerror or exc} reading {path} at offset {offset}"
            f" (address {seg.number * self.segment_size + offset})",
            str(path),
        )

    def write(self, address: int, data: Buffer) -> None:
        self._wait(self.write_async, address, data)

    def _wait(self, start: Any, *args: Any) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a blocking write or flush on an IoUringDevice from its own completion callback"
                " would deadlock; use the asynchronous call"
            )
        done = threading.Event()
        box: list[Any] = [None, None]

        def callback(result: Any, error: BaseException | None) -> None:
            box[0] = result
            box[1] = error
            done.set()

        start(*args, callback)
        done.wait()
        if box[1] is not None:
            raise box[1]
        return box[0]

    def flush(self) -> None:
        self._wait(self.flush_async)

    def flush_async(self, callback: Callback[None]) -> None:
        """fsync through the ring: one IORING_OP_FSYNC per dirty segment file, in one batch."""
        self._check_open()
        segments, dir_dirty = self.files.take_dirty()

        def finish(result: Any, error: BaseException | None) -> None:
            if error is None and dir_dirty:
                try:
                    self.files.sync_directory()  # rare: only after new segment files
                except OSError as exc:
                    error = DeviceIOError(
                        exc.errno or errno.EIO, f"fsync of {self.directory} failed: {exc}"
                    )
            if error is not None:
                self.files.restore_dirty(dir_dirty)
                callback(None, error)
                return
            self._count_fsyncs(len(segments) + int(dir_dirty))
            callback(None, None)

        if not segments:
            finish(None, None)
            return
        request = _Request(_FSYNC, finish, 0)
        request.pending = len(segments)
        self._submit([_Part(request, _FSYNC, seg, 0, b"", 0) for seg in segments])

    def truncate(self, below_address: int) -> int:
        self._check_open()
        deleted = self.files.truncate(below_address // self.segment_size)
        self.begin_segment = self.files.begin_segment
        with self._stats_lock:
            self.stats.segments_deleted += deleted
        return deleted

    def close(self) -> None:
        if self._closed:
            return
        with self._submit_lock:
            self._closing = True
            os.eventfd_write(self._efd, 1)
        self._thread.join()
        self._closed = True
        os.close(self._efd)
        self.files.close()
