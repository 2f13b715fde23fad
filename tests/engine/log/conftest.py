"""FasterLog fixtures: logs over each file-backed device kind, small pages to cross them often."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faster_backend.engine.devices import (
    DirectFileDevice,
    FileDevice,
    IoUringDevice,
    StorageDevice,
    direct_io_status,
    io_uring_status,
)
from faster_backend.engine.log import FasterLog

PAGE = 4096
SEGMENT = 4 * PAGE
MEMORY = 4 * PAGE

_IO_URING_OK, _IO_URING_WHY = io_uring_status()


def _probe_direct_io() -> tuple[bool, str]:
    """O_DIRECT where pytest puts its temporary directories (tmpfs refuses it)."""
    probe = Path(tempfile.mkdtemp(prefix="faster-direct-probe-"))
    try:
        return direct_io_status(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


_DIRECT_OK, _DIRECT_WHY = _probe_direct_io()


class LogOpener:
    """Opens logs over a device of one kind and closes everything at the end of the test."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._open: list[tuple[FasterLog, StorageDevice]] = []

    def device(self, directory: Path) -> StorageDevice:
        if self.kind == "io_uring":
            return IoUringDevice(directory, segment_size=SEGMENT)
        if self.kind == "file_direct":
            return DirectFileDevice(directory, segment_size=SEGMENT)
        return FileDevice(directory, segment_size=SEGMENT)

    def __call__(self, directory: Path, **kwargs: object) -> FasterLog:
        kwargs.setdefault("page_size", PAGE)
        kwargs.setdefault("memory_size", MEMORY)
        device = self.device(directory)
        try:
            log = FasterLog(device, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            device.close()
            raise
        self._open.append((log, device))
        return log

    def close(self, log: FasterLog, commit: bool = True) -> None:
        for pair in self._open:
            if pair[0] is log:
                try:
                    log.close(commit=commit)
                finally:
                    pair[1].close()
                self._open.remove(pair)
                return

    def close_all(self) -> None:
        for log, device in self._open:
            with contextlib.suppress(Exception):
                log.close(commit=False)
            device.close()
        self._open.clear()


@pytest.fixture(
    params=[
        "file",
        pytest.param("io_uring", marks=pytest.mark.skipif(not _IO_URING_OK, reason=_IO_URING_WHY)),
    ]
)
def open_log(request: pytest.FixtureRequest) -> Iterator[LogOpener]:
    opener = LogOpener(request.param)
    yield opener
    opener.close_all()


def payload(i: int) -> bytes:
    """A deterministic entry of varying size (0 to ~1.2 KiB) for sequence number ``i``."""
    return i.to_bytes(8, "little") + bytes([i % 251]) * ((i * 37) % 1200)


EntryMaker = Callable[[int], bytes]
