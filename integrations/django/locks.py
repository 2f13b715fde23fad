"""``cache.lock(key)``: a lease lock with redis-py's Lock interface, on the embedded store.

Acquiring is an atomic add of a random token with the lock's timeout as TTL (so a crashed holder
cannot block others forever); releasing and extending check the token inside an atomic RMW, so
a holder whose lease ran out cannot release a lock someone else has since taken.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from faster_backend import FasterKV
from faster_backend.integrations.django.codec import dumps


class LockError(RuntimeError):
    """The lock could not be acquired, or was released without being held."""


class LockNotOwnedError(LockError):
    """The lock is held by someone else (or its lease expired)."""


class FasterLock:
    """A lock on ``key`` in an embedded store; ``timeout`` is the lease in seconds (None: none)."""

    def __init__(
        self,
        kv: FasterKV,
        key: bytes,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> None:
        self.kv = kv
        self.name = key
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self._local: Any = threading.local() if thread_local else type("Shared", (), {})()
        self._local.token = None

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
            if self.kv.add(self.name, value, self.timeout):
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
        return bool(self.kv.exists(self.name))

    def owned(self) -> bool:
        """Whether this lock object (in this thread, if thread-local) holds the lock."""
        token = self.token
        return token is not None and self.kv.read(self.name) == token

    def release(self) -> None:
        token = self.token
        if token is None:
            raise LockError("Cannot release an unlocked lock")
        self._local.token = None
        released = False

        def check(old: bytes | None) -> bytes | None:
            nonlocal released
            if old == token:
                released = True
                return old  # with ttl=0 the store deletes the record
            return None

        self.kv.rmw(self.name, check, ttl=0)
        if not released:
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
            try:
                left = self.kv.ttl(self.name)
            except KeyError:
                left = None
            ttl += left or 0.0
        owned = False

        def check(old: bytes | None) -> bytes | None:
            nonlocal owned
            owned = old == token
            if not owned:
                raise LockNotOwnedError("Cannot extend a lock that's no longer owned")
            return old

        self.kv.rmw(self.name, check, ttl=ttl)
        return owned

    def reacquire(self) -> bool:
        """Reset the lease to the lock's full timeout."""
        if self.timeout is None:
            raise LockError("Cannot reacquire a lock with no timeout")
        return self.extend(self.timeout, replace_ttl=True)


_remote_classes: dict[type, type] = {}


def _remote_lock_class(base: type) -> type:
    cls = _remote_classes.get(base)
    if cls is not None:
        return cls
    from redis.exceptions import LockError as RedisLockError

    class RemoteLock(base):  # type: ignore[valid-type, misc]
        """redis-py's Lock whose ``with`` raises our LockError when it cannot acquire."""

        def __enter__(self) -> Any:
            try:
                return super().__enter__()
            except RedisLockError as exc:
                raise LockError(str(exc)) from exc

    _remote_classes[base] = RemoteLock
    return RemoteLock


def wrap_remote_lock(lock: Any) -> Any:
    """redis-py's Lock, raising our LockError when ``with`` cannot acquire it."""
    lock.__class__ = _remote_lock_class(type(lock))
    return lock
