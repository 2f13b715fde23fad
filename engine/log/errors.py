"""Errors raised by FasterLog."""

from __future__ import annotations

from faster_backend.engine.errors import EngineError


class LogError(EngineError):
    """Base class of every FasterLog error."""


class LogCorruptionError(LogError):
    """Stored data failed a check; ``path`` and ``offset`` say where."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None) -> None:
        where = f"{path or '(no file)'} at offset {offset}" if offset is not None else path
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.offset = offset


class LogFailedError(LogError):
    """An earlier I/O error stopped the log; what was committed stays; reopen to recover."""


class LogClosedError(LogError, RuntimeError):
    """The log is closed."""


class EntryTooLargeError(LogError, ValueError):
    """An entry does not fit in one page."""
