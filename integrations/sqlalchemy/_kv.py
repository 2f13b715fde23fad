"""The key-value side shared by the dogpile backend and the session store.

Two implementations of one small interface: ``LocalKV`` over an embedded ``FasterKV`` (shared
per data directory per process through a registry, because the directory is locked per process
and one process may open it several times) and ``RemoteKV`` over redis-py, for a
``faster-backend serve`` server or any Redis. Each hands out per-key mutexes: process-local
locks for the embedded store (the only process that can open it), ``SET NX PX`` locks released
by a compare-and-delete script for a server.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from faster_backend import FasterKV

log = logging.getLogger(__name__)

DEFAULT_MEMORY_SIZE = "64MiB"


class Mutex(Protocol):
    """What dogpile calls a ``CacheMutex``."""

    def acquire(self, wait: bool = True) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...


class KV(Protocol):
    """The operations the integrations need, in both modes."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def set(self, key: bytes, value: bytes, ttl: float | None) -> None: ...

    def set_many(self, items: Iterable[tuple[bytes, bytes]], ttl: float | None) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def delete_many(self, keys: Sequence[bytes]) -> None: ...

    def mutex(self, key: bytes) -> Mutex: ...

    @property
    def generation(self) -> bytes: ...


# -- embedded ------------------------------------------------------------------------------


class _KeyLock:
    """A ``threading.Lock`` that can be weakly referenced (lock tables drop idle entries)."""

    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


class LocalMutex:
    """A per-key lock shared by every thread of this process that uses the same store."""

    def __init__(self, key_lock: _KeyLock) -> None:
        self._key_lock = key_lock  # a strong reference keeps the table entry alive

    def acquire(self, wait: bool = True) -> bool:
        return self._key_lock.lock.acquire(wait)

    def release(self) -> None:
        self._key_lock.lock.release()

    def locked(self) -> bool:
        return self._key_lock.lock.locked()


class LocalKV:
    """An embedded store plus its per-key lock table; obtain through ``open_local``."""

    def __init__(self, kv: FasterKV, memory_size: int | str, ident: str) -> None:
        self.kv = kv
        self.memory_size = memory_size
        self.ident = ident
        # A fresh random generation per process life: callers that must never see entries
        # written before a restart (the session store) put it into their keys.
        self._generation = secrets.token_hex(8).encode()
        self._locks: weakref.WeakValueDictionary[bytes, _KeyLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    @property
    def generation(self) -> bytes:
        return self._generation

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.kv.read(key)
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        read = self.kv.read
        return [read(k) for k in keys]

    def set(self, key: bytes, value: bytes, ttl: float | None) -> None:
        self.kv.upsert(key, value, ttl=ttl)

    def set_many(self, items: Iterable[tuple[bytes, bytes]], ttl: float | None) -> None:
        upsert = self.kv.upsert
        for k, v in items:
            upsert(k, v, ttl=ttl)

    def delete(self, key: bytes) -> None:
        self.kv.delete(key)

    def delete_many(self, keys: Sequence[bytes]) -> None:
        for k in keys:
            self.kv.delete(k)

    def mutex(self, key: bytes) -> LocalMutex:
        with self._locks_guard:
            key_lock = self._locks.get(key)
            if key_lock is None:
                key_lock = self._locks[key] = _KeyLock()
        return LocalMutex(key_lock)


_registry: dict[str, LocalKV] = {}
_registry_guard = threading.Lock()


def _registry_key(path: str | os.PathLike[str] | None, name: str) -> str:
    if path is None:
        return f"memory:{name}"
    return f"path:{Path(path).resolve()}"


def open_local(
    path: str | os.PathLike[str] | None,
    memory_size: int | str | None = None,
    *,
    name: str = "default",
) -> LocalKV:
    """The process's store for ``path`` (or the in-memory store called ``name``), opened once.

    A later call with a different explicit ``memory_size`` raises ValueError rather than
    silently getting a store of another size.
    """
    ident = _registry_key(path, name)
    with _registry_guard:
        entry = _registry.get(ident)
        if entry is not None and entry.kv.closed:
            del _registry[ident]
            entry = None
        if entry is None:
            size = DEFAULT_MEMORY_SIZE if memory_size is None else memory_size
            kv = FasterKV(path=path, memory_size=size)
            entry = _registry[ident] = LocalKV(kv, size, ident)
            log.debug("opened embedded store %s (memory_size=%s)", ident, size)
        elif memory_size is not None and memory_size != entry.memory_size:
            raise ValueError(
                f"the embedded store {ident} is already open in this process with"
                f" memory_size={entry.memory_size!r}; got memory_size={memory_size!r}"
            )
        return entry


def close_local(path: str | os.PathLike[str] | None = None, *, name: str = "default") -> bool:
    """Close and forget one registered store; True if it was open."""
    with _registry_guard:
        entry = _registry.pop(_registry_key(path, name), None)
    if entry is None:
        return False
    entry.kv.close()
    return True


def close_all_local() -> None:
    """Close every registered embedded store (tests, interpreter shutdown)."""
    with _registry_guard:
        entries = list(_registry.values())
        _registry.clear()
    for entry in entries:
        entry.kv.close()


# -- server --------------------------------------------------------------------------------

# Delete the lock only if it still holds our token: a lock that expired and was taken by
# someone else must not be released by us.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RemoteMutex:
    """A lock on a server: ``SET key token NX PX timeout``, released by compare-and-delete."""

    def __init__(
        self,
        remote: RemoteKV,
        key: bytes,
        timeout: float,
        sleep: float,
        blocking_timeout: float | None,
    ) -> None:
        self._remote = remote
        self._key = key
        self._timeout_ms = max(1, int(timeout * 1000))
        self._sleep = sleep
        self._blocking_timeout = blocking_timeout
        self._token: bytes | None = None

    def acquire(self, wait: bool = True) -> bool:
        token = secrets.token_hex(16).encode()
        client = self._remote.client
        deadline = (
            None if self._blocking_timeout is None else time.monotonic() + self._blocking_timeout
        )
        delay = min(0.001, self._sleep)
        while True:
            if client.set(self._key, token, nx=True, px=self._timeout_ms):
                self._token = token
                return True
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(delay)
            delay = min(delay * 2, self._sleep)

    def release(self) -> None:
        token = self._token
        if token is None:
            raise RuntimeError(f"release of an unacquired lock {self._key!r}")
        self._token = None
        if not self._remote.compare_and_delete(self._key, token):
            log.warning("lock %r had expired before release (lock_timeout too short?)", self._key)

    def locked(self) -> bool:
        return bool(self._remote.client.exists(self._key))


class RemoteKV:
    """A redis-py client on a ``faster-backend serve`` server (or any Redis)."""

    def __init__(
        self,
        url: str,
        *,
        lock_prefix: bytes = b"_lock",
        lock_timeout: float = 30.0,
        lock_sleep: float = 0.05,
        lock_blocking_timeout: float | None = None,
        connection_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import redis

        if lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be positive seconds, got {lock_timeout!r}")
        self.url = url
        self.client: Any = redis.Redis.from_url(url, **(connection_kwargs or {}))
        self.lock_prefix = lock_prefix
        self.lock_timeout = lock_timeout
        self.lock_sleep = lock_sleep
        self.lock_blocking_timeout = lock_blocking_timeout
        self._release: Any = self.client.register_script(_RELEASE_SCRIPT)
        self._scripts_ok = True

    @property
    def generation(self) -> bytes:
        return b""

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.client.get(key)
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        return list(self.client.mget(keys))

    def set(self, key: bytes, value: bytes, ttl: float | None) -> None:
        if ttl is None:
            self.client.set(key, value)
        elif ttl <= 0:
            self.client.delete(key)
        else:
            self.client.set(key, value, px=max(1, int(ttl * 1000)))

    def set_many(self, items: Iterable[tuple[bytes, bytes]], ttl: float | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        n = 0
        for k, v in items:
            n += 1
            if ttl is None:
                pipe.set(k, v)
            elif ttl <= 0:
                pipe.delete(k)
            else:
                pipe.set(k, v, px=max(1, int(ttl * 1000)))
        if n:
            pipe.execute()

    def delete(self, key: bytes) -> None:
        self.client.delete(key)

    def delete_many(self, keys: Sequence[bytes]) -> None:
        if keys:
            self.client.delete(*keys)

    def mutex(self, key: bytes) -> RemoteMutex:
        return RemoteMutex(
            self, self.lock_prefix + key, self.lock_timeout, self.lock_sleep,
            self.lock_blocking_timeout,
        )

    def compare_and_delete(self, key: bytes, token: bytes) -> bool:
        """Delete ``key`` if it holds ``token`` (a Lua script; GET+DEL if scripts are off)."""
        import redis

        if self._scripts_ok:
            try:
                return bool(self._release(keys=[key], args=[token]))
            except redis.ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self._scripts_ok = False
                log.warning("server has no EVAL; lock release falls back to GET + DEL")
        # Without scripts the check and the delete are two commands: a lock that expires
        # between them can be deleted from under its new owner. Only reached on servers
        # without scripting.
        if self.client.get(key) == token:
            self.client.delete(key)
            return True
        return False

    def close(self) -> None:
        self.client.close()
