"""Errors raised by storage devices."""

from __future__ import annotations

from faster_backend.engine.errors import EngineError


class DeviceError(EngineError):
    """Base class of every storage device error."""


class DeviceClosedError(DeviceError, RuntimeError):
    """An operation was attempted on a closed device."""


class DeviceIOError(DeviceError, OSError):
    """An I/O operation failed; the message names the segment file and the offset in it."""

    def __init__(self, errno: int, message: str, filename: str | None = None) -> None:
        OSError.__init__(self, errno, message, filename)


class AddressTruncatedError(DeviceError, ValueError):
    """A read addressed a segment that ``truncate`` has already deleted."""


class DeviceFormatError(DeviceError):
    """A device metadata file is corrupt; the message names the file and the offset."""


class NullDeviceReadError(DeviceError):
    """``NullDevice`` discards writes, so there is nothing to read back."""


class IoUringUnavailableError(DeviceError):
    """io_uring cannot be used here (binding missing or the kernel refuses it)."""


class InjectedFaultError(DeviceIOError):
    """A fault injected by ``FaultyDevice`` (tests only)."""


class ShortWriteError(InjectedFaultError):
    """Only ``written`` bytes of a write reached the device (injected)."""

    def __init__(self, errno: int, message: str, filename: str | None, written: int) -> None:
        super().__init__(errno, message, filename)
        self.written = written


class TornWriteError(InjectedFaultError):
    """Only some sectors of a write reached the device (injected)."""
