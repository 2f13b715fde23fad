"""One logical database (SELECT n): its store and the WATCH bookkeeping for its keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faster_backend.integrations.resp.objects import TYPE_NAMES, ObjectStore
from faster_backend.store import FasterKV

if TYPE_CHECKING:
    from faster_backend.integrations.resp.client import Client

TypeProbe = Callable[["Keyspace", bytes], bool]

KEY_TYPES: list[tuple[str, TypeProbe]] = []
"""(type name, probe) pairs that TYPE and SCAN ... TYPE consult after "string".

Strings are the store's own values. Modules that add other value types (hashes, lists, sets,
sorted sets) register a probe here that says whether a key holds one of theirs."""


class Keyspace:
    """Database number ``index``: a FasterKV plus the clients WATCHing its keys."""

    __slots__ = ("index", "kv", "may_expire", "objects", "watchers")

    def __init__(self, index: int, kv: FasterKV, objects: ObjectStore | None = None) -> None:
        self.index = index
        self.kv = kv
        # Hashes, lists, sets and sorted sets (objects.py); ``key in objects`` is the type check
        # the string commands make.
        self.objects = objects if objects is not None else ObjectStore(None, None)
        self.watchers: dict[bytes, set[Client]] = {}
        # False while no key of this database can have an expiry: read-modify-write commands
        # then skip the store's (slower) rmw, as there is no TTL to keep. Every command that
        # sets an expiry must call ``expiry_set()``; a store opened from a directory may hold
        # expiring records already.
        self.may_expire = kv.data_dir is not None or len(kv) > 0

    def expiry_set(self) -> None:
        self.may_expire = True

    def cleared(self) -> None:
        """The store was emptied (FLUSHDB): no key has an expiry any more."""
        self.may_expire = False
        self.touch_all()

    def touch(self, key: bytes) -> None:
        """``key`` changed: every client WATCHing it will see its EXEC fail."""
        clients = self.watchers.get(key)
        if clients:
            for c in clients:
                c.dirty = True

    def touch_all(self) -> None:
        for clients in self.watchers.values():
            for c in clients:
                c.dirty = True

    def type_of(self, key: bytes) -> str | None:
        """Redis' TYPE name of ``key``'s value, or None when the key does not exist."""
        if key in self.objects:
            kind = self.objects.kind_of(key)
            if kind is not None:
                return TYPE_NAMES[kind]
        if self.kv.exists(key):
            return "string"
        for name, probe in KEY_TYPES:
            if probe(self, key):
                return name
        return None
