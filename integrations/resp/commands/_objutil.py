"""Helpers shared by the hash, list, set and sorted-set command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faster_backend.integrations.resp import blocking
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.objects import WRONGTYPE, Entry

Factory = Callable[[], Any]


def read(client: Client, key: bytes, kind: int) -> Any:
    """The live object at ``key`` for a read, None when absent; WRONGTYPE for other types."""
    objs = client.keyspace.objects
    e = objs.get(key)
    if e is not None:
        if e.obj is None or e.expires is not None:
            e = objs.entry(key)
        if e is not None:
            if e.kind != kind:
                raise WRONGTYPE
            return e.obj
    if client.kv.exists(key):
        raise WRONGTYPE
    return None


def entry(client: Client, key: bytes, kind: int) -> Entry | None:
    """The entry at ``key`` for a write that does not create (None when absent)."""
    objs = client.keyspace.objects
    e = objs.get(key)
    if e is not None:
        if e.obj is None or e.expires is not None:
            e = objs.entry(key)
        if e is not None:
            if e.kind != kind:
                raise WRONGTYPE
            return e
    if client.kv.exists(key):
        raise WRONGTYPE
    return None


def create(client: Client, key: bytes, kind: int, factory: Factory) -> Entry:
    """The entry at ``key`` for a write, created empty (not yet visible) when absent."""
    e = entry(client, key, kind)
    if e is None:
        e = client.keyspace.objects.create(key, kind, factory())
    return e


def done(client: Client, key: bytes, e: Entry) -> None:
    """After a write: the object changed; an empty aggregate is deleted, as Redis does."""
    if e.obj:
        client.keyspace.objects.mark(key, e)
    else:
        client.keyspace.objects.delete(key)


def drop(client: Client, key: bytes) -> None:
    """Delete ``key``'s string or object (before storing a new value of another type)."""
    if key in client.keyspace.objects:
        client.keyspace.objects.delete(key)
    else:
        client.kv.delete(key)


def no_object(client: Client, key: bytes) -> None:
    """WRONGTYPE when ``key`` holds a hash, list, set or sorted set (string commands)."""
    objs = client.keyspace.objects
    if key in objs and objs.alive(key):
        raise WRONGTYPE


def replace_object(client: Client, key: bytes) -> bool:
    """Delete ``key``'s object before a string is stored there; True if there was one."""
    objs = client.keyspace.objects
    return key in objs and objs.delete(key)


def expire_object(
    client: Client, key: bytes, when_ms: float, now_ms: float, flags: tuple[bool, ...]
) -> int:
    """EXPIRE & co. on an object key (alive): Redis' NX / XX / GT / LT rules, then set."""
    nx, xx, gt, lt = flags
    objs = client.keyspace.objects
    cur = objs[key].expires
    current = None if cur is None else cur * 1000
    if (nx and current is not None) or (xx and current is None):
        return 0
    if gt and (current is None or when_ms <= current):
        return 0
    if lt and current is not None and when_ms >= current:
        return 0
    if when_ms <= now_ms:
        objs.delete(key)
    else:
        objs.set_expiry(key, when_ms / 1000.0)
    return 1


def object_expiry_ms(client: Client, key: bytes) -> float | int | None:
    """Absolute expiry in ms of an object key; None without expiry; -2 when absent."""
    objs = client.keyspace.objects
    if not objs.alive(key):
        return -2
    cur = objs[key].expires
    return None if cur is None else cur * 1000


def rename_object(client: Client, src: bytes, dst: bytes) -> None:
    client.kv.delete(dst)
    client.keyspace.objects.rename(src, dst)
    if blocking.WAITING:
        blocking.signal(client, dst)
