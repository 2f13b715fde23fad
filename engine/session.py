"""Sessions: a thread's sequence of operations, numbered for Concurrent Prefix Recovery.

Each operation a session completes gets the next serial number. A checkpoint records, per
session, the serial number up to which that session's operations are contained in it; recovery
reports those numbers so that a client knows which prefix of its operations survived.

As in FASTER, a read whose record is on the device can go pending: ``start_read`` returns
``"pending"`` and issues the device read asynchronously; ``complete_pending(wait)`` collects
the finished reads (and waits for the rest when ``wait`` is true).
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any, Literal

from faster_backend.engine.ttl import KEEP_TTL, TtlArg

if TYPE_CHECKING:
    from faster_backend.engine.faster_kv import FasterKv, Updater

ReadStatus = Literal["ok", "not_found", "pending"]
Completed = tuple[Any, Literal["ok", "not_found"], bytes | None]


class Session:
    """The store's operations, each numbered; use from one thread at a time."""

    def __init__(self, kv: FasterKv, session_id: str | None = None, serial: int = 0) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.serial = serial  # serial number of the last completed operation
        self._kv = kv
        self._done: list[Completed] = []
        self._outstanding = 0
        self._cv = threading.Condition()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.complete_pending(wait=True)
        self._kv._end_session(self)

    def read(self, key: bytes) -> bytes | None:
        from faster_backend.engine.faster_kv import _found_value

        return self._kv._in_session(self, key, lambda found, h: _found_value(found))

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        kv = self._kv
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        from faster_backend.engine import faster_kv

        expiry = None if ttl is None else int((faster_kv._now() + ttl) * 1000)
        kv._in_session(self, key, lambda found, h: kv._write(key, h, value, expiry, found))
        kv._session_write_done()

    def rmw(self, key: bytes, updater: Updater, ttl: TtlArg = KEEP_TTL) -> bytes | None:
        kv = self._kv
        result = kv._in_session(self, key, lambda found, h: kv._rmw(key, h, updater, ttl, found))
        kv._session_write_done()
        return result

    def delete(self, key: bytes) -> bool:
        kv = self._kv
        deleted = kv._in_session(self, key, lambda found, h: kv._delete_op(key, h)(found))
        kv._session_write_done()
        return deleted

    # -- pending reads ---------------------------------------------------------------------

    def start_read(self, key: bytes, context: Any = None) -> tuple[ReadStatus, bytes | None]:
        """Read without blocking on the device: ("ok", value), ("not_found", None) or
        ("pending", None), in which case ``complete_pending`` later yields
        ``(context, status, value)`` for it."""
        self.serial += 1
        status, value, address = self._kv._read_start(key)
        if status == "ok":
            return "ok", value
        if status == "not_found":
            return "not_found", None
        with self._cv:
            self._outstanding += 1

        def finish(status: Literal["ok", "not_found"], value: bytes | None) -> None:
            with self._cv:
                self._done.append((context, status, value))
                self._outstanding -= 1
                self._cv.notify_all()

        self._kv._read_pending(key, address, finish)
        return "pending", None

    def complete_pending(self, wait: bool = False) -> list[Completed]:
        """The pending reads that finished; with ``wait``, after all outstanding ones have."""
        with self._cv:
            if wait:
                self._cv.wait_for(lambda: self._outstanding == 0)
            done, self._done = self._done, []
        return done

    @property
    def pending(self) -> int:
        return self._outstanding

    def __repr__(self) -> str:
        return f"<Session {self.id[:8]} serial={self.serial} pending={self._outstanding}>"
