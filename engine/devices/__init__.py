"""Storage devices: a flat, segmented byte address space with blocking, callback and asyncio I/O.

See ``base.StorageDevice`` for the contract (written versus durable, zeros for unwritten
ranges) and docs/devices.md for the measurements behind ``open_device("auto")``.
"""

from faster_backend.engine.devices.base import (
    DEFAULT_SECTOR_SIZE,
    DEFAULT_SEGMENT_SIZE,
    DeviceStats,
    StorageDevice,
)
from faster_backend.engine.devices.direct_file_device import DirectFileDevice, direct_io_status
from faster_backend.engine.devices.errors import (
    AddressTruncatedError,
    DeviceClosedError,
    DeviceError,
    DeviceFormatError,
    DeviceIOError,
    InjectedFaultError,
    IoUringUnavailableError,
    NullDeviceReadError,
    ShortWriteError,
    TornWriteError,
)
from faster_backend.engine.devices.factory import AUTO_KIND, open_device
from faster_backend.engine.devices.faulty_device import Fault, FaultyDevice, Injected
from faster_backend.engine.devices.file_device import FileDevice
from faster_backend.engine.devices.io_uring_device import IoUringDevice, io_uring_status
from faster_backend.engine.devices.null_device import NullDevice

__all__ = [
    "AUTO_KIND",
    "DEFAULT_SECTOR_SIZE",
    "DEFAULT_SEGMENT_SIZE",
    "AddressTruncatedError",
    "DeviceClosedError",
    "DeviceError",
    "DeviceFormatError",
    "DeviceIOError",
    "DeviceStats",
    "DirectFileDevice",
    "Fault",
    "FaultyDevice",
    "FileDevice",
    "Injected",
    "InjectedFaultError",
    "IoUringDevice",
    "IoUringUnavailableError",
    "NullDevice",
    "NullDeviceReadError",
    "ShortWriteError",
    "StorageDevice",
    "TornWriteError",
    "direct_io_status",
    "io_uring_status",
    "open_device",
]
