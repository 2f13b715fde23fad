"""``NullDevice``: the device of a pure in-memory store; writes vanish, reads are an error."""

from __future__ import annotations

from faster_backend.engine.devices.base import (
    DEFAULT_SEGMENT_SIZE,
    Buffer,
    Callback,
    ReadCallback,
    StorageDevice,
    WriteCallback,
)
from faster_backend.engine.devices.errors import NullDeviceReadError


class NullDevice(StorageDevice):
    """Discards every write (counted in ``stats``); any read raises ``NullDeviceReadError``.

    Asynchronous callbacks run at once on the calling thread.
    """

    kind = "null"

    def __init__(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        super().__init__(None, "null", segment_size)

    def write(self, address: int, data: Buffer) -> None:
        self._check_open()
        if address < 0:
            raise ValueError(f"negative address {address}")
        self._count(writes=1, nwritten=memoryview(data).nbytes)

    def read(self, address: int, length: int) -> bytes:
        self._check_open()
        raise NullDeviceReadError(
            f"cannot read {length} bytes at address {address}: the null device keeps nothing"
            " (a store without a path holds everything in memory)"
        )

    def write_async(self, address: int, data: Buffer, callback: WriteCallback) -> None:
        self.write(address, data)
        callback(memoryview(data).nbytes, None)

    def read_async(self, address: int, length: int, callback: ReadCallback) -> None:
        self._check_open()
        try:
            self.read(address, length)
        except NullDeviceReadError as exc:
            callback(None, exc)

    def flush(self) -> None:
        self._check_open()

    def flush_async(self, callback: Callback[None]) -> None:
        self._check_open()
        callback(None, None)

    def truncate(self, below_address: int) -> int:
        self._check_open()
        return 0

    def close(self) -> None:
        self._closed = True
