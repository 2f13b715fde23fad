"""Sessions: a thread's sequence of operations, numbered for Concurrent Prefix Recovery.

Each operation a session completes gets the next serial number. A checkpoint records, per
session, the serial number up to which that session's operations are contained in it; recovery
reports those numbers so that a client knows which prefix of its operations survived.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from faster_backend.engine.ttl import KEEP_TTL, TtlArg

if TYPE_CHECKING:
    from faster_backend.engine.faster_kv import FasterKv, Updater


class Session:
    """The store's operations, each numbered; use from one thread at a time."""

    def __init__(self, kv: FasterKv, session_id: str | None = None, serial: int = 0) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.serial = serial  # serial number of the last completed operation
        self._kv = kv

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._kv._end_session(self)

    def read(self, key: bytes) -> bytes | None:
        value = self._kv.read(key)
        self.serial += 1
        return value

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        self._kv.upsert(key, value, ttl)
        self.serial += 1

    def rmw(self, key: bytes, updater: Updater, ttl: TtlArg = KEEP_TTL) -> bytes | None:
        result = self._kv.rmw(key, updater, ttl)
        self.serial += 1
        return result

    def delete(self, key: bytes) -> bool:
        found = self._kv.delete(key)
        self.serial += 1
        return found

    def __repr__(self) -> str:
        return f"<Session {self.id[:8]} serial={self.serial}>"
