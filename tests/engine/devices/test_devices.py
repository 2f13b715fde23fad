"""The device suite: every file-backed device kind must pass all of it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faster_backend.engine.devices import (
    AddressTruncatedError,
    DeviceClosedError,
    IoUringDevice,
    StorageDevice,
)

from .conftest import SEGMENT, DeviceFactory


def test_round_trip_and_zeros_for_unwritten(device: StorageDevice) -> None:
    device.write(100, b"hello world")
    assert device.read(100, 11) == b"hello world"
    assert device.read(95, 20) == bytes(5) + b"hello world" + bytes(4)
    # beyond anything written, in this segment and in one with no file at all
    assert device.read(2000, 50) == bytes(50)
    assert device.read(10 * SEGMENT + 7, 33) == bytes(33)
    assert device.read(0, 0) == b""
    assert device.stats.writes == 1
    assert device.stats.bytes_written == 11


def test_accepts_bytes_bytearray_and_memoryview(device: StorageDevice) -> None:
    page = bytearray(range(256)) * 4
    device.write(0, page)
    device.write(1024, bytes(page))
    device.write(2048, memoryview(page)[10:110])
    assert device.read(0, 1024) == page
    assert device.read(1024, 1024) == page
    assert device.read(2048, 100) == page[10:110]


def test_cross_segment_write_and_read(device: StorageDevice, tmp_path: Path) -> None:
    data = os.urandom(3 * SEGMENT + 123)
    address = SEGMENT - 50
    device.write(address, data)
    assert device.read(address, len(data)) == data
    assert device.read(SEGMENT - 10, 20) == data[40:60]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"log.{i}" for i in range(5)]
    # each file holds its slice of the address space
    assert (tmp_path / "log.1").read_bytes()[:50] == data[50:100]


def test_negative_address_is_rejected(device: StorageDevice) -> None:
    with pytest.raises(ValueError):
        device.write(-1, b"x")
    with pytest.raises(ValueError):
        device.read(-5, 3)


def test_async_callbacks_run_off_the_caller_thread(device: StorageDevice) -> None:
    done = threading.Event()
    seen: list[object] = []

    def on_write(result: int | None, error: BaseException | None) -> None:
        seen.append(("w", result, error, threading.current_thread() is threading.main_thread()))
        device.read_async(SEGMENT - 3, 6, on_read)

    def on_read(result: bytes | None, error: BaseException | None) -> None:
        seen.append(("r", result, error, threading.current_thread() is threading.main_thread()))
        done.set()

    device.write_async(SEGMENT - 3, b"abcdef", on_write)
    assert done.wait(10)
    assert seen == [("w", 6, None, False), ("r", b"abcdef", None, False)]


def test_async_read_error_reaches_the_callback(device: StorageDevice) -> None:
    device.write(2 * SEGMENT, b"x")
    device.truncate(2 * SEGMENT)
    done = threading.Event()
    got: list[object] = []

    def on_read(result: bytes | None, error: BaseException | None) -> None:
        got.extend([result, error])
        done.set()

    device.read_async(0, 10, on_read)
    assert done.wait(10)
    assert got[0] is None and isinstance(got[1], AddressTruncatedError)
    with pytest.raises(ValueError):
        device.read_async(-1, 10, on_read)  # bad arguments raise at once


def test_many_async_requests_in_flight(device: StorageDevice) -> None:
    count = 600  # more than an io_uring's 256 entries
    remaining = [count]
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def on_write(result: int | None, error: BaseException | None) -> None:
        if error is not None:
            errors.append(error)
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    for i in range(count):
        device.write_async(i * 16, i.to_bytes(16, "little"), on_write)
    assert done.wait(30)
    assert not errors
    results: dict[int, bytes] = {}
    remaining[0] = count
    done.clear()

    def reader(i: int) -> None:
        def on_read(result: bytes | None, error: BaseException | None) -> None:
            assert error is None and result is not None
            with lock:
                results[i] = result
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        device.read_async(i * 16, 16, on_read)

    for i in range(count):
        reader(i)
    assert done.wait(30)
    assert all(results[i] == i.to_bytes(16, "little") for i in range(count))


def test_asyncio_does_not_block_the_loop(device: StorageDevice) -> None:
    async def main() -> tuple[bytes, int, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        data = os.urandom(5 * SEGMENT)
        written = 0
        for _ in range(20):
            written = await device.awrite(SEGMENT // 2, data)
        result = await device.aread(SEGMENT // 2, len(data))
        stop.set()
        await task
        assert result == data
        return result, written, ticks

    _, written, ticks = asyncio.run(main())
    assert written == 5 * SEGMENT
    assert ticks > 0


def test_asyncio_error_is_raised_in_the_coroutine(device: StorageDevice) -> None:
    device.write(3 * SEGMENT, b"x")
    device.truncate(3 * SEGMENT)

    async def main() -> None:
        await device.aread(10, 10)

    with pytest.raises(AddressTruncatedError):
        asyncio.run(main())


def test_concurrent_threads(device: StorageDevice) -> None:
    errors: list[BaseException] = []
    per_thread = 200

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                address = (i * 4 + t) * 100  # interleaved, disjoint ranges across segments
                payload = bytes([t + 1]) * 100
                device.write(address, payload)
                assert device.read(address, 100) == payload
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = device.read(0, 4 * per_thread * 100)
    for i in range(per_thread):
        for t in range(4):
            start = (i * 4 + t) * 100
            assert everything[start : start + 100] == bytes([t + 1]) * 100


def test_flush_syncs_written_segments(device: StorageDevice) -> None:
    device.flush()
    assert device.stats.fsyncs == 0  # nothing written yet
    device.write(10, b"a")
    device.write(SEGMENT + 10, b"b")
    device.flush()
    # two segment files plus the directory that gained them
    assert device.stats.fsyncs == 3
    device.flush()
    assert device.stats.fsyncs == 3  # nothing new was written
    device.write(20, b"c")
    device.flush()
    assert device.stats.fsyncs == 4


def test_truncate_deletes_whole_segments_below(device: StorageDevice, tmp_path: Path) -> None:
    device.write(0, os.urandom(4 * SEGMENT))
    assert device.truncate(2 * SEGMENT + 100) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.2", "log.3", "log.begin"]
    with pytest.raises(AddressTruncatedError, match=r"log\.1"):
        device.read(SEGMENT, 10)
    assert len(device.read(2 * SEGMENT, 10)) == 10
    assert device.truncate(SEGMENT) == 0  # already gone
    assert device.stats.segments_deleted == 2


def test_truncate_closes_a_segment_only_when_no_reader_holds_it(
    device: StorageDevice, tmp_path: Path
) -> None:
    data = os.urandom(2 * SEGMENT)
    device.write(SEGMENT, data[SEGMENT:])
    device.write(0, data[:SEGMENT])  # segment 0 is the last one a device thread handled
    files = device.files  # type: ignore[attr-defined]
    held = files.get(0)  # what a read in progress holds while its pread runs
    fd = held.fd
    assert device.truncate(SEGMENT) == 1
    assert not (tmp_path / "log.0").exists()
    stat = os.fstat(fd)  # still open (the number cannot be reused), the file unlinked
    assert stat.st_nlink == 0 and stat.st_size == SEGMENT
    with pytest.raises(AddressTruncatedError):
        device.read(0, 10)
    del held  # the last reference: the descriptor is closed now (io_uring: once its ring
    # thread has let go of the last write it completed, which it does before sleeping)

    def still_open() -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").endswith("log.0 (deleted)")
        except FileNotFoundError:
            return False  # closed (or the number was reused for another file)

    deadline = time.monotonic() + 10
    while still_open() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not still_open()


def test_reads_racing_truncation_are_right_or_truncated(device: StorageDevice) -> None:
    segments = 24
    for n in range(segments):
        device.write(n * SEGMENT, bytes([n]) * SEGMENT)
    wrong: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        n = seed
        while not stop.is_set():
            n = (n * 7 + 3) % segments
            try:
                got = device.read(n * SEGMENT + 100, 64)
            except AddressTruncatedError:
                continue
            if got != bytes([n]) * 64:
                wrong.append((n, got))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        for n in range(1, segments):
            device.truncate(n * SEGMENT)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert wrong == []
    assert device.read((segments - 1) * SEGMENT, 4) == bytes([segments - 1]) * 4


def test_data_persists_across_reopen(make_device: DeviceFactory, tmp_path: Path) -> None:
    data = os.urandom(2 * SEGMENT)
    dev = make_device(tmp_path)
    dev.write(SEGMENT + 5, data)
    dev.flush()
    dev.truncate(SEGMENT)
    dev.close()
    dev = make_device(tmp_path)
    try:
        assert dev.read(SEGMENT + 5, len(data)) == data
        assert dev.begin_segment == 1
        end = SEGMENT + 5 + len(data)
        sector = dev.sector_size  # O_DIRECT files grow in whole sectors
        assert dev.end_address() in (end, -(-end // sector) * sector)
        with pytest.raises(AddressTruncatedError):
            dev.read(0, 1)
    finally:
        dev.close()


def test_closed_device_refuses_io(make_device: DeviceFactory, tmp_path: Path) -> None:
    dev = make_device(tmp_path)
    dev.write(0, b"x")
    dev.close()
    dev.close()  # idempotent
    with pytest.raises(DeviceClosedError):
        dev.read(0, 1)
    with pytest.raises(DeviceClosedError):
        dev.write(0, b"x")
    with pytest.raises(DeviceClosedError):
        dev.write_async(0, b"x", lambda r, e: None)
    with pytest.raises(DeviceClosedError):
        dev.read_async(0, 1, lambda r, e: None)


def test_close_completes_pending_writes(make_device: DeviceFactory, tmp_path: Path) -> None:
    dev = make_device(tmp_path)
    results: list[int | None] = []
    for i in range(50):
        dev.write_async(i * 1000, b"z" * 1000, lambda r, e: results.append(r))
    dev.close()
    assert results == [1000] * 50
    dev = make_device(tmp_path)
    try:
        assert dev.read(0, 50_000) == b"z" * 50_000
    finally:
        dev.close()


def test_names_keep_devices_apart(make_device: DeviceFactory, tmp_path: Path) -> None:
    a = make_device(tmp_path, name="a")
    b = make_device(tmp_path, name="b")
    try:
        a.write(0, b"from a")
        b.write(0, b"from b")
        assert a.read(0, 6) == b"from a"
        assert b.read(0, 6) == b"from b"
    finally:
        a.close()
        b.close()


def test_invalid_configuration(tmp_path: Path) -> None:
    from faster_backend.engine.devices import FileDevice

    with pytest.raises(ValueError, match="segment_size"):
        FileDevice(tmp_path, segment_size=1000)
    with pytest.raises(ValueError, match="name"):
        FileDevice(tmp_path, name="a/b")


def test_io_uring_registers_its_ring(make_device: DeviceFactory, tmp_path: Path) -> None:
    dev = make_device(tmp_path)
    try:
        if isinstance(dev, IoUringDevice):
            assert dev.ring_fd_registered
            # In a completion callback a blocking read works (a pread, not the ring); a
            # blocking write would deadlock waiting for the ring: refused clearly.
            done = threading.Event()
            errors: list[BaseException] = []
            reads: list[bytes] = []

            def on_write(result: int | None, error: BaseException | None) -> None:
                try:
                    reads.append(dev.read(0, 2))
                    dev.write(8, b"y")
                except RuntimeError as exc:
                    errors.append(exc)
                done.set()

            dev.write_async(0, b"x", on_write)
            assert done.wait(10)
            assert reads == [b"x\0"]
            assert errors and "deadlock" in str(errors[0])
            assert dev.read(8, 1) == b"\0"
    finally:
        dev.close()


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("w"), st.integers(0, 6 * SEGMENT), st.binary(min_size=1, max_size=2 * SEGMENT)
        ),
        st.tuples(st.just("r"), st.integers(0, 7 * SEGMENT), st.integers(0, 2 * SEGMENT)),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_random_io_matches_a_bytearray_model(
    make_device: DeviceFactory,
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[object, ...]],
) -> None:
    directory = tmp_path_factory.mktemp("model")
    model = bytearray()
    dev = make_device(directory)
    try:
        for op in ops:
            if op[0] == "w":
                _, address, data = op
                assert isinstance(address, int) and isinstance(data, bytes)
                if len(model) < address + len(data):
                    model.extend(bytes(address + len(data) - len(model)))
                model[address : address + len(data)] = data
                dev.write(address, data)
            else:
                _, address, length = op
                assert isinstance(address, int) and isinstance(length, int)
                expected = bytes(model[address : address + length])
                expected += bytes(length - len(expected))
                assert dev.read(address, length) == expected
        dev.close()
        dev = make_device(directory)  # and the same after a reopen
        assert dev.read(0, len(model)) == bytes(model)
    finally:
        dev.close()


def test_read_into_fills_a_caller_buffer(device: StorageDevice) -> None:
    data = os.urandom(SEGMENT + 300)
    device.write(SEGMENT - 100, data)
    whole = bytearray(len(data))
    device.read_into(SEGMENT - 100, whole)
    assert whole == data
    page = bytearray(b"\xff" * 64)
    device.read_into(SEGMENT + 250, memoryview(page)[8:40])  # unaligned, into a view
    assert page[8:40] == data[350:382] and page[:8] == b"\xff" * 8
    device.read_into(20 * SEGMENT, page)  # never written: zeros
    assert page == bytes(64)


def test_unaligned_writes_next_to_each_other(device: StorageDevice) -> None:
    # sector-sized devices patch the edges of unaligned writes; neighbours must survive
    threads = [
        threading.Thread(target=device.write, args=(i * 100 + 7, bytes([i + 1]) * 100))
        for i in range(30)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    back = device.read(7, 3000)
    assert back == b"".join(bytes([i + 1]) * 100 for i in range(30))


def test_a_failing_callback_does_not_stop_the_device(
    device: StorageDevice, caplog: pytest.LogCaptureFixture
) -> None:
    device.write(0, b"abc")
    done = threading.Event()

    def bad(result: bytes | None, error: BaseException | None) -> None:
        done.set()
        raise RuntimeError("callback bug")

    device.read_async(0, 3, bad)
    assert done.wait(10)
    assert device.read(0, 3) == b"abc"  # still serving


def test_flush_async_and_aflush(device: StorageDevice) -> None:
    device.write(10, b"a")
    device.write(2 * SEGMENT, b"b")
    done = threading.Event()
    got: list[object] = []

    def on_flush(result: None, error: BaseException | None) -> None:
        got.append((result, error))
        done.set()

    device.flush_async(on_flush)
    assert done.wait(10)
    assert got == [(None, None)]
    assert device.stats.fsyncs == 3  # two segment files and the directory
    device.write(20, b"c")

    async def main() -> None:
        await device.aflush()

    asyncio.run(main())
    assert device.stats.fsyncs == 4
