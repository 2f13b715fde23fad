"""``cache.lock(key)``: a lease lock with redis-py's Lock interface, in both cache modes.

Acquiring is an atomic add of a random token with the lock's timeout as TTL (so a crashed holder
cannot block others forever). Releasing and extending compare the token atomically (an RMW in
the embedded store; WATCH/MULTI over RESP, which needs no Lua), so a holder whose lease ran out
cannot release a lock someone else has taken since.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, Protocol

from faster_backend import FasterKV
from faster_backend.integrations.django.codec import dumps


class LockError(RuntimeError):
    """The lock could not be acquired, or was released without being held."""


class LockNotOwnedError(LockError):
    """The lock is held by someone else (or its lease expired)."""


class LockOps(Protocol):
    """The atomic operations a lock needs from a store."""

    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool: ...
    def exists(self, key: bytes) -> bool: ...
    def read(self, key: bytes) -> bytes | None: ...
    def ttl(self, key: bytes) -> float | None: ...
    def delete_if(self, key: bytes, value: bytes) -> bool: ...
    def expire_if(self, key: bytes, value: bytes, ttl: float) -> bool: ...


class EmbeddedLockOps:
    """LockOps on a FasterKV: the comparisons run inside RMW updaters."""

    def __init__(self, kv: FasterKV) -> None:
        self.kv = kv

    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        return bool(self.kv.add(key, value, ttl))

    def exists(self, key: bytes) -> bool:
        return bool(self.kv.exists(key))

    def read(self, key: bytes) -> bytes | None:
        value: bytes | None = self.kv.read(key)
        return value

    def ttl(self, key: bytes) -> float | None:
        left: float | None = self.kv.ttl(key)
        return left

    def delete_if(self, key: bytes, value: bytes) -> bool:
        matched = False

        def check(old: bytes | None) -> bytes | None:
            nonlocal matched
            matched = old == value
            return old if matched else None  # with ttl=0 a returned value deletes the record

        self.kv.rmw(key, check, ttl=0)
        return matched

    def expire_if(self, key: bytes, value: bytes, ttl: float) -> bool:
        matched = False

        def check(old: bytes | None) -> bytes | None:
            nonlocal matched
            matched = old == value
            return old if matched else None

        self.kv.rmw(key, check, ttl=ttl)
        return matched


class FasterLock:
    """A lock on ``key``; ``timeout`` is the lease in seconds (None: held until released)."""

    def __init__(
        self,
        ops: LockOps,
        key: bytes,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> None:
        self.ops = ops
        self.name = key
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self._local: Any = threading.local() if thread_local else _Shared()

    def __enter__(self) -> FasterLock:
        if self.acquire():
            return self
        raise LockError("Unable to acquire lock within the time specified")

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def token(self) -> bytes | None:
        token: bytes | None = getattr(self._local, "token", None)
        return token

    def acquire(
        self,
        sleep: float | None = None,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | bytes | None = None,
    ) -> bool:
        """Take the lock; False if non-blocking and taken, or if ``blocking_timeout`` ran out."""
        sleep = self.sleep if sleep is None else sleep
        blocking = self.blocking if blocking is None else blocking
        wait = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        if token is None:
            token = uuid.uuid4().hex
        value = dumps(token.decode() if isinstance(token, bytes) else token)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            if self.ops.add(self.name, value, self.timeout):
                self._local.token = value
                return True
            if not blocking:
                return False
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(sleep, left))
            else:
                time.sleep(sleep)

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        return self.ops.exists(self.name)

    def owned(self) -> bool:
        """Whether this lock object (in this thread, if thread-local) holds the lock."""
        token = self.token
        return token is not None and self.ops.read(self.name) == token

    def release(self) -> None:
        token = self.token
        if token is None:
            raise LockError("Cannot release an unlocked lock")
        self._local.token = None
        if not self.ops.delete_if(self.name, token):
            raise LockNotOwnedError("Cannot release a lock that's no longer owned")

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Add ``additional_time`` seconds to the lease (or set it to that, ``replace_ttl``)."""
        token = self.token
        if token is None:
            raise LockError("Cannot extend an unlocked lock")
        if self.timeout is None:
            raise LockError("Cannot extend a lock with no timeout")
        ttl = float(additional_time)
        if not replace_ttl:
            with contextlib.suppress(KeyError):  # expired: only the additional time
                ttl += self.ops.ttl(self.name) or 0.0
        if not self.ops.expire_if(self.name, token, ttl):
            raise LockNotOwnedError("Cannot extend a lock that's no longer owned")
        return True

    def reacquire(self) -> bool:
        """Reset the lease to the lock's full timeout."""
        if self.timeout is None:
            raise LockError("Cannot reacquire a lock with no timeout")
        return self.extend(self.timeout, replace_ttl=True)


class _Shared:
    """Token holder shared by every thread (``thread_local=False``)."""

    token: bytes | None = None
