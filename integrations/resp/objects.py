"""The object store: hashes, lists, sets and sorted sets beside the string store.

As Garnet keeps a second (object) store beside its main store over Tsavorite, every database
has an ``ObjectStore`` beside its string ``FasterKV``:

* the key index (``dict``: key -> ``Entry``) is in memory, so type checks on the string path
  cost one dict lookup;
* values are live Python objects (``dict``, ``deque``, ``set``, ``ZSet``) while they are in the
  live cache; each has a compact serialized image (``serialize``: magic, version, type, count,
  lengths, data, CRC32) that is written into a FasterKV of its own (the object log) when the
  entry is *written back*;
* an entry whose live object was evicted from the cache keeps only its key, type and expiry in
  the index and is read back from the object log on its next use.

Write-back happens when a live object is evicted from the cache (bounded by an estimate of its
bytes, ``max_bytes``), at the end of every event-loop turn under ``durability=always``, once a
second under ``periodic``, and on SAVE / BGSAVE / shutdown (``flush``); after a ``flush`` the
object log holds every object, so a checkpoint of the object log is the source of truth after
a restart (``ObjectStore`` rebuilds its index from the log).
"""

from __future__ import annotations

import logging
import struct
import sys
import time
import zlib
from array import array
from collections import deque
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedList

from faster_backend.integrations.resp.types import RespError
from faster_backend.store import FasterKV

if TYPE_CHECKING:
    from faster_backend.config import StoreConfig

log = logging.getLogger(__name__)

WRONGTYPE = RespError("WRONGTYPE Operation against a key holding the wrong kind of value")

HASH = 1
LIST = 2
SET = 3
ZSET = 4
STREAM = 5
TYPE_NAMES = {HASH: "hash", LIST: "list", SET: "set", ZSET: "zset", STREAM: "stream"}

MAGIC = b"FO"
VERSION = 1
CHUNKED = 0x80  # type flag: the image is split over records of the chunk log
_HEADER = struct.Struct("<2sBBI")  # magic, version, type, item count
_CHUNK_REF = struct.Struct("<2sBBIQI")  # magic, version, type|CHUNKED, chunks, size, crc
_CRC = struct.Struct("<I")
_ID = struct.Struct("<QQ")
_LITTLE = sys.byteorder == "little"


class CorruptObjectError(ValueError):
    """A serialized object failed its checks (magic, version, lengths or CRC)."""


class ZSet:
    """A sorted set: member -> score plus the members ordered by (score, member), as Redis."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: SortedList = SortedList()

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, member: bytes, score: float) -> None:
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            self.order.remove((old, member))
        self.scores[member] = score
        self.order.add((score, member))

    def remove(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.order.remove((old, member))
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        if score is None:
            return None
        return int(self.order.index((score, member)))


class Stream:
    """A stream: entry IDs in order, their field/value lists, and the last ID ever added."""

    __slots__ = ("data", "ids", "last")

    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.data: dict[tuple[int, int], list[bytes]] = {}
        self.last = (0, 0)

    def __len__(self) -> int:
        return len(self.ids) or 1  # an empty stream still exists (Redis keeps it)


class Entry:
    """One object key: its live value (None while evicted), type and expiry (unix time)."""

    __slots__ = ("cache", "expires", "kind", "obj", "size", "stored")

    def __init__(self, obj: Any, kind: int, expires: float | None = None) -> None:
        self.obj = obj
        # What reads derive from the object and reuse until it changes (LRANGE's encoded reply,
        # the SCAN order); ObjectStore.mark clears it on every write.
        self.cache: Any = None
        self.kind = kind
        self.expires = expires
        self.size = 0  # estimated bytes of the live object when last accounted (0: evicted)
        self.stored = False  # the object log holds some version (delete it there too)


# -- serialization ---------------------------------------------------------------------------


def _lengths(items: list[bytes]) -> bytes:
    a = array("I", map(len, items))
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        a.byteswap()
    return a.tobytes()


def serialize(kind: int, obj: Any) -> bytes:
    """The compact image of a live object (no pickle: plain lengths and bytes)."""
    scores = b""
    if kind == HASH:
        items: list[bytes] = []
        for f, v in obj.items():
            items.append(f)
            items.append(v)
    elif kind == ZSET:
        items = [m for _s, m in obj.order]
        sc = array("d", (s for s, _m in obj.order))
        if not _LITTLE:  # pragma: no cover
            sc.byteswap()
        scores = sc.tobytes()
    elif kind == STREAM:
        items = [_ID.pack(*obj.last)]
        for i in obj.ids:
            fields = obj.data[i]
            items.append(_ID.pack(*i) + struct.pack("<I", len(fields)))
            items.extend(fields)
    else:
        items = list(obj)
    body = b"".join(
        (_HEADER.pack(MAGIC, VERSION, kind, len(items)), _lengths(items), b"".join(items), scores)
    )
    return body + _CRC.pack(zlib.crc32(body))


def object_type(image: bytes) -> int:
    """The type byte of an image (without the CHUNKED flag), checking magic and version."""
    if len(image) < _HEADER.size or image[:2] != MAGIC or image[2] != VERSION:
        raise CorruptObjectError("bad object header (magic or version)")
    return image[3] & ~CHUNKED


def deserialize(image: bytes) -> tuple[int, Any]:
    """(type, live object) from ``serialize``'s image; CorruptObjectError on any mismatch."""
    if len(image) < _HEADER.size + 4:
        raise CorruptObjectError(f"object image too short ({len(image)} bytes)")
    magic, version, kind, count = _HEADER.unpack_from(image)
    if magic != MAGIC or version != VERSION or kind not in TYPE_NAMES:
        raise CorruptObjectError(f"bad object header at offset 0: {image[:8]!r}")
    (crc,) = _CRC.unpack_from(image, len(image) - 4)
    if zlib.crc32(memoryview(image)[:-4]) != crc:
        raise CorruptObjectError(f"object checksum mismatch at offset {len(image) - 4}")
    pos = _HEADER.size
    lens = array("I")
    lens.frombytes(image[pos : pos + 4 * count])
    if not _LITTLE:  # pragma: no cover
        lens.byteswap()
    pos += 4 * count
    items: list[bytes] = []
    for n in lens:
        items.append(image[pos : pos + n])
        pos += n
    if kind == ZSET:
        sc = array("d")
        sc.frombytes(image[pos : pos + 8 * count])
        if not _LITTLE:  # pragma: no cover
            sc.byteswap()
        pos += 8 * count
    if pos != len(image) - 4:
        raise CorruptObjectError(f"object length mismatch at offset {pos}")
    if kind == HASH:
        it = iter(items)
        return kind, dict(zip(it, it, strict=True))
    if kind == LIST:
        return kind, deque(items)
    if kind == SET:
        return kind, set(items)
    if kind == STREAM:
        return kind, _stream(items)
    z = ZSet()
    z.scores = dict(zip(items, sc, strict=True))
    z.order = SortedList(zip(sc, items, strict=True))
    return kind, z


# -- size estimates --------------------------------------------------------------------------

# Rough CPython costs per element, beyond the element's bytes (checked with tracemalloc): a bytes
# object's header (33), plus the container's share: a dict entry with its index slot (~40), set
# slots (~60: sets keep their table sparse), a deque slot (~9); a sorted-set member also has a
# float, a (score, member) tuple and a SortedList slot.
_BYTES = 33
_PER_ITEM = {HASH: 2 * _BYTES + 40, LIST: _BYTES + 9, SET: _BYTES + 60, ZSET: _BYTES + 130}
_SAMPLE = 8


def estimate(kind: int, obj: Any) -> int:
    """An estimate of a live object's memory in bytes: O(1), from its length and a sample."""
    if kind == STREAM:
        n = len(obj.ids)
        if not n:
            return 200
        sample = [obj.data[i] for i in obj.ids[:_SAMPLE]]
        fields = sum(len(f) for f in sample) / len(sample)
        payload = sum(sum(map(len, f)) for f in sample) / len(sample)
        return 200 + int(n * (200 + fields * (_BYTES + 8) + payload))
    n = len(obj)
    if not n:
        return 100
    if kind == HASH:
        pairs = list(islice(obj.items(), _SAMPLE))
        payload = sum(len(f) + len(v) for f, v in pairs) / len(pairs)
    elif kind == ZSET:
        payload = sum(map(len, islice(obj.scores, _SAMPLE))) / min(n, _SAMPLE)
    else:
        payload = sum(map(len, islice(obj, _SAMPLE))) / min(n, _SAMPLE)
    return 100 + int(n * (_PER_ITEM[kind] + payload))


# -- the store -------------------------------------------------------------------------------


class ObjectStore(dict[bytes, Entry]):
    """The object keys of one database (a dict: ``key in store`` is the fast type check).

    Every write to a live object goes through ``mark``: it puts the entry in ``changed`` (one
    dict store). ``drain`` (at the end of an event-loop turn under ``durability=always``, once a
    second otherwise) re-estimates the size of what changed and either writes it back
    (``write_through``: periodic and always) or moves it to ``dirty`` (none), which eviction,
    SAVE and shutdown write back. The object log holds the current version of an entry exactly
    when the entry is in neither dict.
    """

    max_bytes = 256 << 20
    """Estimated bytes of live objects kept; beyond it the oldest are written back and dropped."""

    def __init__(self, path: str | None, config: StoreConfig | None) -> None:
        super().__init__()
        self.path = path
        self.config = config
        self.kv: FasterKV | None = None  # the object log, opened on first write-back
        self.chunks: FasterKV | None = None  # records of images larger than a page allows
        # durability=always: the object logs run without their own per-write commits; ``sync``
        # commits them once per event-loop turn instead (see state.ServerState.sync_writes).
        self.synchronous = config is not None and config.durability == "always"
        self.write_through = config is not None and config.durability != "none"
        self.live = 0
        self.live_bytes = 0
        self.changed: dict[bytes, Entry] = {}
        self.dirty: dict[bytes, Entry] = {}
        self.unsynced = False  # the object logs hold writes not yet committed (synchronous)
        self.expiring: dict[bytes, None] = {}
        self.write_backs = 0
        self.read_backs = 0
        self.expired = 0  # keys removed by active expiry
        if path is not None and (Path(path) / "objects").is_dir():
            self._open()
            self._load_index()

    # -- object log ------------------------------------------------------------------------

    def _open_log(self, sub: str | None) -> FasterKV:
        if self.config is None:
            return FasterKV(path=sub)
        if self.synchronous:
            return FasterKV.from_config(self.config, path=sub, durability="none")
        return FasterKV.from_config(self.config, path=sub)

    def _open(self) -> FasterKV:
        if self.kv is None:
            sub = None if self.path is None else str(Path(self.path) / "objects")
            self.kv = self._open_log(sub)
        return self.kv

    def _chunk_store(self) -> FasterKV:
        if self.chunks is None:
            sub = None if self.path is None else str(Path(self.path) / "objects" / "chunks")
            self.chunks = self._open_log(sub)
        return self.chunks

    def logs(self) -> list[FasterKV]:
        """The object logs opened so far (chunks first: a reference must not outlive them)."""
        return [kv for kv in (self.chunks, self.kv) if kv is not None]

    def _load_index(self) -> None:
        kv = self.kv
        assert kv is not None
        for key in list(kv.keys()):
            found = kv.read_with_expiry(key)
            if found is None:
                continue
            try:
                kind = object_type(found[0])
            except CorruptObjectError as e:
                log.error("object log of %s: key %r: %s (skipped)", self.path, key, e)
                continue
            e2 = Entry(None, kind, found[1])
            e2.stored = True
            self[key] = e2
            if found[1] is not None:
                self.expiring[key] = None

    def _write(self, key: bytes, entry: Entry) -> None:
        kv = self._open()
        image = serialize(entry.kind, entry.obj)
        ttl = None if entry.expires is None else max(entry.expires - time.time(), 0.001)
        limit = max(kv.page_size // 4, 4096)
        if len(image) > limit:
            chunks = self._chunk_store()
            n = 0
            for off in range(0, len(image), limit):
                chunks.upsert(_chunk_key(key, n), image[off : off + limit])
                n += 1
            kind = entry.kind | CHUNKED
            ref = _CHUNK_REF.pack(MAGIC, VERSION, kind, n, len(image), zlib.crc32(image))
            old = kv.read(key)
            kv.upsert(key, ref, ttl)
            self._drop_chunks(key, old, keep=n)
        else:
            old = kv.read(key) if self.chunks is not None else None
            kv.upsert(key, image, ttl)
            self._drop_chunks(key, old, keep=0)
        self.changed.pop(key, None)
        self.dirty.pop(key, None)
        self._resize(entry)
        entry.stored = True
        self.unsynced = True
        self.write_backs += 1

    def _drop_chunks(self, key: bytes, old: bytes | None, keep: int) -> None:
        if old is None or len(old) != _CHUNK_REF.size or not old[3] & CHUNKED:
            return
        n = _CHUNK_REF.unpack(old)[3]
        assert self.chunks is not None
        for i in range(keep, n):
            self.chunks.delete(_chunk_key(key, i))

    def _read(self, key: bytes) -> tuple[int, Any] | None:
        kv = self.kv
        image = None if kv is None else kv.read(key)
        if image is None:
            return None
        if len(image) == _CHUNK_REF.size and image[3] & CHUNKED:
            _m, _v, _k, n, size, crc = _CHUNK_REF.unpack(image)
            chunks = self._chunk_store()
            parts = []
            for i in range(n):
                part = chunks.read(_chunk_key(key, i))
                if part is None:
                    raise CorruptObjectError(f"chunk {i} of {n} missing")
                parts.append(part)
            image = b"".join(parts)
            if len(image) != size or zlib.crc32(image) != crc:
                raise CorruptObjectError("chunked object size or checksum mismatch")
        self.read_backs += 1
        return deserialize(image)

    # -- entries ---------------------------------------------------------------------------

    def entry(self, key: bytes) -> Entry | None:
        """The live entry of ``key`` (loaded from the object log if evicted), or None."""
        e = self.get(key)
        if e is None:
            return None
        if e.expires is not None and e.expires <= time.time():
            self.delete(key)
            return None
        if e.obj is None:
            try:
                found = self._read(key)
            except CorruptObjectError as exc:
                log.error("object %r in database %s: %s; dropping the key", key, self.path, exc)
                found = None
            if found is None:
                # The object log evicted or lost the record: the key vanishes, like a string
                # whose page was evicted.
                self.pop(key, None)
                self.expiring.pop(key, None)
                return None
            e.kind, e.obj = found
            e.cache = None
            self.live += 1
            self._resize(e)
        return e

    def mark(self, key: bytes, e: Entry) -> None:
        """``e`` (the entry of ``key``) changed: the one place every object write reports to."""
        self.changed[key] = e
        e.cache = None

    def kind_of(self, key: bytes) -> int | None:
        e = self.get(key)
        if e is None:
            return None
        if e.expires is not None and e.expires <= time.time():
            self.delete(key)
            return None
        return e.kind

    def create(self, key: bytes, kind: int, obj: Any) -> Entry:
        e = Entry(obj, kind)
        self[key] = e
        self.changed[key] = e
        self.live += 1
        return e

    def delete(self, key: bytes) -> bool:
        e = self.pop(key, None)
        if e is None:
            return False
        self.changed.pop(key, None)
        self.dirty.pop(key, None)
        if e.obj is not None:
            self.live -= 1
            self.live_bytes -= e.size
        if e.expires is not None:
            self.expiring.pop(key, None)
        if e.stored and self.kv is not None:
            old = self.kv.read(key) if self.chunks is not None else None
            self.kv.delete(key)
            self._drop_chunks(key, old, keep=0)
            self.unsynced = True
        return True

    def alive(self, key: bytes) -> bool:
        e = self.get(key)
        if e is None:
            return False
        if e.expires is not None and e.expires <= time.time():
            self.delete(key)
            return False
        return True

    def set_expiry(self, key: bytes, when: float | None) -> None:
        e: Entry | None = self[key]
        if e is not None and e.obj is None:
            # Evicted: read it back, so that the next write-back stores the new expiry with it.
            e = self.entry(key)
        if e is None:
            return
        e.expires = when
        self.changed[key] = e
        if when is None:
            self.expiring.pop(key, None)
        else:
            self.expiring[key] = None

    def rename(self, src: bytes, dst: bytes) -> None:
        e = self.entry(src)
        assert e is not None
        obj, kind, expires = e.obj, e.kind, e.expires
        self.delete(src)
        self.delete(dst)
        self.create(dst, kind, obj)
        if expires is not None:
            self.set_expiry(dst, expires)

    def clear(self) -> None:
        super().clear()
        self.expiring.clear()
        self.changed.clear()
        self.dirty.clear()
        self.live = 0
        self.live_bytes = 0
        for kv in self.logs():
            kv.clear()
            self.unsynced = True

    def live_keys(self) -> Iterator[bytes]:
        now = time.time()
        for k, e in list(self.items()):
            if e.expires is None or e.expires > now:
                yield k

    # -- write-back, durability and eviction -----------------------------------------------

    def _resize(self, e: Entry) -> None:
        size = estimate(e.kind, e.obj)
        self.live_bytes += size - e.size
        e.size = size

    def drain(self, write: bool) -> int:
        """Account for the objects changed since the last drain; with ``write`` write them
        back, else keep them in ``dirty``. Returns how many were written."""
        changed = self.changed
        if not changed:
            return 0
        n = 0
        now = time.time()
        for key, e in list(changed.items()):
            if e.expires is not None and e.expires <= now:
                self.delete(key)
                self.expired += 1
            elif write:
                self._write(key, e)
                n += 1
            else:
                self._resize(e)
                self.dirty[key] = e
        changed.clear()
        return n

    def sync(self) -> None:
        """durability=always: write back what changed, then commit the object logs (chunks
        first), so an acknowledged write is durable before its reply leaves. Between two
        batches no command holds a live object, so the cache bound is enforced here too."""
        if self.changed:
            self.drain(write=True)
            if self.live_bytes > self.max_bytes:
                self.evict()  # everything is clean now: this only drops objects
        if self.unsynced:
            for kv in self.logs():
                kv.commit()
            self.unsynced = False

    def flush(self) -> int:
        """Write every changed or dirty live object into the object log; returns how many."""
        n = self.drain(write=True)
        for key, e in list(self.dirty.items()):
            self._write(key, e)
            n += 1
        return n

    def evict(self) -> None:
        """Write back and drop the oldest live objects (key creation order) until their
        estimated size is under three quarters of ``max_bytes``."""
        self.drain(write=self.write_through)
        target = self.max_bytes * 3 // 4
        for key, e in list(self.items()):
            if self.live_bytes <= target:
                break
            if e.obj is None:
                continue
            if key in self.dirty:
                self._write(key, e)
            e.obj = None
            e.cache = None
            self.live -= 1
            self.live_bytes -= e.size
            e.size = 0

    def sweep(self, limit: int = 256) -> int:
        """Once a second: account for (and with write-through durability write back) what
        changed, evict over ``max_bytes``, then active expiry (up to ``limit`` expired keys).
        Never during a command, which may hold live objects. Returns how many keys expired."""
        before = self.expired
        self.drain(write=self.write_through)
        if self.live_bytes > self.max_bytes:
            self.evict()
        if self.expiring:
            now = time.time()
            for key in list(self.expiring)[:limit]:
                e = self.get(key)
                if e is None:
                    self.expiring.pop(key, None)
                elif e.expires is not None and e.expires <= now:
                    self.delete(key)
                    self.expired += 1
        return self.expired - before

    def close(self) -> None:
        for kv in (self.kv, self.chunks):
            if kv is not None:
                kv.close()


def _stream(items: list[bytes]) -> Stream:
    s = Stream()
    try:
        s.last = _ID.unpack(items[0])
        pos = 1
        while pos < len(items):
            head = items[pos]
            ident = _ID.unpack(head[:16])
            (n,) = struct.unpack("<I", head[16:20])
            s.ids.append(ident)
            s.data[ident] = items[pos + 1 : pos + 1 + n]
            pos += 1 + n
    except (struct.error, IndexError):
        raise CorruptObjectError("malformed stream entries") from None
    return s


def _chunk_key(key: bytes, i: int) -> bytes:
    return struct.pack("<I", i) + key

