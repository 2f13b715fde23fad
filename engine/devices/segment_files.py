"""Open segment files, their dirty state, and safe deletion while I/O may be in flight."""

from __future__ import annotations

import errno
import os
import struct
import threading
from pathlib import Path

import xxhash

from faster_backend.engine.devices.errors import (
    AddressTruncatedError,
    DeviceFormatError,
    DeviceIOError,
)

_BEGIN_MAGIC = b"FBDEVBEG"
_BEGIN = struct.Struct("<8sIQQ")  # magic, version, begin segment, xxh3 of the rest


class SegmentFiles:
    """File descriptors of ``<directory>/<name>.<n>``, opened on first use.

    Every I/O brackets its use of a descriptor with ``acquire``/``release``. ``truncate``
    unlinks files at once but closes their descriptors only when no I/O is in flight, so a
    descriptor number is never reused under a running ``pread`` (which would read another file).
    """

    def __init__(self, directory: Path, name: str, extra_flags: int = 0) -> None:
        self.directory = directory
        self.name = name
        self.extra_flags = extra_flags
        directory.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._dir_dirty = False
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retired: list[int] = []
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

    def acquire(self, segment: int, create: bool) -> int | None:
        """The descriptor of ``segment`` (``None`` if it has no file and ``create`` is false)."""
        with self._lock:
            if segment < self.begin_segment:
                raise AddressTruncatedError(
                    f"segment {segment} ({self.path(segment)}) was truncated; the device"
                    f" begins at segment {self.begin_segment}"
                )
            fd = self._fds.get(segment)
            if fd is None:
                fd = self._open(segment, create)
                if fd is None:
                    return None
            self._in_flight += 1
            if create:
                self._dirty.add(segment)
            return fd

    def _open(self, segment: int, create: bool) -> int | None:
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
        self._fds[segment] = fd
        return fd

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0 and self._retired:
                self._close_retired()

    def mark_dirty(self, segment: int) -> None:
        with self._lock:
            self._dirty.add(segment)

    def take_dirty(self) -> tuple[list[int], bool]:
        """Descriptors written since the last call (held in flight) and whether the dir is new.

        The caller fsyncs them and then calls ``release`` once per descriptor.
        """
        with self._lock:
            fds = [self._fds[s] for s in self._dirty if s in self._fds]
            self._in_flight += len(fds)
            self._dirty.clear()
            dir_dirty, self._dir_dirty = self._dir_dirty, False
            return fds, dir_dirty

    def restore_dirty(self, segments_dir_dirty: bool) -> None:
        """After a failed fsync: the next flush must try the directory again."""
        with self._lock:
            self._dir_dirty = self._dir_dirty or segments_dir_dirty
            self._dirty.update(self._fds)

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
                fd = self._fds.pop(segment, None)
                if fd is not None:
                    self._retired.append(fd)
                self._dirty.discard(segment)
                try:
                    self.path(segment).unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
            self.begin_segment = below_segment
            if self._in_flight == 0:
                self._close_retired()
        if deleted:
            self.sync_directory()
        return deleted

    def _close_retired(self) -> None:
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._close_retired()
