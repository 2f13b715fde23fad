"""The ``StorageDevice`` interface: a flat byte address space stored in segment files.

Address ``a`` lives in segment ``a // segment_size``, file ``<directory>/<name>.<segment>``, at
offset ``a % segment_size`` (FASTER's layout). Words used throughout:

- *written*: ``write`` returned, or the ``write_async`` callback ran without an error. The bytes
  are readable by every later ``read`` on this device, but they may still sit in the OS page
  cache and a power loss can lose them.
- *durable*: a ``flush`` that started after the write was written has returned. Durable bytes
  survive a crash of the process and of the machine (as far as fsync promises).

Reads of ranges that were never written return zero bytes (segment files are sparse); reads
below the truncation point raise ``AddressTruncatedError``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from faster_backend.engine.devices.errors import DeviceClosedError

DEFAULT_SEGMENT_SIZE = 1 << 30
DEFAULT_SECTOR_SIZE = 512

T = TypeVar("T")
#: ``callback(result, error)``: exactly one of the two is ``None``.
Callback = Callable[[T | None, BaseException | None], None]
ReadCallback = Callback[bytes]
WriteCallback = Callback[int]

Buffer = bytes | bytearray | memoryview


@dataclass
class DeviceStats:
    """Counters kept by every device (for benchmarks and tests)."""

    reads: int = 0
    writes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    fsyncs: int = 0
    segments_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class StorageDevice(ABC):
    """A segmented, flat byte address space with blocking, callback and asyncio I/O."""

    kind = "abstract"
    # Devices whose blocking reads are plain ``pread`` calls on open segment files expose those
    # files here (segment number -> Segment, maintained by the device): the store then reads a
    # record and decodes it in one compiled call. The reader holds the Segment while it reads.
    pread_segments: dict[int, Any] | None = None

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        name: str = "log",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        sector_size: int = DEFAULT_SECTOR_SIZE,
    ) -> None:
        if segment_size <= 0 or segment_size % sector_size:
            raise ValueError(
                f"segment_size must be a positive multiple of sector_size ({sector_size}),"
                f" got {segment_size}"
            )
        if not name or "/" in name or os.sep in name:
            raise ValueError(f"invalid device name {name!r}")
        self.directory = Path(directory) if directory is not None else None
        self.name = name
        self.segment_size = segment_size
        self.sector_size = sector_size
        self.stats = DeviceStats()
        self._stats_lock = threading.Lock()
        self._closed = False
        # Lowest segment that still exists; reads below it raise AddressTruncatedError.
        self.begin_segment = 0

    # -- the operations every device implements ------------------------------------------

    @abstractmethod
    def write(self, address: int, data: Buffer) -> None:
        """Write ``data`` at ``address``; on return the bytes are *written* (not durable)."""

    @abstractmethod
    def read(self, address: int, length: int) -> bytes:
        """Return exactly ``length`` bytes from ``address`` (zeros where nothing was written)."""

    def read_into(self, address: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` with the bytes at ``address`` (devices may avoid the extra copy)."""
        view = memoryview(buffer).cast("B")
        view[:] = self.read(address, len(view))

    @abstractmethod
    def write_async(self, address: int, data: Buffer, callback: WriteCallback) -> None:
        """Start a write; ``callback(len(data), None)`` or ``(None, error)`` runs on completion.

        ``data`` must stay unchanged until the callback runs. Bad arguments and a closed device
        raise at once; every I/O error (``AddressTruncatedError`` included) goes to the callback.
        """

    @abstractmethod
    def read_async(self, address: int, length: int, callback: ReadCallback) -> None:
        """Start a read; ``callback(data, None)`` or ``(None, error)`` runs on completion."""

    @abstractmethod
    def flush(self) -> None:
        """Make every write that was *written* before this call *durable* (fsync)."""

    def flush_async(self, callback: Callback[None]) -> None:
        """``flush`` in the background; ``callback(None, error_or_None)`` when durable."""
        self._check_open()

        def run() -> None:
            try:
                self.flush()
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(None, None)

        threading.Thread(target=run, name=f"flush-{self.name}", daemon=True).start()

    async def aflush(self) -> None:
        """``flush`` for asyncio."""
        await self._await(self.flush_async)

    @abstractmethod
    def truncate(self, below_address: int) -> int:
        """Delete the segments that lie wholly below ``below_address``; return how many."""

    @abstractmethod
    def close(self) -> None:
        """Release files and threads; pending asynchronous operations complete first."""

    # -- asyncio ---------------------------------------------------------------------------

    async def aread(self, address: int, length: int) -> bytes:
        """``read`` for asyncio: completes on the running loop without blocking it."""
        result: bytes = await self._await(self.read_async, address, length)
        return result

    async def awrite(self, address: int, data: Buffer) -> int:
        """``write`` for asyncio; returns the number of bytes written."""
        result: int = await self._await(self.write_async, address, data)
        return result

    async def _await(self, start: Callable[..., None], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, error)

        start(*args, done)
        return await future

    # -- helpers for implementations ------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosedError(f"{self.describe()} is closed")

    def _check_args(self, address: int, length: int) -> None:
        self._check_open()
        if address < 0 or length < 0:
            raise ValueError(f"negative address or length: {address}, {length}")

    def describe(self) -> str:
        where = self.directory if self.directory is not None else "(no directory)"
        return f"{type(self).__name__}({where}/{self.name})"

    def segment_path(self, segment: int) -> Path:
        if self.directory is None:
            raise ValueError(f"{self.describe()} has no files")
        return self.directory / f"{self.name}.{segment}"

    def locate(self, address: int) -> tuple[Path | None, int]:
        """The segment file holding ``address`` and the offset in it (for error messages)."""
        segment, offset = divmod(address, self.segment_size)
        path = self.segment_path(segment) if self.directory is not None else None
        return path, offset

    def split(self, address: int, length: int) -> Iterator[tuple[int, int, int, int]]:
        """Cut ``[address, address+length)`` at segment borders.

        Yields ``(segment, offset in segment, offset in the request, length)``.
        """
        if address < 0 or length < 0:
            raise ValueError(f"negative address or length: {address}, {length}")
        size = self.segment_size
        done = 0
        while done < length:
            segment, offset = divmod(address + done, size)
            part = min(length - done, size - offset)
            yield segment, offset, done, part
            done += part

    def existing_segments(self) -> list[int]:
        """Segment numbers that have a file, ascending."""
        if self.directory is None or not self.directory.is_dir():
            return []
        prefix = self.name + "."
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(prefix):
                suffix = entry.name[len(prefix) :]
                if suffix.isdigit():
                    found.append(int(suffix))
        return sorted(found)

    def end_address(self) -> int:
        """One past the highest byte held by a segment file (0 when there is none)."""
        segments = self.existing_segments()
        if not segments:
            return 0
        last = segments[-1]
        return last * self.segment_size + self.segment_path(last).stat().st_size

    def _count(self, reads: int = 0, writes: int = 0, nread: int = 0, nwritten: int = 0) -> None:
        with self._stats_lock:
            stats = self.stats
            stats.reads += reads
            stats.writes += writes
            stats.bytes_read += nread
            stats.bytes_written += nwritten

    def _count_fsyncs(self, n: int) -> None:
        with self._stats_lock:
            self.stats.fsyncs += n

    def __enter__(self) -> StorageDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self.describe()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
