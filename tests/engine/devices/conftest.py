"""Device fixtures: one suite, parametrized over every device kind that applies."""

from __future__ import annotations

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

SEGMENT = 4096  # small segments so that cross-segment I/O and truncation happen

DeviceFactory = Callable[..., StorageDevice]

_IO_URING_OK, _IO_URING_WHY = io_uring_status()


def _probe_direct_io() -> tuple[bool, str]:
    """O_DIRECT where pytest puts its temporary directories (tmpfs refuses it)."""
    probe = Path(tempfile.mkdtemp(prefix="faster-direct-probe-"))
    try:
        return direct_io_status(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


_DIRECT_OK, _DIRECT_WHY = _probe_direct_io()


def _factory(kind: str) -> DeviceFactory:
    def make(directory: Path, segment_size: int = SEGMENT, name: str = "log") -> StorageDevice:
        if kind == "file":
            return FileDevice(directory, name=name, segment_size=segment_size)
        if kind == "file_direct":
            return DirectFileDevice(directory, name=name, segment_size=segment_size)
        return IoUringDevice(directory, name=name, segment_size=segment_size)

    return make


@pytest.fixture(
    params=[
        "file",
        pytest.param("file_direct", marks=pytest.mark.skipif(not _DIRECT_OK, reason=_DIRECT_WHY)),
        pytest.param(
            "io_uring",
            marks=pytest.mark.skipif(not _IO_URING_OK, reason=_IO_URING_WHY),
        ),
    ]
)
def make_device(request: pytest.FixtureRequest) -> DeviceFactory:
    """A constructor for the file-backed device kind under test."""
    factory: DeviceFactory = _factory(request.param)
    return factory


@pytest.fixture
def device(make_device: DeviceFactory, tmp_path: Path) -> Iterator[StorageDevice]:
    dev = make_device(tmp_path)
    yield dev
    dev.close()
