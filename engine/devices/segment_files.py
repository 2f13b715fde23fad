"""Open segment files, their dirty state, and safe deletion while I/O may be in flight."""

from __future__ import annotations

import errno
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import xxhash

from faster_backend.engine.devices.errors import (
    AddressTruncatedError,
    DeviceFormatError,
    DeviceIOError,
)

_BEGIN_MAGIC = b"FBDEVBEG"
_BEGIN = struct.Struct("<8sIQQ")  # magic, version, begin segment, xxh3 of the rest


class Segment:
    """One open segment file. Its descriptor is closed when the last reference goes away.

    Whoever uses ``fd`` holds the ``Segment`` for the duration of the call, so the descriptor
    number cannot be closed and reused for another file under a running ``pread`` (which would
    read, or worse write, the wrong file) even when ``truncate`` dropped the segment meanwhile.
    CPython's reference counting makes that the bookkeeping: no lock, no in-flight counter.
    """

    __slots__ = ("fd", "number")

    def __init__(self, number: int, fd: int) -> None:
        self.number = number
        self.fd = fd

    def close(self, _close: Callable[[int], None] = os.close) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _close(fd)

    def __del__(self) -> None:
        self.close()


def pread_rest(fd: int, data: bytes, length: int, offset: int) -> bytes:
    """Continue a short ``pread`` of ``length`` bytes at ``offset`` that returned ``data``.

    A short read is the end of the file: the rest was never written and reads as zeros.
    """
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            return data + bytes(length - len(data))
        data += more
    return data


class SegmentFiles:
    """The segment files ``<directory>/<name>.<n>``, opened on first use.

    ``get`` (reads) is lock-free: a dict lookup of an already open segment. Opening, marking
    written segments dirty and truncating take the lock.
    """

    def __init__(self, directory: Path, name: str, extra_flags: int = 0) -> None:
        self.directory = directory
        self.name = name
        self.extra_flags = extra_flags
        directory.mkdir(parents=True, exist_ok=True)
        # Open segments by number; readers look them up without the lock (``get``).
        self.open: dict[int, Segment] = {}
        self._dirty: set[int] = set()
        self._dir_dirty = False
        self._lock = threading.Lock()
        self.begin_segment = self._load_begin()
        if any(segment < self.begin_segment for segment in self.existing()):
            self.truncate(self.begin_segment, persist=False)  # finish an interrupted truncate

    def path(self, segment: int) -> Path:
        return self.directory / f"{self.name}.{segment}"

    def existing(self) -> list[int]:
        prefix = self.name + "."
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
                found.append(int(entry.name[len(prefix) :]))
        return sorted(found)

    def get(self, segment: int) -> Segment | None:
        """The open segment for reading (``None`` if it has no file); hold it while using ``fd``.

        ``AddressTruncatedError`` below the begin segment. A segment truncated after this call
        stays readable through the returned object (its file is unlinked, its bytes intact).
        """
        found = self.open.get(segment)  # a dict lookup is atomic under the GIL: no lock
        if found is not None:
            return found
        return self.acquire(segment, create=False)

    def acquire(self, segment: int, create: bool) -> Segment | None:
        """The segment (``None`` if it has no file and ``create`` is false); writers pass
        ``create=True``, which also marks it dirty for the next ``take_dirty``."""
        with self._lock:
            if segment < self.begin_segment:
                raise AddressTruncatedError(
                    f"segment {segment} ({self.path(segment)}) was truncated; the device"
                    f" begins at segment {self.begin_segment}"
                )
            found = self.open.get(segment)
            if found is None:
                found = self._open(segment, create)
                if found is None:
                    return None
            if create:
                self._dirty.add(segment)
            return found

    def _open(self, segment: int, create: bool) -> Segment | None:
        path = self.path(segment)
        flags = os.O_RDWR | os.O_CLOEXEC | self.extra_flags
        try:
            if create:
                existed = path.exists()
                fd = os.open(path, flags | os.O_CREAT, 0o644)
                if not existed:
                    self._dir_dirty = True
            else:
                fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            message = f"cannot open segment file {path}: {exc.strerror}"
            raise DeviceIOError(exc.errno or errno.EIO, message, str(path)) from exc
        found = Segment(segment, fd)
        self.open[segment] = found
        return found

    def take_dirty(self) -> tuple[list[Segment], bool]:
        """Segments written since the last call and whether the directory has new entries."""
        with self._lock:
            found = [self.open[s] for s in self._dirty if s in self.open]
            self._dirty.clear()
            dir_dirty, self._dir_dirty = self._dir_dirty, False
            return found, dir_dirty

    def restore_dirty(self, segments_dir_dirty: bool) -> None:
        """After a failed fsync: the next flush must try the directory again."""
        with self._lock:
            self._dir_dirty = self._dir_dirty or segments_dir_dirty
            self._dirty.update(self.open)

    def sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def begin_path(self) -> Path:
        return self.directory / f"{self.name}.begin"

    def _load_begin(self) -> int:
        """The truncation point recorded by the last ``truncate`` (0 if there was none)."""
        try:
            raw = self.begin_path.read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) != _BEGIN.size:
            raise DeviceFormatError(
                f"{self.begin_path}: expected {_BEGIN.size} bytes, found {len(raw)} (offset 0)"
            )
        magic, version, segment, check = _BEGIN.unpack(raw)
        if magic != _BEGIN_MAGIC or version != 1:
            raise DeviceFormatError(f"{self.begin_path}: bad magic or version at offset 0")
        if check != xxhash.xxh3_64_intdigest(raw[: _BEGIN.size - 8]):
            raise DeviceFormatError(f"{self.begin_path}: checksum mismatch at offset 0")
        return int(segment)

    def _store_begin(self, segment: int) -> None:
        head = struct.pack("<8sIQ", _BEGIN_MAGIC, 1, segment)
        raw = head + struct.pack("<Q", xxhash.xxh3_64_intdigest(head))
        tmp = self.begin_path.with_suffix(".begin.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.begin_path)
        self.sync_directory()

    def truncate(self, below_segment: int, persist: bool = True) -> int:
        """Delete every segment numbered below ``below_segment``; return how many files went.

        The new begin is recorded durably first, so a crash never resurrects deleted segments
        as zeros nor forgets the truncation.
        """
        deleted = 0
        with self._lock:
            if persist:
                if below_segment <= self.begin_segment:
                    return 0
                self._store_begin(below_segment)
            for segment in self.existing():
                if segment >= below_segment:
                    break
                # Closed when no reader holds it any more (see Segment).
                self.open.pop(segment, None)
                self._dirty.discard(segment)
                try:
                    self.path(segment).unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
            self.begin_segment = below_segment
        if deleted:
            self.sync_directory()
        return deleted

    def close(self) -> None:
        with self._lock:
            for found in self.open.values():
                found.close()
            self.open.clear()
