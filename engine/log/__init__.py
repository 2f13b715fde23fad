"""FasterLog: the standalone durable append-only log (format and contract: docs/fasterlog.md)."""

from faster_backend.engine.log.errors import (
    EntryTooLargeError,
    LogClosedError,
    LogCorruptionError,
    LogError,
    LogFailedError,
)
from faster_backend.engine.log.faster_log import (
    DEFAULT_MEMORY_SIZE,
    DEFAULT_PAGE_SIZE,
    FasterLog,
)
from faster_backend.engine.log.format import CommitRecord
from faster_backend.engine.log.iterator import LogIterator

__all__ = [
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_PAGE_SIZE",
    "CommitRecord",
    "EntryTooLargeError",
    "FasterLog",
    "LogClosedError",
    "LogCorruptionError",
    "LogError",
    "LogFailedError",
    "LogIterator",
]
