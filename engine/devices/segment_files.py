"""Open segment files, their dirty state, and safe deletion while I/O may be in flight."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from faster_backend.engine.devices.errors import AddressTruncatedError, DeviceIOError


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
        existing = self.existing()
        self.begin_segment = existing[0] if existing else 0

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

    def truncate(self, below_segment: int) -> int:
        """Delete every segment numbered below ``below_segment``; return how many files went."""
        deleted = 0
        with self._lock:
            if below_segment <= self.begin_segment:
                return 0
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
