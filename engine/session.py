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
# (context, status, value): the value is the exception when the status is "error"
Completed = tuple[Any, str, Any]


class _Pending:
    __slots__ = ("begin", "context", "key")

    def __init__(self, key: bytes, context: Any, begin: int) -> None:
        self.key = key
        self.context = context
        self.begin = begin


class Session:
    """The store's operations, each numbered; use from one thread at a time."""

    def __init__(self, kv: FasterKv, session_id: str | None = None, serial: int = 0) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.serial = serial  # serial number of the last completed operation
        self._kv = kv
        self._done: list[Completed] = []
        self._io_done: list[tuple[_Pending, int, bytes | None, BaseException | None]] = []
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

        expiry = faster_kv.expiry_ms(ttl)
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
        ``(context, status, value)`` for it ("error" with the exception as value when the
        device failed)."""
        self.serial += 1
        status, value, address, begin = self._kv._read_start(key)
        if status == "ok":
            return "ok", value
        if status == "not_found":
            return "not_found", None
        with self._cv:
            self._outstanding += 1
        self._issue(_Pending(key, context, begin), address)
        return "pending", None

    def _issue(self, op: _Pending, address: int) -> None:
        def done(data: bytes | None, error: BaseException | None) -> None:
            # On a device thread: only hand the completion over (as FASTER does).
            with self._cv:
                self._io_done.append((op, address, data, error))
                self._cv.notify_all()

        try:
            self._kv._pending_issue(address, done)
        except BaseException as exc:
            done(None, exc)

    def complete_pending(self, wait: bool = False) -> list[Completed]:
        """Finish the pending reads whose I/O completed, in this thread (issuing the next read
        of a chain where needed); with ``wait``, until none is outstanding."""
        results: list[Completed] = []
        while True:
            with self._cv:
                if wait:
                    self._cv.wait_for(lambda: bool(self._io_done) or self._outstanding == 0)
                batch, self._io_done = self._io_done, []
            for op, address, data, error in batch:
                outcome = self._continue(op, address, data, error)
                if outcome is not None:
                    results.append(outcome)
                    with self._cv:
                        self._outstanding -= 1
            with self._cv:
                if not wait or self._outstanding == 0:
                    results.extend(self._done)
                    self._done = []
                    return results

    def _continue(
        self, op: _Pending, address: int, data: bytes | None, error: BaseException | None
    ) -> Completed | None:
        from faster_backend.engine.devices import AddressTruncatedError

        try:
            if error is not None:
                if not isinstance(error, AddressTruncatedError):
                    return op.context, "error", error
                step: tuple[str, Any] = ("restart", None)
            else:
                assert data is not None
                step = self._kv._pending_continue(op.key, address, data, op.begin)
            if step[0] == "next":
                self._issue(op, step[1])
                return None
            if step[0] == "restart":  # compaction moved the chain: read the blocking way
                value = self._kv.read(op.key)
                return op.context, ("not_found" if value is None else "ok"), value
            return op.context, step[0], step[1]
        except Exception as exc:
            return op.context, "error", exc

    @property
    def pending(self) -> int:
        return self._outstanding

    def __repr__(self) -> str:
        return f"<Session {self.id[:8]} serial={self.serial} pending={self._outstanding}>"
