"""A dogpile.cache ``BytesBackend`` registered as ``faster_backend``.

Embedded::

    region.configure("faster_backend", arguments={"path": "/var/lib/app/cache",
                                                   "memory_size": "256MiB"})

``path`` may be omitted for an in-memory store; the store is opened once per process per path
(per ``name`` in memory) and shared by every region configured on it. Server::

    region.configure("faster_backend", arguments={"url": "redis://127.0.0.1:6379/0"})
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from dogpile.cache.api import (
    NO_VALUE,
    BytesBackend,
    CacheMutex,
    KeyType,
    SerializedReturnType,
)

from faster_backend.integrations.sqlalchemy._kv import KV, RemoteKV, open_local

log = logging.getLogger(__name__)

_EMBEDDED_ARGS = frozenset({"path", "memory_size", "name"})
_SERVER_ARGS = frozenset(
    {"url", "lock_prefix", "lock_timeout", "lock_sleep", "lock_blocking_timeout",
     "connection_kwargs", "distributed_lock"}
)
_COMMON_ARGS = frozenset({"expiration_time", "redis_expiration_time", "key_prefix"})


def _seconds(arguments: Mapping[str, Any], name: str) -> float | None:
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"faster_backend: {name} must be seconds (a number), got {value!r}")
    return float(value) if value > 0 else None


class FasterBackend(BytesBackend):
    """dogpile.cache backend over an embedded FASTER store or a RESP server.

    Arguments: ``path`` / ``memory_size`` / ``name`` (embedded) or ``url`` (server, plus
    ``lock_timeout``, ``lock_sleep``, ``lock_blocking_timeout``, ``lock_prefix``,
    ``connection_kwargs``); ``expiration_time`` (alias ``redis_expiration_time``): a TTL in
    seconds the store applies to every value, on top of dogpile's own expiration;
    ``key_prefix``: prepended to every key.
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        url = arguments.get("url")
        unknown = set(arguments) - _EMBEDDED_ARGS - _SERVER_ARGS - _COMMON_ARGS
        if unknown:
            # dogpile passes a region's whole argument dict; its own suite checks that
            # unrelated arguments are tolerated.
            log.debug("faster_backend ignores unknown arguments %s", sorted(unknown))
        ttl = _seconds(arguments, "expiration_time")
        if ttl is None:
            ttl = _seconds(arguments, "redis_expiration_time")
        self.expiration_time = ttl
        self.key_prefix = str(arguments.get("key_prefix", "")).encode()
        self.kv: KV
        if url is not None:
            if arguments.get("path") is not None:
                raise ValueError("faster_backend: give either 'path' (embedded) or 'url', not both")
            if not isinstance(url, str):
                raise ValueError(f"faster_backend: url must be a string, got {url!r}")
            lock_prefix = arguments.get("lock_prefix", "_lock")
            self.kv = RemoteKV(
                url,
                lock_prefix=str(lock_prefix).encode(),
                lock_timeout=float(arguments.get("lock_timeout", 30.0)),
                lock_sleep=float(arguments.get("lock_sleep", 0.05)),
                lock_blocking_timeout=_seconds(arguments, "lock_blocking_timeout"),
                connection_kwargs=dict(arguments.get("connection_kwargs") or {}),
            )
        else:
            self.kv = open_local(
                arguments.get("path"),
                arguments.get("memory_size"),
                name=str(arguments.get("name", "default")),
            )

    def _key(self, key: KeyType) -> bytes:
        return self.key_prefix + key.encode()

    def get_serialized(self, key: KeyType) -> SerializedReturnType:
        value = self.kv.get(self._key(key))
        return NO_VALUE if value is None else value

    def get_serialized_multi(self, keys: Iterable[KeyType]) -> Sequence[SerializedReturnType]:
        values = self.kv.get_many([self._key(k) for k in keys])
        return [NO_VALUE if v is None else v for v in values]

    def set_serialized(self, key: KeyType, value: bytes) -> None:
        self.kv.set(self._key(key), value, self.expiration_time)

    def set_serialized_multi(self, mapping: Mapping[KeyType, bytes]) -> None:
        self.kv.set_many(((self._key(k), v) for k, v in mapping.items()), self.expiration_time)

    def delete(self, key: KeyType) -> None:
        self.kv.delete(self._key(key))

    def delete_multi(self, keys: Iterable[KeyType]) -> None:
        self.kv.delete_many([self._key(k) for k in keys])

    def get_mutex(self, key: KeyType) -> CacheMutex:
        # Our mutexes are CacheMutex by dogpile's structural __subclasshook__.
        return cast(CacheMutex, self.kv.mutex(self._key(key)))
