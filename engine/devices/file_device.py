"""``FileDevice``: pread/pwrite on segment files; asynchronous calls run on a thread pool."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from faster_backend.engine.devices.base import (
    DEFAULT_SECTOR_SIZE,
    DEFAULT_SEGMENT_SIZE,
    Buffer,
    Callback,
    ReadCallback,
    StorageDevice,
    WriteCallback,
)
from faster_backend.engine.devices.errors import DeviceClosedError, DeviceIOError
from faster_backend.engine.devices.segment_files import Segment, SegmentFiles, pread_rest
from faster_backend.engine.devices.workers import WorkerPool


class FileDevice(StorageDevice):
    """Segment files accessed with ``os.pread``/``os.pwrite`` (they release the GIL)."""

    kind = "file"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str = "log",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        threads: int = 4,
        sector_size: int = DEFAULT_SECTOR_SIZE,
        _open_flags: int = 0,
    ) -> None:
        super().__init__(directory, name, segment_size, sector_size)
        assert self.directory is not None
        self.files = SegmentFiles(self.directory, name, _open_flags)
        self.pread_segments = self.files.open
        self.begin_segment = self.files.begin_segment
        self._pool = WorkerPool(threads, f"file-device-{name}")

    # -- blocking --------------------------------------------------------------------------

    def write(self, address: int, data: Buffer) -> None:
        if self._closed:
            self._check_open()
        view = memoryview(data).cast("B")
        size = len(view)
        segment, offset = divmod(address, self.segment_size)
        if offset + size <= self.segment_size and address >= 0:  # the common case: one segment
            self._write_segment(segment, offset, view)
        else:
            for segment, offset, start, length in self.split(address, size):
                self._write_segment(segment, offset, view[start : start + length])
        self._count(writes=1, nwritten=size)

    def read(self, address: int, length: int) -> bytes:
        if self._closed:
            self._check_open()
        segment, offset = divmod(address, self.segment_size)
        if offset + length > self.segment_size or address < 0 or length < 0:
            return self._read_parts(address, length)
        # The common case, kept lean (the hybrid log's disk reads are one call each): one
        # segment, a lock-free lookup of its open file, one pread, one lock for the counters.
        seg = self.files.open.get(segment) or self.files.get(segment)
        if seg is None:
            data = bytes(length)
        else:
            try:
                data = os.pread(seg.fd, length, offset)
            except OSError as exc:
                raise self._io_error(exc, "reading", segment, offset) from exc
            if len(data) < length:
                data = self._pread_rest(seg, data, offset, length)
        with self._stats_lock:
            stats = self.stats
            stats.reads += 1
            stats.bytes_read += length
        return data

    def _read_parts(self, address: int, length: int) -> bytes:
        """``read`` through ``_read_segment``, split at segment borders."""
        parts = [self._read_segment(s, o, n) for s, o, _, n in self.split(address, length)]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._count(reads=1, nread=length)
        return data

    def read_into(self, address: int, buffer: bytearray | memoryview) -> None:
        if self._closed:
            self._check_open()
        view = memoryview(buffer).cast("B")
        length = len(view)
        segment, offset = divmod(address, self.segment_size)
        if offset + length > self.segment_size or address < 0:
            super().read_into(address, buffer)
            return
        seg = self.files.get(segment)
        if seg is None:
            view[:] = bytes(length)
        else:
            try:
                done = os.preadv(seg.fd, [view], offset)
                while done < length:
                    n = os.preadv(seg.fd, [view[done:]], offset + done)
                    if n == 0:  # end of file: never written
                        view[done:] = bytes(length - done)
                        break
                    done += n
            except OSError as exc:
                raise self._io_error(exc, "reading", segment, offset) from exc
        self._count(reads=1, nread=length)

    def _write_segment(self, segment: int, offset: int, data: memoryview) -> None:
        seg = self.files.acquire(segment, create=True)
        assert seg is not None
        self._pwrite_all(seg.fd, data, segment, offset)

    def _pwrite_all(self, fd: int, data: memoryview, segment: int, offset: int) -> None:
        done = 0
        total = len(data)
        while done < total:
            try:
                n = os.pwrite(fd, data[done:] if done else data, offset + done)
            except OSError as exc:
                raise self._io_error(exc, "writing", segment, offset + done) from exc
            if n == 0:
                raise DeviceIOError(
                    errno.EIO,
                    f"write made no progress on {self.files.path(segment)} at offset"
                    f" {offset + done}",
                    str(self.files.path(segment)),
                )
            done += n  # a short write is continued, as POSIX allows

    def _read_segment(self, segment: int, offset: int, length: int) -> bytes:
        seg = self.files.get(segment)
        if seg is None:
            return bytes(length)
        try:
            data = os.pread(seg.fd, length, offset)
        except OSError as exc:
            raise self._io_error(exc, "reading", segment, offset) from exc
        return data if len(data) == length else self._pread_rest(seg, data, offset, length)

    def _pread_rest(self, seg: Segment, data: bytes, offset: int, length: int) -> bytes:
        try:
            return pread_rest(seg.fd, data, length, offset)
        except OSError as exc:
            raise self._io_error(exc, "reading", seg.number, offset) from exc

    def _io_error(self, exc: OSError, doing: str, segment: int, offset: int) -> DeviceIOError:
        path = self.files.path(segment)
        return DeviceIOError(
            exc.errno or errno.EIO,
            f"{exc.strerror or exc} {doing} {path} at offset {offset}"
            f" (address {segment * self.segment_size + offset})",
            str(path),
        )

    # -- asynchronous ----------------------------------------------------------------------

    def write_async(self, address: int, data: Buffer, callback: WriteCallback) -> None:
        self._check_args(address, 0)

        def job() -> None:
            try:
                self.write(address, data)
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(len(data), None)

        self._run_async(job)

    def _run_async(self, job: Callable[[], None]) -> None:
        try:
            self._pool.submit(job)
        except RuntimeError:
            raise DeviceClosedError(f"{self.describe()} is closed") from None

    def read_async(self, address: int, length: int, callback: ReadCallback) -> None:
        self._check_args(address, length)

        def job() -> None:
            try:
                result = self.read(address, length)
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(result, None)

        self._run_async(job)

    def flush_async(self, callback: Callback[None]) -> None:
        self._check_open()

        def job() -> None:
            try:
                self.flush()
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(None, None)

        self._run_async(job)

    # -- durability and space --------------------------------------------------------------

    def flush(self) -> None:
        self._check_open()
        segments, dir_dirty = self.files.take_dirty()
        try:
            for seg in segments:
                os.fsync(seg.fd)
            if dir_dirty:
                self.files.sync_directory()
        except OSError as exc:
            self.files.restore_dirty(dir_dirty)
            raise DeviceIOError(
                exc.errno or errno.EIO, f"fsync failed on {self.describe()}: {exc}"
            ) from exc
        self._count_fsyncs(len(segments) + int(dir_dirty))

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
        self._pool.close()
        self._closed = True
        self.files.close()
