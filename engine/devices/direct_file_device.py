"""``DirectFileDevice``: ``FileDevice`` with O_DIRECT (no page cache), any alignment accepted.

O_DIRECT needs offsets, lengths and memory aligned to the logical block size. Requests go
through page-aligned bounce buffers (direct_io.py); a write that starts or ends inside a sector
reads that sector first and writes it back patched (read-modify-write), serialized by a lock so
two such writes never race on one sector.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

from faster_backend.engine.devices.base import DEFAULT_SEGMENT_SIZE
from faster_backend.engine.devices.direct_io import (
    DIRECT_SECTOR_SIZE,
    BounceBuffers,
    pread_aligned,
    pwrite_aligned,
    span,
)
from faster_backend.engine.devices.errors import DeviceError
from faster_backend.engine.devices.file_device import FileDevice


def direct_io_status(directory: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether the filesystem holding ``directory`` accepts O_DIRECT, and why not."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        return False, f"O_DIRECT refused by the filesystem of {path}: {exc.strerror}"
    try:
        buf = mmap.mmap(-1, DIRECT_SECTOR_SIZE)
        os.pwritev(fd, [buf], 0)
        return True, "O_DIRECT works"
    except OSError as exc:
        return False, f"O_DIRECT write refused on {path}: {exc.strerror}"
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


class DirectFileDevice(FileDevice):
    """Segment files opened with O_DIRECT; unaligned requests are handled internally."""

    kind = "file_direct"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str = "log",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        threads: int = 4,
    ) -> None:
        ok, why = direct_io_status(directory)
        if not ok:
            raise DeviceError(why)
        super().__init__(
            directory, name, segment_size, threads, DIRECT_SECTOR_SIZE, _open_flags=os.O_DIRECT
        )
        self._rmw_lock = threading.Lock()
        self._bounce = BounceBuffers()
        self.pread_segments = None  # O_DIRECT reads need aligned buffers: ``read`` does them

    def read(self, address: int, length: int) -> bytes:
        self._check_open()
        return self._read_parts(address, length)  # every read needs the aligned bounce buffer

    def _read_segment(self, segment: int, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        seg = self.files.get(segment)
        if seg is None:
            return bytes(length)
        try:
            return self._bounce.read(seg.fd, offset, length, self.sector_size)
        except OSError as exc:
            raise self._io_error(exc, "reading", segment, offset) from exc

    def _pread_aligned(
        self, fd: int, buf: mmap.mmap | memoryview, start: int, segment: int
    ) -> None:
        """Fill ``buf`` from ``start``; the part beyond the end of the file stays zero."""
        try:
            pread_aligned(fd, buf, start)
        except OSError as exc:
            raise self._io_error(exc, "reading", segment, start) from exc

    def _write_segment(self, segment: int, offset: int, data: memoryview) -> None:
        if not data:
            return
        seg = self.files.acquire(segment, create=True)
        assert seg is not None
        start, end = span(offset, len(data), self.sector_size)
        buf = mmap.mmap(-1, end - start)
        try:
            aligned = start == offset and end == offset + len(data)
            if aligned:
                buf[:] = data
                self._pwrite_aligned(seg.fd, buf, start, segment)
            else:
                with self._rmw_lock:
                    # the edge sectors keep their other bytes: read them first
                    self._pread_aligned(seg.fd, buf, start, segment)
                    buf[offset - start : offset - start + len(data)] = data
                    self._pwrite_aligned(seg.fd, buf, start, segment)
        finally:
            buf.close()

    def _pwrite_aligned(self, fd: int, buf: mmap.mmap, start: int, segment: int) -> None:
        try:
            pwrite_aligned(fd, buf, start)
        except OSError as exc:
            raise self._io_error(exc, "writing", segment, start) from exc

    def read_into(self, address: int, buffer: bytearray | memoryview) -> None:
        view = memoryview(buffer).cast("B")
        view[:] = self.read(address, len(view))
