"""O_DIRECT reads and writes at any offset and length, through page-aligned bounce buffers.

O_DIRECT needs offsets, lengths and memory aligned to the logical block size. A request is
widened to whole sectors and goes through an ``mmap`` buffer (page-aligned); a write that starts
or ends inside a sector reads that sector first and writes it back patched (read-modify-write).
``DirectFileDevice`` uses these for its segment files, F2's cold index for its one file.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

DIRECT_SECTOR_SIZE = 4096  # safe for 512-byte and 4 KiB logical blocks


def span(offset: int, length: int, sector: int = DIRECT_SECTOR_SIZE) -> tuple[int, int]:
    """The sector-aligned [start, end) that covers ``length`` bytes at ``offset``."""
    start = offset - offset % sector
    end = -(-(offset + length) // sector) * sector
    return start, end


def pread_aligned(fd: int, buf: mmap.mmap | memoryview, start: int) -> None:
    """Fill ``buf`` (page-aligned, whole sectors) from ``start``; the part beyond the end of
    the file is zeroed. Raises ``OSError``."""
    done = os.preadv(fd, [buf], start)
    size = len(buf)
    while done < size:
        view = memoryview(buf)[done:]
        try:
            n = os.preadv(fd, [view], start + done)
        finally:
            view.release()
        if n == 0:
            buf[done:] = bytes(size - done)
            return
        done += n


class BounceBuffers(threading.local):
    """A page-aligned buffer per thread, reused by reads up to its size (an ``mmap`` and a
    ``munmap`` per read cost more than a short read from a fast disk)."""

    SIZE = 64 << 10

    def __init__(self) -> None:
        self.buf = mmap.mmap(-1, self.SIZE)

    def get(self, size: int) -> tuple[mmap.mmap, bool]:
        """A buffer of at least ``size`` bytes, and whether it is a new one (close it)."""
        if size <= self.SIZE:
            return self.buf, False
        return mmap.mmap(-1, size), True

    def read(self, fd: int, offset: int, length: int, sector: int = DIRECT_SECTOR_SIZE) -> bytes:
        """``length`` bytes of ``fd`` (O_DIRECT) at ``offset``; zeros beyond the end of the file.
        Raises ``OSError``."""
        start, end = span(offset, length, sector)
        buf, fresh = self.get(end - start)
        view = memoryview(buf)[: end - start]
        try:
            pread_aligned(fd, view, start)
            return bytes(view[offset - start : offset - start + length])
        finally:
            view.release()
            if fresh:
                buf.close()


def pwrite_aligned(fd: int, buf: mmap.mmap | memoryview, start: int) -> None:
    """Write all of ``buf`` at ``start``. Raises ``OSError`` (a short write is ``EIO``: O_DIRECT
    continues only at sector borders)."""
    n = os.pwritev(fd, [buf], start)
    if n != len(buf):
        raise OSError(errno.EIO, f"short O_DIRECT write ({n} of {len(buf)} bytes)")


class DirectFile:
    """A file opened with O_DIRECT (no page cache) with ``pread`` and ``pwrite`` at any
    alignment. A lock serialises the writes (each read-modify-writes its edge sectors, so two
    never race on one sector)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, mode)
        self._bounce = BounceBuffers()
        self._lock = threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        """``length`` bytes at ``offset``; zeros beyond the end of the file."""
        return self._bounce.read(self.fd, offset, length) if length > 0 else b""

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        if not len(data):
            return
        start, end = span(offset, len(data))
        with self._lock:
            buf, fresh = self._bounce.get(end - start)
            view = memoryview(buf)[: end - start]
            try:
                if start != offset or end != offset + len(data):
                    pread_aligned(self.fd, view, start)  # the edge sectors keep their bytes
                view[offset - start : offset - start + len(data)] = data
                pwrite_aligned(self.fd, view, start)
            finally:
                view.release()
                if fresh:
                    buf.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
