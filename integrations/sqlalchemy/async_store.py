"""An async face of ``SqlTableStore`` for ASGI stacks.

``AsyncSqlTableStore`` is a starsessions ``SessionStore`` (``read`` / ``write`` / ``remove``) and
also offers Litestar's ``Store`` methods (``get`` / ``set`` / ``delete`` / ``delete_all`` /
``exists`` / ``expires_in``). Cache hits on an embedded cache are answered on the event loop;
everything that may touch the database runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

from faster_backend.integrations.sqlalchemy.session_store import SqlTableStore, utcnow


def _session_store_base() -> type[Any]:
    try:
        from starsessions.stores.base import SessionStore
    except ImportError:  # starsessions is optional: the Litestar-style methods still work
        return object
    base: type[Any] = SessionStore
    return base


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class AsyncSqlTableStore(_session_store_base()):  # type: ignore[misc]
    """Async adapter; ``prefix`` is prepended to every session id / key in the table.

    ``default_ttl``: lifetime (seconds) of values set without one (Litestar ``expires_in=None``
    and starsessions' browser-session cookies, ``lifetime=0``): every row gets an expiry so the
    cleanup can remove it.
    """

    def __init__(
        self,
        store: SqlTableStore,
        *,
        prefix: str = "",
        default_ttl: float | timedelta = timedelta(days=14),
    ) -> None:
        seconds = _seconds(default_ttl)
        if seconds <= 0:
            raise ValueError(f"default_ttl must be positive, got {default_ttl!r}")
        self.store = store
        self.prefix = prefix
        self.default_ttl = seconds

    def _id(self, key: str) -> str:
        return self.prefix + key

    async def _get(self, sid: str) -> bytes | None:
        if self.store.cache_is_local:
            hit = self.store.get_cached(sid)
            if hit is not None:
                return hit
        return await asyncio.to_thread(self.store.get, sid)

    # -- starsessions ---------------------------------------------------------------------

    async def read(self, session_id: str, lifetime: int) -> bytes:
        """The session's data, or ``b""`` if there is none (starsessions' convention)."""
        return await self._get(self._id(session_id)) or b""

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        seconds = self.default_ttl if lifetime == 0 else max(1, ttl)
        await asyncio.to_thread(self.store.set, self._id(session_id), data, seconds)
        return session_id

    async def remove(self, session_id: str) -> None:
        await asyncio.to_thread(self.store.delete, self._id(session_id))

    # -- Litestar Store -------------------------------------------------------------------

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        value = await self._get(self._id(key))
        if value is not None and renew_for:
            await asyncio.to_thread(self.store.set, self._id(key), value, _seconds(renew_for))
        return value

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        seconds = self.default_ttl if expires_in is None else _seconds(expires_in)
        await asyncio.to_thread(self.store.set, self._id(key), data, seconds)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.store.delete, self._id(key))

    async def delete_all(self) -> None:
        """Delete every row under this store's prefix (refused without a prefix)."""
        if not self.prefix:
            raise ValueError("delete_all needs a prefix: without one it would empty the table")
        await asyncio.to_thread(self.store.delete_prefix, self.prefix)

    async def exists(self, key: str) -> bool:
        return await self._get(self._id(key)) is not None

    async def expires_in(self, key: str) -> int | None:
        """Whole seconds until ``key`` expires, or None if it does not exist."""
        expiry = await asyncio.to_thread(self.store.expiry, self._id(key))
        if expiry is None:
            return None
        return max(0, math.ceil((expiry - utcnow()).total_seconds()))
