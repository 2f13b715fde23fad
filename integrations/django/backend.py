"""``FasterCache``: a Django cache backend on a FASTER store, embedded or over RESP.

The hot paths (``get``, ``set``) inline Django's default key function and its memcached key
checks: every call and attribute lookup costs tens of nanoseconds in CPython, and these two
methods are what a Django site calls most. Subclasses that override ``make_key``,
``validate_key`` or ``make_and_validate_key``, and any KEY_FUNCTION, take Django's own path.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    default_key_func,
)
from django.core.exceptions import ImproperlyConfigured

from faster_backend import DataDirLockedError, FasterKV
from faster_backend.integrations.django import registry
from faster_backend.integrations.django.codec import INT_MAX, INT_MIN, PROTOCOL, dumps, loads
from faster_backend.integrations.django.glob import compile_glob
from faster_backend.integrations.django.glob import escape as glob_escape
from faster_backend.integrations.django.locks import EmbeddedLockOps, FasterLock, LockOps
from faster_backend.integrations.django.remote import RespStore, is_remote

_pdumps = pickle.dumps
_ploads = pickle.loads
_KEY_MEMO = 2048  # made keys remembered per backend object
# Longer timeouts (up to infinity) are stored as this many seconds, about 3000 years: the store
# keeps expiry times as 64-bit milliseconds, and Redis refuses larger ones too.
_MAX_TTL = 10**11


class Store(Protocol):
    """The store operations both modes provide (FasterKV's, or RespStore's over RESP)."""

    def read(self, key: bytes) -> bytes | None: ...
    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None: ...
    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool: ...
    def delete(self, key: bytes) -> bool: ...
    def exists(self, key: bytes) -> bool: ...
    def expire(self, key: bytes, ttl: float | None) -> bool: ...
    def ttl(self, key: bytes) -> float | None: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
    def scan(self, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]: ...


def _no_entries() -> int:
    return 0


def _index_size_for(max_entries: int) -> int:
    """The initial index size when OPTIONS set none: about MAX_ENTRIES / 4 buckets (a power of
    two from 64 up to the store's default). The index grows by itself; a small one keeps the
    cull's scans short for Django's default MAX_ENTRIES of 300."""
    size = 64
    while size < max_entries // 4 and size < 1 << 16:
        size <<= 1
    return size


def default_reverse_key(key: str) -> str:
    """The user's key inside a key made by Django's default key function."""
    return key.split(":", 2)[2]


class FasterCache(BaseCache):  # type: ignore[misc]
    """Django cache backend: ``LOCATION`` is a data directory, ``:memory:`` or ``redis://...``."""

    pickle_protocol = PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        if "MAX_ENTRIES" in options and options["MAX_ENTRIES"] is None:
            self._max_entries = sys.maxsize  # no entry limit: the memory budget evicts
        options.pop("MAX_ENTRIES", None)
        options.pop("CULL_FREQUENCY", None)
        reverse = options.pop("REVERSE_KEY_FUNCTION", None)
        self.reverse_key: Callable[[str], str] = (
            default_reverse_key if reverse is None else _import(reverse)
        )
        if isinstance(location, list | tuple):  # Django allows lists for multi-server caches
            if len(location) > 1:
                raise ImproperlyConfigured(
                    "FasterCache takes one LOCATION (a directory or one redis:// URL), got"
                    f" {location!r}"
                )
            location = location[0] if location else ""
        location = str(location or "")
        if not location:
            raise ImproperlyConfigured(
                "FasterCache needs a LOCATION: a data directory, ':memory:', or"
                " 'redis://host:port/db' for a `faster-backend serve` server"
            )
        self.location = location
        self._remote: RespStore | None = None
        self._embedded: FasterKV | None = None
        self._entry: registry.StoreEntry | None = None
        if is_remote(location):
            self._remote = RespStore(location, options)
            self._kv: Store = self._remote
            self._read: Callable[[bytes], bytes | None] = self._remote.read
            self._upsert: Callable[[bytes, bytes, float | None], None] = self._remote.upsert
            self._count: Callable[[], int] = _no_entries  # like RedisCache: no culling
        else:
            unknown = set(options) - registry.STORE_OPTIONS
            if unknown:
                raise ImproperlyConfigured(
                    f"unknown FasterCache OPTIONS {sorted(unknown)}; store options are"
                    f" {sorted(registry.STORE_OPTIONS)} plus MAX_ENTRIES and CULL_FREQUENCY"
                )
            self._store_options = options
            # Opened on first use, not here: Django's system checks build every cache backend
            # before any management command, and `manage.py migrate` must not fail because a
            # running server holds the store.
            self._detach()
            registry.track(self)

    def _attach(self) -> None:
        try:
            entry = registry.open_store(
                self.location, self._store_options, _index_size_for(self._max_entries)
            )
        except DataDirLockedError as exc:
            exc.add_note(f"(Django cache backend FasterCache, LOCATION={self.location!r})")
            raise
        self._entry = entry
        self._embedded = entry.kv
        self._kv = entry.kv
        self._read = entry.kv.read
        self._upsert = entry.kv.upsert
        self._count = entry.kv.__len__

    def _detach(self) -> None:
        """Open the store again on next use."""
        lazy = _LazyStore(self)
        self._entry = None
        self._kv = cast(Store, lazy)
        self._embedded = cast(FasterKV, lazy)
        self._read = lazy.read
        self._upsert = lazy.upsert
        self._count = lazy.__len__

    def open(self) -> None:
        """Open the store now (it opens on first use otherwise); DataDirLockedError if another
        process holds LOCATION."""
        if self._remote is None and self._entry is None:
            self._attach()

    def after_fork(self) -> None:
        """In a forked child: reopen the store on next use (the parent keeps the original)."""
        if self._entry is not None and self._entry.key != registry.MEMORY:
            self._detach()

    # -- keys: the attributes Django's key making reads, kept in one precomputed prefix ----

    @property
    def key_prefix(self) -> str:
        return self._key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        self._key_prefix = value
        self._update_fast_prefix()

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._version = value
        self._update_fast_prefix()

    @property
    def key_func(self) -> Callable[..., str]:
        return self._key_func

    @key_func.setter
    def key_func(self, value: Callable[..., str]) -> None:
        self._key_func = value
        self._update_fast_prefix()

    def _update_fast_prefix(self) -> None:
        cls = type(self)
        fast = (
            getattr(self, "_key_func", None) is default_key_func
            and cls.make_key is BaseCache.make_key
            and cls.validate_key is BaseCache.validate_key
            and cls.make_and_validate_key is BaseCache.make_and_validate_key
        )
        self._kp: str | None = (
            f"{getattr(self, '_key_prefix', '')}:{getattr(self, '_version', 1)}:" if fast else None
        )
        self._keys: dict[str, bytes] = {}

    def _str_key(self, key: str) -> bytes:
        """The made key of a str key at the default version; remembered when it needs no
        warning, so that hot keys skip making and validating (the memo is per backend object,
        i.e. per thread, bounded, and dropped when the prefix, version or key function change).
        """
        kp = self._kp
        if kp is None:  # a KEY_FUNCTION or an overridden make_key / validate_key
            made_key = self.make_and_validate_key(key)
            k = made_key if type(made_key) is str else str(made_key)
            return k.encode("utf-8", "surrogatepass")
        k = kp + key
        if len(k) <= 250 and k.isprintable() and " " not in k:  # no memcached key warning
            made = k.encode()
            keys = self._keys
            if len(keys) >= _KEY_MEMO:
                keys.clear()
            keys[key] = made
            return made
        self.validate_key(k)
        return k.encode("utf-8", "surrogatepass")

    def _k(self, key: Any, version: int | None = None) -> bytes:
        """The made, validated key as bytes."""
        if version is None and type(key) is str:
            made = self._keys.get(key)
            return made if made is not None else self._str_key(key)
        made_key = self.make_and_validate_key(key, version=version)
        k = made_key if type(made_key) is str else str(made_key)
        return k.encode("utf-8", "surrogatepass")

    def _ttl(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is not None and not timeout <= _MAX_TTL:  # also catches inf and NaN
            return _MAX_TTL
        return cast(float | None, timeout)

    # -- BaseCache -------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        if version is None and type(key) is str:
            bkey = self._keys.get(key)
            if bkey is None:
                bkey = self._str_key(key)
        else:
            bkey = self._k(key, version)
        raw = self._read(bkey)
        if raw is None:
            return default
        try:
            if raw[0] == 0x80:  # a pickle (see codec.py)
                return _ploads(raw)
        except IndexError:  # b"", written by some other client
            pass
        return loads(raw)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        if version is None and type(key) is str:
            bkey = self._keys.get(key)
            if bkey is None:
                bkey = self._str_key(key)
        else:
            bkey = self._k(key, version)
        if type(value) is int and INT_MIN <= value <= INT_MAX:
            raw = str(value).encode()
        else:
            raw = _pdumps(value, PROTOCOL)
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is not None and not timeout <= _MAX_TTL:
            timeout = _MAX_TTL
        if self._count() >= self._max_entries:
            self._cull()
        self._upsert(bkey, raw, timeout)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        bkey = self._k(key, version)
        raw = dumps(value)
        ttl = self._ttl(timeout)
        kv = self._kv
        if self._count() >= self._max_entries and not kv.exists(bkey):
            self._cull()
        return kv.add(bkey, raw, ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._kv.expire(self._k(key, version), self._ttl(timeout))

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._kv.delete(self._k(key, version))

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._kv.exists(self._k(key, version))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        bkey = self._k(key, version)
        if self._remote is not None:
            return self._remote.incr(bkey, delta)
        assert self._embedded is not None
        if type(delta) is int:
            try:
                return self._embedded.incr(bkey, delta, create=False)  # keeps the expiry
            except KeyError:
                raise ValueError(f"Key '{key}' not found") from None
            except (ValueError, OverflowError):
                pass  # a pickled number (or one beyond 64 bits): add in Python below
        result: list[Any] = []
        self._embedded.rmw(bkey, _adder(key, delta, result))  # keeps the record's expiry
        return result[0]

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        if self._remote is not None:
            keys = list(keys)
            made = [self._k(key, version) for key in keys]
            values = self._remote.read_many(made) if made else []
            return {k: loads(raw) for k, raw in zip(keys, values, strict=True) if raw is not None}
        read = self._read
        make = self._k
        out: dict[Any, Any] = {}
        for key in keys:
            raw = read(make(key, version))
            if raw is not None:
                out[key] = loads(raw)
        return out

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        ttl = self._ttl(timeout)
        if self._remote is not None:
            items = [(self._k(key, version), dumps(value)) for key, value in data.items()]
            if items:
                self._remote.write_many(items, ttl)
            return []
        items = [(self._k(key, version), dumps(value)) for key, value in data.items()]
        if self._count() + len(items) <= self._max_entries:
            assert self._embedded is not None
            self._embedded.upsert_many(items, ttl)  # one commit under durability "always"
            return []
        for bkey, raw in items:
            if self._count() >= self._max_entries:
                self._cull()
            self._kv.upsert(bkey, raw, ttl)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self._k(key, version) for key in keys]
        if self._remote is not None:
            if made:
                self._remote.delete_many(made)
            return
        delete = self._kv.delete
        for k in made:
            delete(k)

    def clear(self) -> None:
        """Remove every key of the store (every alias sharing this LOCATION)."""
        self._kv.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: the store stays open for the process (closed at exit)."""

    # -- culling (MAX_ENTRIES / CULL_FREQUENCY, as LocMemCache and the file cache do) ------

    def _cull(self) -> None:
        entry = self._entry
        if entry is None:  # RESP mode does not cull, like Django's RedisCache
            return
        kv = self._kv
        with entry.cull_lock:
            n = len(kv)
            if n < self._max_entries:
                return  # another thread culled meanwhile
            if self._cull_frequency == 0:
                kv.clear()
                return
            target = n - n // self._cull_frequency
            cursor = entry.cull_cursor
            wrapped = 0
            # Resume where the last cull stopped, so culls spread over the whole key space.
            while len(kv) > target and wrapped < 2:
                # 1024 buckets a step: empty ones cost next to nothing, and a cache far below
                # its index size (Django's default MAX_ENTRIES is 300) is mostly empty buckets.
                cursor, keys = kv.scan(cursor, 1024)
                for k in keys:
                    if len(kv) <= target:
                        break
                    kv.delete(k)
                if cursor == 0:
                    wrapped += 1
            entry.cull_cursor = cursor

    # -- async ---------------------------------------------------------------------------

    # Embedded mode: the engine's asyncio API (aread, aupsert, aadd, armw, ...). Operations on
    # records in memory complete at once on the event loop, without a thread hop; a record on
    # the device is read with an awaited device read, so the loop is never blocked, and the
    # operation stays atomic (the engine re-runs it under its latch with what it read). RESP
    # mode: redis-py blocks, so each async method runs its sync twin in Django's sync thread,
    # as Django's RedisCache does.

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        return await sync_to_async(func, thread_sensitive=True)(*args)

    async def _acull_if_full(self, bkey: bytes | None = None) -> None:
        if self._count() >= self._max_entries:
            kv = self._embedded
            assert kv is not None
            if bkey is None or not await kv.aexists(bkey):
                # Rare (once per MAX_ENTRIES / CULL_FREQUENCY writes), and its deletes may
                # touch the device: run it off the loop.
                await asyncio.to_thread(self._cull)

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        if self._remote is not None:
            return await self._in_thread(self.get, key, default, version)
        assert self._embedded is not None
        raw = await self._embedded.aread(self._k(key, version))
        return default if raw is None else loads(raw)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        if self._remote is not None:
            return cast(dict[Any, Any], await self._in_thread(self.get_many, keys, version))
        assert self._embedded is not None
        out: dict[Any, Any] = {}
        for key in list(keys):
            raw = await self._embedded.aread(self._k(key, version))
            if raw is not None:
                out[key] = loads(raw)
        return out

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        if self._remote is not None:
            return cast(bool, await self._in_thread(self.has_key, key, version))
        assert self._embedded is not None
        return bool(await self._embedded.aexists(self._k(key, version)))

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        if self._remote is not None:
            await self._in_thread(self.set, key, value, timeout, version)
            return
        assert self._embedded is not None
        bkey = self._k(key, version)
        raw = dumps(value)
        ttl = self._ttl(timeout)
        await self._acull_if_full()
        await self._embedded.aupsert(bkey, raw, ttl)

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        if self._remote is not None:
            return cast(bool, await self._in_thread(self.add, key, value, timeout, version))
        assert self._embedded is not None
        bkey = self._k(key, version)
        raw = dumps(value)
        ttl = self._ttl(timeout)
        await self._acull_if_full(bkey)
        return bool(await self._embedded.aadd(bkey, raw, ttl))

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        if self._remote is not None:
            return cast(bool, await self._in_thread(self.touch, key, timeout, version))
        assert self._embedded is not None
        return bool(await self._embedded.aexpire(self._k(key, version), self._ttl(timeout)))

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        if self._remote is not None:
            return cast(bool, await self._in_thread(self.delete, key, version))
        assert self._embedded is not None
        return bool(await self._embedded.adelete(self._k(key, version)))

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        # Atomic in both modes: an RMW in the store, or INCRBY on the server.
        if self._remote is not None:
            return await self._in_thread(self.incr, key, delta, version)
        assert self._embedded is not None
        bkey = self._k(key, version)
        if type(delta) is int:
            try:
                return await self._embedded.aincr(bkey, delta, create=False)
            except KeyError:
                raise ValueError(f"Key '{key}' not found") from None
            except (ValueError, OverflowError):
                pass
        result: list[Any] = []
        await self._embedded.armw(bkey, _adder(key, delta, result))
        return result[0]

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await self.aincr(key, -delta, version)

    async def aset_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        if self._remote is not None:
            return cast(list[Any], await self._in_thread(self.set_many, data, timeout, version))
        assert self._embedded is not None
        ttl = self._ttl(timeout)
        for key, value in data.items():
            bkey = self._k(key, version)
            raw = dumps(value)
            await self._acull_if_full()
            await self._embedded.aupsert(bkey, raw, ttl)
        return []

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        if self._remote is not None:
            await self._in_thread(self.delete_many, keys, version)
            return
        assert self._embedded is not None
        for k in [self._k(key, version) for key in keys]:
            await self._embedded.adelete(k)

    async def aclear(self) -> None:
        if self._remote is not None:
            await self._in_thread(self.clear)
        else:
            self.clear()

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do, as for ``close``."""

    # -- django-redis style extras ---------------------------------------------------------

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds left (rounded); None if the key never expires; 0 if it does not exist."""
        try:
            left = self._kv.ttl(self._k(key, version))
        except KeyError:
            return 0
        return None if left is None else round(left)

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """Like ``ttl`` in milliseconds."""
        try:
            left = self._kv.ttl(self._k(key, version))
        except KeyError:
            return 0
        return None if left is None else round(left * 1000)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Give an existing key a new timeout (None: never expires; <= 0 deletes it)."""
        return self._kv.expire(self._k(key, version), self._ttl(timeout))

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Make an existing key never expire; False if it does not exist."""
        return self._kv.expire(self._k(key, version), None)

    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> FasterLock:
        """A lock (redis-py's Lock interface): ``with cache.lock("k", timeout=10): ...``."""
        bkey = self._k(key, version)
        ops: LockOps
        if self._remote is not None:
            ops = self._remote
        else:
            assert self._embedded is not None
            ops = EmbeddedLockOps(self._embedded)
        return FasterLock(ops, bkey, timeout, sleep, blocking, blocking_timeout, thread_local)

    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """The glob over made keys that matches user keys matching ``pattern``."""
        prefix = glob_escape(self.key_prefix if prefix is None else prefix)
        version_text = glob_escape(str(self.version if version is None else version))
        return str(self.key_func(pattern, prefix, version_text))

    def _scan_made(self, pattern: str, itersize: int | None) -> Iterator[bytes]:
        count = itersize or 100
        if self._remote is not None:
            cursor = 0
            while True:
                cursor, keys = self._remote.scan(cursor, count, match=pattern)
                yield from keys
                if cursor == 0:
                    return
        regex = compile_glob(pattern)
        cursor = 0
        seen: set[bytes] = set()  # SCAN may return a key twice while the index grows
        while True:
            cursor, keys = self._kv.scan(cursor, count)
            for k in keys:
                if k not in seen and regex.fullmatch(k.decode("utf-8", "surrogatepass")):
                    seen.add(k)
                    yield k
            if cursor == 0:
                return

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """User keys matching the glob ``search`` (in this alias' prefix and version)."""
        for k in self._scan_made(self.make_pattern(search, version=version), itersize):
            yield self.reverse_key(k.decode("utf-8", "surrogatepass"))

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Like ``iter_keys``, as a list."""
        return list(self.iter_keys(search, version=version))

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        itersize: int | None = None,
    ) -> int:
        """Delete every key matching the glob ``pattern``; returns how many were deleted."""
        made = list(self._scan_made(self.make_pattern(pattern, version, prefix), itersize))
        if self._remote is not None:
            return self._remote.delete_many(made) if made else 0
        delete = self._kv.delete
        return sum(1 for k in made if delete(k))

    def stats(self) -> dict[str, Any]:
        """Store counters: the engine's stats() (embedded) or the server's INFO (RESP)."""
        if self._remote is not None:
            info = self._remote.stats()
            hits = int(info.get("keyspace_hits", 0))
            misses = int(info.get("keyspace_misses", 0))
            out: dict[str, Any] = dict(info)
            out.update(
                mode="resp",
                location=self.location,
                hits=hits,
                misses=misses,
                hit_rate=hits / (hits + misses) if hits + misses else None,
                keys=len(self._remote),
            )
            return out
        assert self._embedded is not None
        out = dict(self._embedded.stats())
        hits, reads = int(out.get("read_hits", 0)), int(out.get("reads", 0))
        out.update(
            mode="embedded",
            location=self.location,
            hits=hits,
            misses=reads - hits,
            hit_rate=hits / reads if reads else None,
            keys=len(self._embedded),
            disk_bytes=_disk_bytes(self._entry.key if self._entry else None),
        )
        return out


def _adder(key: Any, delta: int, result: list[Any]) -> Callable[[bytes | None], bytes]:
    """The RMW updater of incr: adds ``delta`` to the decoded value (ValueError if absent)."""

    def add_delta(old: bytes | None) -> bytes:
        if old is None:
            raise ValueError(f"Key '{key}' not found")
        new = loads(old) + delta
        result.append(new)
        return dumps(new)

    return add_delta


def _disk_bytes(key: str | None) -> int:
    if key is None or key == registry.MEMORY:
        return 0
    total = 0
    for path in Path(key).rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # a file removed while we walk
            continue
    return total


def _import(path: Any) -> Callable[[str], str]:
    if callable(path):
        return cast(Callable[[str], str], path)
    from django.utils.module_loading import import_string

    return cast(Callable[[str], str], import_string(path))


class _LazyStore:
    """Stands in for the store until first use (and after fork()): then opens LOCATION and
    puts the real store in the backend's attributes, so later calls go straight to it."""

    def __init__(self, cache: FasterCache) -> None:
        self._cache = cache

    def _store(self) -> FasterKV:
        self._cache._attach()
        assert self._cache._embedded is not None
        return self._cache._embedded

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store(), name)

    # Bound up front by the backend's hot paths, so these must not open the store yet.
    def read(self, key: bytes) -> bytes | None:
        value: bytes | None = self._store().read(key)
        return value

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        self._store().upsert(key, value, ttl)

    def __len__(self) -> int:
        return len(self._store())
