"""Exclusive ownership of a data directory (an flock on ``LOCK``).

``flock`` rather than POSIX ``lockf``: POSIX record locks belong to the process, so a second
open in the same process would succeed and closing it would silently drop the first lock. An
flock belongs to one open file description, so a second opener is refused whoever it is.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from faster_backend.engine.errors import EngineError

LOCK_NAME = "LOCK"


class DataDirLockedError(EngineError):
    """Another process has the data directory open."""

    def __init__(self, path: Path, holder_pid: int | None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        who = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"data directory {path} is locked by {who}; only one process may open it."
            " Run `faster-backend serve --data-dir ...` once and connect to it over RESP"
            " (e.g. LOCATION='redis://127.0.0.1:6379/0') to share a store between processes."
        )


class DataDir:
    """A created-if-missing directory held under an exclusive lock until ``release``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLockedError(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    @property
    def locked(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
