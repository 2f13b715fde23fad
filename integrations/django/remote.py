"""LOCATION = "redis://host:port/db": the cache as a client of `faster-backend serve` (or any
RESP server) through redis-py, with the same store operations the embedded mode uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from faster_backend.integrations.django.codec import dumps, loads

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def is_remote(location: str) -> bool:
    return location.startswith(("redis://", "rediss://", "unix://"))


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RespStore:
    """The store operations the cache backend needs, as RESP commands (one pool per LOCATION)."""

    def __init__(self, location: str, options: Mapping[str, Any]) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is in the django extra
            raise ImproperlyConfigured(
                "LOCATION=redis://... needs redis-py: pip install 'faster-backend[django]'"
            ) from exc
        self.location = location
        self._redis = redis
        key = (location, repr(sorted(options.items())))  # option values may be unhashable
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(location, **options)
                _clients[key] = client
        self.client: Any = client

    # -- the FasterKV subset ---------------------------------------------------------------

    def read(self, key: bytes) -> bytes | None:
        value: bytes | None = self.client.get(key)
        return value

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        if ttl is None:
            self.client.set(key, value)
        elif ttl <= 0:
            self.client.delete(key)
        else:
            self.client.set(key, value, px=_ms(ttl))

    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        if ttl is not None and ttl <= 0:
            return not self.client.exists(key)
        return bool(self.client.set(key, value, nx=True, px=None if ttl is None else _ms(ttl)))

    def delete(self, key: bytes) -> bool:
        return bool(self.client.delete(key))

    def exists(self, key: bytes) -> bool:
        return bool(self.client.exists(key))

    def expire(self, key: bytes, ttl: float | None) -> bool:
        if ttl is None:
            pipe = self.client.pipeline(transaction=False)
            pipe.persist(key)
            pipe.exists(key)
            return bool(pipe.execute()[1])
        if ttl <= 0:
            return bool(self.client.delete(key))
        return bool(self.client.pexpire(key, _ms(ttl)))

    def ttl(self, key: bytes) -> float | None:
        ms = int(self.client.pttl(key))
        if ms == -2:
            raise KeyError(key)
        return None if ms == -1 else ms / 1000.0

    def clear(self) -> None:
        self.client.flushdb()

    def __len__(self) -> int:
        return int(self.client.dbsize())

    def scan(
        self, cursor: int = 0, count: int = 10, match: str | None = None
    ) -> tuple[int, list[bytes]]:
        next_cursor, keys = self.client.scan(cursor=cursor, match=match, count=count)
        return int(next_cursor), list(keys)

    # -- batch and counter operations ------------------------------------------------------

    def read_many(self, keys: list[bytes]) -> list[bytes | None]:
        values: list[bytes | None] = self.client.mget(keys)
        return values

    def write_many(self, items: Iterable[tuple[bytes, bytes]], ttl: float | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in items:
            if ttl is None:
                pipe.set(key, value)
            elif ttl <= 0:
                pipe.delete(key)
            else:
                pipe.set(key, value, px=_ms(ttl))
        pipe.execute()

    def delete_many(self, keys: list[bytes]) -> int:
        deleted = 0
        for i in range(0, len(keys), 1000):  # bounded commands, whatever the number of keys
            deleted += int(self.client.delete(*keys[i : i + 1000]))
        return deleted

    def incr(self, key: bytes, delta: int) -> Any:
        """Add ``delta``: INCRBY for integers (atomic on the server), else an optimistic
        WATCH/MULTI read-modify-write, so that any value supporting ``+`` works as in the
        embedded mode. ValueError if the key is absent.
        """
        if not self.client.exists(key):
            raise ValueError(f"Key '{key.decode(errors='replace')}' not found")
        try:
            return int(self.client.incrby(key, delta))
        except self._redis.ResponseError:
            pass  # not a 64-bit integer: a pickled number, or something + cannot add to
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise ValueError(f"Key '{key.decode(errors='replace')}' not found")
                    new = loads(raw) + delta
                    pipe.multi()
                    pipe.set(key, dumps(new), keepttl=True)
                    pipe.execute()
                    return new
                except self._redis.WatchError:
                    continue

    def _watched(self, key: bytes, value: bytes, action: str, ttl: float = 0.0) -> bool:
        """Atomically: if ``key`` holds ``value``, delete it or set its TTL (WATCH/MULTI)."""
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if pipe.get(key) != value:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    if action == "delete":
                        pipe.delete(key)
                    else:
                        pipe.pexpire(key, _ms(ttl))
                    pipe.execute()
                    return True
                except self._redis.WatchError:
                    continue

    def delete_if(self, key: bytes, value: bytes) -> bool:
        return self._watched(key, value, "delete")

    def expire_if(self, key: bytes, value: bytes, ttl: float) -> bool:
        return self._watched(key, value, "expire", ttl)

    def stats(self) -> dict[str, Any]:
        info: dict[str, Any] = self.client.info()
        return info
