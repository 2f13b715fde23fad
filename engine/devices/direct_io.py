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


def pread_aligned(fd: int, buf: mmap.mmap, start: int) -> None:
    """Fill ``buf`` from ``start``; the part beyond the end of the file stays as it was (zero
    in a fresh buffer). Raises ``OSError``."""
    done = os.preadv(fd, [buf], start)
    size = len(buf)
    while done < size:
        view = memoryview(buf)[done:]
        try:
            n = os.preadv(fd, [view], start + done)
        finally:
            view.release()
        if n == 0:
            return
        done += n


def pwrite_aligned(fd: int, buf: mmap.mmap, start: int) -> None:
    """Write all of ``buf`` at ``start``. Raises ``OSError`` (a short write is ``EIO``: O_DIRECT
    continues only at sector borders)."""
    n = os.pwritev(fd, [buf], start)
    if n != len(buf):
        raise OSError(errno.EIO, f"short O_DIRECT write ({n} of {len(buf)} bytes)")


class DirectFile:
    """A file opened with O_DIRECT (no page cache) with ``pread`` and ``pwrite`` at any
    alignment. Requests within one sector share a preallocated buffer; a lock serialises them
    (and every read-modify-write, so two never race on one sector)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, mode)
        self._sector = mmap.mmap(-1, DIRECT_SECTOR_SIZE)
        self._lock = threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        """``length`` bytes at ``offset``; zeros beyond the end of the file."""
        if length <= 0:
            return b""
        start, end = span(offset, length)
        lo = offset - start
        with self._lock:
            if end - start == DIRECT_SECTOR_SIZE:
                buf = self._sector
                buf[:] = bytes(DIRECT_SECTOR_SIZE)
            else:
                buf = mmap.mmap(-1, end - start)
            try:
                pread_aligned(self.fd, buf, start)
                data = buf[lo : lo + length]
            finally:
                if buf is not self._sector:
                    buf.close()
        return data

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        if not len(data):
            return
        start, end = span(offset, len(data))
        with self._lock:
            one = end - start == DIRECT_SECTOR_SIZE
            buf = self._sector if one else mmap.mmap(-1, end - start)
            try:
                if start != offset or end != offset + len(data):
                    if one:
                        buf[:] = bytes(DIRECT_SECTOR_SIZE)
                    pread_aligned(self.fd, buf, start)  # the edge sectors keep their bytes
                buf[offset - start : offset - start + len(data)] = data
                pwrite_aligned(self.fd, buf, start)
            finally:
                if not one:
                    buf.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._sector.close()
