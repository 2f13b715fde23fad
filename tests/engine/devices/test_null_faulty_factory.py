"""NullDevice, FaultyDevice and open_device."""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
from pathlib import Path

import pytest

from faster_backend.engine.devices import (
    AUTO_KIND,
    DeviceClosedError,
    DeviceFormatError,
    Fault,
    FaultyDevice,
    FileDevice,
    InjectedFaultError,
    IoUringDevice,
    IoUringUnavailableError,
    NullDevice,
    NullDeviceReadError,
    ShortWriteError,
    StorageDevice,
    TornWriteError,
    factory,
    io_uring_status,
    open_device,
)

from .conftest import SEGMENT, DeviceFactory

# -- NullDevice --------------------------------------------------------------------------------


def test_null_device_discards_writes_and_refuses_reads() -> None:
    dev = NullDevice()
    dev.write(0, b"abc")
    dev.write(1 << 40, bytearray(100))
    assert dev.stats.writes == 2 and dev.stats.bytes_written == 103
    with pytest.raises(NullDeviceReadError, match="keeps nothing"):
        dev.read(0, 3)
    got: list[object] = []
    dev.write_async(5, b"xy", lambda r, e: got.append((r, e)))
    dev.read_async(5, 2, lambda r, e: got.append((r, type(e))))
    assert got == [(2, None), (None, NullDeviceReadError)]
    dev.flush()
    dev.flush_async(lambda r, e: got.append(("flush", e)))
    assert got[-1] == ("flush", None)
    assert dev.truncate(1 << 30) == 0

    async def main() -> None:
        assert await dev.awrite(0, b"q") == 1
        await dev.aread(0, 1)

    with pytest.raises(NullDeviceReadError):
        asyncio.run(main())
    dev.close()
    with pytest.raises(DeviceClosedError):
        dev.write(0, b"x")


# -- FaultyDevice ------------------------------------------------------------------------------


@pytest.fixture
def faulty(make_device: DeviceFactory, tmp_path: Path) -> FaultyDevice:
    dev = FaultyDevice(make_device(tmp_path), seed=7)
    yield dev  # type: ignore[misc]
    dev.close()


def test_eio_on_read_and_write(faulty: FaultyDevice) -> None:
    faulty.write(0, b"good")
    fault = faulty.add_fault(Fault("eio", count=2))
    with pytest.raises(InjectedFaultError) as info:
        faulty.write(SEGMENT + 10, b"bad")
    assert info.value.errno == errno.EIO
    assert "log.1 offset 10" in str(info.value)
    with pytest.raises(OSError):  # also an OSError for callers that catch those
        faulty.read(0, 4)
    assert fault.fired == 2
    assert faulty.read(0, 4) == b"good"  # the rule is spent
    assert faulty.read(SEGMENT + 10, 3) == bytes(3)  # the failed write left nothing
    assert [i.op for i in faulty.injected] == ["write", "read"]


def test_enospc_only_on_writes(faulty: FaultyDevice) -> None:
    faulty.add_fault(Fault("enospc"))
    with pytest.raises(InjectedFaultError) as info:
        faulty.write(0, b"x")
    assert info.value.errno == errno.ENOSPC
    assert faulty.read(0, 1) == b"\0"


def test_short_write_reports_what_reached_the_device(faulty: FaultyDevice) -> None:
    faulty.add_fault(Fault("short_write", count=1))
    data = bytes(range(200))
    with pytest.raises(ShortWriteError) as info:
        faulty.write(100, data)
    written = info.value.written
    assert 0 <= written < len(data)
    assert faulty.read(100, 200) == data[:written] + bytes(200 - written)


def test_torn_write_leaves_some_sectors(faulty: FaultyDevice) -> None:
    sector = faulty.sector_size
    faulty.add_fault(Fault("torn_write", count=1))
    data = bytes([1]) * (8 * sector)
    with pytest.raises(TornWriteError, match="sectors"):
        faulty.write(0, data)
    back = faulty.read(0, len(data))
    sectors = [back[i : i + sector] for i in range(0, len(back), sector)]
    assert all(s in (bytes(sector), bytes([1]) * sector) for s in sectors)
    assert sectors.count(bytes([1]) * sector) < 8  # never the whole page


def test_address_range_after_and_probability_are_deterministic(
    make_device: DeviceFactory, tmp_path: Path
) -> None:
    def run(seed: int) -> list[int]:
        dev = FaultyDevice(make_device(tmp_path / str(seed)), seed=seed)
        dev.add_fault(Fault("eio", probability=0.5, address_range=(1000, 2000), after=2))
        failed = []
        try:
            for i in range(40):
                address = 900 + i * 50
                try:
                    dev.write(address, b"x" * 10)
                except InjectedFaultError:
                    failed.append(address)
        finally:
            dev.close()
        return failed

    first = run(3)
    assert first == run(3)  # same seed, same faults
    assert all(991 <= a < 2000 for a in first)
    assert 1000 not in first and 950 not in first  # the first two matches are skipped
    assert first


def test_delay_slows_but_succeeds(faulty: FaultyDevice) -> None:
    faulty.add_fault(Fault("delay", delay=0.05, count=1))
    start = time.monotonic()
    faulty.write(0, b"slow")
    assert time.monotonic() - start >= 0.04
    assert faulty.read(0, 4) == b"slow"


def test_flush_fault(faulty: FaultyDevice) -> None:
    faulty.write(0, b"x")
    faulty.add_fault(Fault("eio", ops=frozenset({"flush"}), count=1))
    with pytest.raises(InjectedFaultError, match="fsync"):
        faulty.flush()
    faulty.flush()
    faulty.add_fault(Fault("eio", ops=frozenset({"flush"}), count=1))
    done = threading.Event()
    got: list[object] = []
    faulty.flush_async(lambda r, e: (got.append(type(e)), done.set()))
    assert done.wait(10)
    assert got == [InjectedFaultError]


def test_async_faults_reach_the_callback(faulty: FaultyDevice) -> None:
    faulty.add_fault(Fault("eio", count=1, ops=frozenset({"read"})))
    done = threading.Event()
    got: list[object] = []

    def on_read(result: bytes | None, error: BaseException | None) -> None:
        got.append((result, type(error)))
        done.set()

    faulty.read_async(0, 4, on_read)
    assert done.wait(10)
    assert got == [(None, InjectedFaultError)]

    async def main() -> None:
        faulty.add_fault(Fault("enospc", count=1))
        await faulty.awrite(0, b"abc")

    with pytest.raises(InjectedFaultError):
        asyncio.run(main())


def test_invalid_fault_rules() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("bitrot")
    with pytest.raises(ValueError, match="operations"):
        Fault("eio", ops=frozenset({"seek"}))
    with pytest.raises(ValueError, match="probability"):
        Fault("eio", probability=2.0)


# -- open_device -------------------------------------------------------------------------------


def test_open_device_kinds(tmp_path: Path) -> None:
    opened: list[StorageDevice] = [
        open_device("auto", tmp_path / "a"),
        open_device("file", tmp_path / "f"),
        open_device("null"),
    ]
    try:
        assert opened[0].kind == AUTO_KIND
        assert isinstance(opened[1], FileDevice)
        assert isinstance(opened[2], NullDevice)
    finally:
        for dev in opened:
            dev.close()
    with pytest.raises(ValueError, match="unknown device kind"):
        open_device("tape", tmp_path)
    with pytest.raises(ValueError, match="directory"):
        open_device("file")


@pytest.mark.skipif(not io_uring_status()[0], reason=io_uring_status()[1])
def test_open_device_io_uring(tmp_path: Path) -> None:
    dev = open_device("io_uring", tmp_path, segment_size=SEGMENT)
    try:
        assert isinstance(dev, IoUringDevice)
    finally:
        dev.close()


def test_io_uring_refused_falls_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from faster_backend.engine.devices import io_uring_device

    def refuse() -> object:
        raise io_uring_device.IoUringUnavailableError("the kernel refuses io_uring: EPERM")

    monkeypatch.setattr(io_uring_device, "_load_liburing", refuse)
    monkeypatch.setattr(factory, "_warned", False)
    with caplog.at_level(logging.WARNING):
        first = open_device("io_uring", tmp_path / "1")
        second = open_device("io_uring", tmp_path / "2")
    try:
        assert isinstance(first, FileDevice) and isinstance(second, FileDevice)
        warnings = [r for r in caplog.records if "io_uring is unavailable" in r.getMessage()]
        assert len(warnings) == 1
        assert "EPERM" in warnings[0].getMessage()
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(not io_uring_status()[0], reason=io_uring_status()[1])
def test_kernel_refusing_io_uring_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import liburing

    def refuse(entries: int, ring: object, *args: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    # what the kernel answers with kernel.io_uring_disabled=2 or a seccomp filter
    monkeypatch.setattr(liburing, "io_uring_queue_init", refuse)
    with pytest.raises(IoUringUnavailableError, match="refuses io_uring"):
        IoUringDevice(tmp_path / "direct")
    monkeypatch.setattr(factory, "_warned", False)
    with caplog.at_level(logging.WARNING):
        dev = open_device("io_uring", tmp_path / "auto")
    try:
        assert isinstance(dev, FileDevice)
        assert any("Operation not permitted" in r.getMessage() for r in caplog.records)
    finally:
        dev.close()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_begin_marker_is_reported(tmp_path: Path, damage: str) -> None:
    dev = FileDevice(tmp_path, segment_size=SEGMENT)
    dev.write(0, bytes(3 * SEGMENT))
    dev.truncate(2 * SEGMENT)
    dev.close()
    marker = tmp_path / "log.begin"
    raw = bytearray(marker.read_bytes())
    if damage == "flip":
        raw[12] ^= 1
    else:
        del raw[-3:]
    marker.write_bytes(bytes(raw))
    with pytest.raises(DeviceFormatError, match=r"log\.begin"):
        FileDevice(tmp_path, segment_size=SEGMENT)
