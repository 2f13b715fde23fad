"""``open_device``: pick and open a device by kind, falling back from io_uring to files."""

from __future__ import annotations

import logging
import os
import threading
from typing import Literal

from faster_backend.engine.devices.base import DEFAULT_SEGMENT_SIZE, StorageDevice
from faster_backend.engine.devices.direct_file_device import DirectFileDevice
from faster_backend.engine.devices.errors import IoUringUnavailableError
from faster_backend.engine.devices.file_device import FileDevice
from faster_backend.engine.devices.io_uring_device import IoUringDevice
from faster_backend.engine.devices.null_device import NullDevice

log = logging.getLogger(__name__)

DeviceKind = Literal["auto", "file", "file_direct", "io_uring", "null"]
KINDS: tuple[str, ...] = ("auto", "file", "file_direct", "io_uring", "null")

#: What ``"auto"`` opens. bench/devices.py measured FileDevice ahead of IoUringDevice from
#: Python on page-cache reads and page writes (see docs/devices.md), so files win.
AUTO_KIND = "file"

_warned = False
_warn_lock = threading.Lock()


def open_device(
    kind: str = "auto",
    directory: str | os.PathLike[str] | None = None,
    *,
    name: str = "log",
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> StorageDevice:
    """Open a device of ``kind`` over ``directory``.

    ``"io_uring"`` falls back to ``FileDevice`` with one logged warning per process where the
    binding is missing or the kernel refuses io_uring. ``"file_direct"`` (O_DIRECT) raises
    ``DeviceError`` where the filesystem refuses O_DIRECT. ``"null"`` ignores ``directory``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "null":
        return NullDevice(segment_size=segment_size)
    if directory is None:
        raise ValueError(f"a {kind!r} device needs a directory")
    if kind == "auto":
        kind = AUTO_KIND
    if kind == "file_direct":
        return DirectFileDevice(directory, name=name, segment_size=segment_size)
    if kind == "io_uring":
        try:
            return IoUringDevice(directory, name=name, segment_size=segment_size)
        except IoUringUnavailableError as exc:
            _warn_fallback(str(exc))
    return FileDevice(directory, name=name, segment_size=segment_size)


def _warn_fallback(reason: str) -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    log.warning("io_uring is unavailable (%s); using FileDevice (pread/pwrite) instead", reason)
