"""Exceptions raised by the engine."""


class EngineError(Exception):
    """Base class of every engine error."""


class RecordTooLargeError(EngineError, ValueError):
    """A key/value pair does not fit in one log page."""


class StoreClosedError(EngineError, RuntimeError):
    """An operation was attempted on a closed store."""
