"""F2Kv: FASTER's F2 design, a hot tier and a cold tier in one store with the FasterKv API.

- The hot tier is this FasterKv itself (hash index in memory, hybrid log with a mutable region,
  mutable fraction 0.6) on ``<path>/hot``.
- The cold tier is an append-only log on ``<path>/cold`` (cold_log.py) indexed by the cold
  index (cold_index.py), a flat file of chunks in ``<path>/cold-index``; a key-keyed read
  cache (read_cache.py) sits in front of it.

Reads go hot index -> read cache -> cold index -> cold log. The hot store's operations reach the
cold tier through FasterKv's device-hint protocol: when a key's hot chain ends below the hot
log's begin address, the lookup raises ``_NeedsIO`` with a *cold hint address* (``COLD`` | hot
begin address), ``_run`` performs the cold lookup without the latch and runs the operation again
with what it found; a cold record is handed to the operation as a ``Found`` whose address is the
negated cold address, which is below every hot read-only address, so updates of cold records
append to the hot tail (RMW brings a cold record to the hot tail), deletes append a hot
tombstone that shadows the cold record, and expiry works as in single-log mode.

Upserts are blind: a key that is not in the hot log's memory gets a new hot record without a
cold lookup. Such a record carries the uncounted bit (engine/record.py) and leaves the live-key
count ``_live`` (both tiers) as it was; writes over an uncounted record inherit the bit. The
count is settled later (engine/f2/counting.py): by the hot-cold compaction for the range it
moves, and by ``len()`` for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from xxhash import xxh3_64_intdigest

from faster_backend.engine import faster_kv as _fkv
from faster_backend.engine.address import MAX_ADDRESS
from faster_backend.engine.checkpoint import read_geometry
from faster_backend.engine.data_dir import DataDir
from faster_backend.engine.devices import (
    DEFAULT_SEGMENT_SIZE,
    AddressTruncatedError,
    DirectFileDevice,
    StorageDevice,
    open_device,
)
from faster_backend.engine.errors import EngineError, RecordTooLargeError
from faster_backend.engine.f2 import compaction, counting
from faster_backend.engine.f2.cold_index import (
    CHUNK_WORDS,
    ON_SHARED,
    SHARED,
    TAG_SHIFT,
    ColdIndex,
)
from faster_backend.engine.f2.cold_log import ColdLog
from faster_backend.engine.f2.manifest import Manifest, ManifestSlots
from faster_backend.engine.f2.pacing import NO_PACING, Pacer
from faster_backend.engine.f2.read_cache import KeyReadCache
from faster_backend.engine.f2.recovery import choose_manifest, restore_cold_log
from faster_backend.engine.faster_kv import (
    GEOMETRY_FILE,
    FasterKv,
    Found,
    Hint,
    _NeedsIO,
    default_page_size,
)
from faster_backend.engine.hash_bucket import (
    ADDRESS_MASK,
    BUCKET,
    TENTATIVE,
)
from faster_backend.engine.hybrid_log import HybridLog
from faster_backend.engine.record import (
    EXPIRY,
    HEADER,
    HEADER_SIZE,
    INFO,
    PREV_MASK,
    TOMBSTONE,
    UNCOUNTED,
    VALUE_LEN,
    record_size,
)
from faster_backend.engine.sizes import parse_size

log = logging.getLogger(__name__)
T = TypeVar("T")

COLD = 1 << 60  # hint addresses with this bit mean "the cold tier, as of hot begin address"
HOT_DIR, COLD_DIR, INDEX_DIR = "hot", "cold", "cold-index"
HOT_NAME, COLD_NAME, INDEX_FILE = "hlog", "clog", "cidx.chunks"
SINGLE_LOG_DIR = "log"  # the single-log layout of faster_backend.store

_unpack_bucket = BUCKET.unpack_from
_unpack_header = HEADER.unpack_from
_unpack_expiry = EXPIRY.unpack_from
_pack_vlen = VALUE_LEN.pack_into
_GROW_STEP = 256
_SCAN_COLD = 1 << 62  # scan cursors: phase bit, hot tail page at the start, position
_SCAN_POS = (1 << 32) - 1
_SCAN_MARK_BITS = 30
_CLEAN_STEP = 256  # hot index buckets cleaned per latch hold
_CROWDED = 32  # the cold index grows when more than 1 in this many updates overflow
_CROWDED_SAMPLE = 256  # ... of at least this many
_CHUNK_RECORDS = 16  # cold records a chunk (of 31 tagged entries) after a growth, at most


def _size(value: int | str | None, name: str) -> int | None:
    return None if value is None else parse_size(value, name=name)


class F2Kv(FasterKv):
    """A two-tier (hot/cold) FASTER store; same API as FasterKv. ``path`` is required."""

    _lookup_below_begin = True  # a hot chain that ends below the hot begin goes on in the cold
    _blind_upserts = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        memory_size: int | str = 256 << 20,
        index_size: int = 1 << 10,
        *,
        page_size: int | str | None = None,
        mutable_fraction: float = 0.6,
        index_load_factor: float = 6.0,
        device: str = "auto",
        segment_size: int | str | None = None,
        hot_log_size: int | str | None = None,
        cold_log_size: int | str | None = None,
        cold_index_chunks: int | None = None,
        read_cache_size: int | str | None = None,
        read_cache_second_chance: float = 0.1,
        cold_index_cache_size: int | str | None = None,
        # hot-cold: each compaction rewrites most of the cold index's sectors, so fewer and
        # larger ones (docs/f2.md, "Numbers")
        compaction_fraction: float = 0.4,
        cold_compaction_fraction: float = 0.2,
        durability: str = "none",
        commit_interval_ms: int = 1000,
        checkpoint_kind: str = "fold-over",
        checkpoint_retention: int = 2,
    ) -> None:
        memory = parse_size(memory_size, name="memory_size")
        # On O_DIRECT files a cold miss costs a cold-index sector read and a record read, so
        # the budget does more as index entries (8 B each) than as cached records; buffered,
        # the page cache makes entry reads cheap and the read cache does more (docs/f2.md).
        direct = device == DirectFileDevice.kind
        cache = _size(read_cache_size, "read_cache_size")
        if cache is None:
            cache = memory // 16 if direct else memory // 4
        index_cache = _size(cold_index_cache_size, "cold_index_cache_size")
        if index_cache is None:
            index_cache = memory * 3 // 8 if direct else memory // 16
        if not 0.0 < cold_compaction_fraction <= 1.0:
            raise ValueError("cold_compaction_fraction must be in (0, 1]")
        self.data_dir = DataDir(path)
        devices: list[StorageDevice] = []
        hot_open = False
        cold_index: ColdIndex | None = None
        try:
            root = self.data_dir.path
            slots = ManifestSlots(root)
            existing = slots.exist()
            _prepare_layout(root, fresh=not existing)
            page, segment = _geometry(
                root / HOT_DIR,
                _size(page_size, "page_size"),
                _size(segment_size, "segment_size"),
                memory,
            )
            # The cold log only appends (one page filling, one flushing): small pages suffice.
            # A record must fit in a cold page, which bounds record sizes (checked in _write).
            cold_page = max(4096, page // 4)
            hot_memory = memory - cache - index_cache - 2 * cold_page
            if hot_memory < 2 * page:
                raise ValueError(
                    f"memory_size {memory} is too small for F2 with {page}-byte pages: the hot"
                    " log needs 2 pages after the cold log's 2 pages, the read cache and the"
                    " cold index cache"
                )
            hot_dev = open_device(device, root / HOT_DIR, name=HOT_NAME, segment_size=segment)
            devices.append(hot_dev)
            cold_dev = open_device(device, root / COLD_DIR, name=COLD_NAME, segment_size=segment)
            devices.append(cold_dev)
            # The hot store recovers by itself (checkpoints + commits: the CPR prefix); the
            # cold tier then goes back to the manifest that fits it.
            super().__init__(
                memory_size=hot_memory,
                index_size=index_size,
                page_size=page,
                mutable_fraction=mutable_fraction,
                index_load_factor=index_load_factor,
                device=hot_dev,
                read_cache_size=0,
                compaction_fraction=compaction_fraction,
                state_dir=root / HOT_DIR,
                durability=durability,
                commit_interval=commit_interval_ms / 1000.0,
                checkpoint_kind=checkpoint_kind,
                checkpoint_retention=checkpoint_retention,
            )
            devices.remove(hot_dev)
            hot_open = True
            manifest = None
            grow_to = 0  # a chunk count asked for (a minimum: the index never shrinks)
            if existing:
                manifest = choose_manifest(slots, self._log.begin_address)
                if cold_index_chunks is not None:
                    if cold_index_chunks < 1 or cold_index_chunks & (cold_index_chunks - 1):
                        raise ValueError(
                            f"cold_index_chunks must be a power of two, got {cold_index_chunks}"
                        )
                    grow_to = cold_index_chunks
                if manifest.cold_page_size != cold_page:
                    raise EngineError(
                        f"{root}: the F2 manifest's cold page size {manifest.cold_page_size}"
                        f" does not match {cold_page} (from page_size {page})"
                    )
                cold_index_chunks = manifest.cold_index_chunks
            n_chunks = cold_index_chunks if cold_index_chunks is not None else 1 << 14
            # An O_DIRECT store keeps its cold index out of the page cache too, so that the
            # memory budget bounds everything F2 keeps in memory.
            cold_index = ColdIndex(
                root / INDEX_DIR / INDEX_FILE,
                n_chunks,
                index_cache,
                direct=direct,
            )
            self._cold = ColdLog(cold_dev, cold_page, 2, cold_index)
            if manifest is not None:
                restore_cold_log(self._cold.log, manifest)
                cold_index.open_for(
                    manifest.seq,
                    manifest.cold_begin,
                    manifest.cold_tail,
                    partial(_cold_hashes, self._cold, manifest.cold_begin, manifest.cold_tail),
                )
            else:
                cold_index.create()
        except BaseException:
            if cold_index is not None:
                cold_index.close()
            if hot_open:
                self._checkpoints = None  # never opened: no checkpoint at close
                FasterKv.close(self)
            for dev in devices:
                dev.close()
            self.data_dir.release()
            raise
        self.total_memory_size = memory
        self.hot_log_size = _size(hot_log_size, "hot_log_size") or 2 * hot_memory
        self.cold_log_size = _size(cold_log_size, "cold_log_size")
        self.cold_compaction_fraction = cold_compaction_fraction
        self._cold_trigger = self.cold_log_size
        self._cold_index = cold_index
        self._crowding = (0, 0)  # the cold index's updates and overflows at the last look
        self._manifests = slots
        self._cold_cache = KeyReadCache(cache, read_cache_second_chance)
        self._maint_lock = threading.Lock()
        self._f2_stopping = False
        # Back-pressure: writers wait while the hot log is past 1.5x hot_log_size, so that the
        # compaction thread (which needs the GIL too) keeps up with them.
        self._hot_room = threading.Event()
        self._hot_room.set()
        self._executor: ThreadPoolExecutor | None = None
        self._token_lock = threading.Lock()
        self._token_seq = 0
        self._pending_keys: dict[int, bytes] = {}
        self._n_cold_reads = self._n_cold_index_reads = self._n_user_cold_reads = 0
        self._compactor = 0  # the thread running a compaction (0: none)
        self._pacing = NO_PACING  # the newest compaction's pacer
        self._n_pauses_before = 0  # the pauses of the compactions before it
        self._n_hot_records = self._n_cold_records = 0
        self._n_hot_cold = self._n_hot_cold_moved = 0
        self._n_cold_cold = self._n_cold_cold_copied = 0
        self._hot_checkpoint = 0
        # Uncounted records appended since the count was last settled up to the tail (after
        # a restart: unknown, so the first len() looks).
        hlog = self._log
        self._n_blind = int(hlog.tail_address > max(self._settled, hlog.begin_address))
        if manifest is None:
            with self._cold.write_lock:
                begin = self._log.begin_address
                self._persist_cold(begin, begin)  # the first manifest: an empty cold tier
        else:
            self._n_cold_records = manifest.cold_records
            self._hot_checkpoint = manifest.hot_checkpoint
            hlog = self._log
            records = hlog.records(hlog.begin_address, hlog.tail_address)
            self._n_hot_records = sum(1 for _ in records)
            n_chunks = cold_index.n_chunks
            if grow_to > n_chunks:
                self._grow_cold_index(
                    grow_to // n_chunks, manifest.hot_begin_low, manifest.hot_begin_high
                )
            elif n_chunks != manifest.cold_index_chunks:  # a rebuild needed more chunks
                with self._cold.write_lock:
                    self._persist_cold(manifest.hot_begin_low, manifest.hot_begin_high)

    # -- the cold index's size -----------------------------------------------------------------

    def _grow_cold_index(self, factor: int, hot_low: int, hot_high: int) -> None:
        """Grow the cold index ``factor`` times (cold_index.py) and name its new chunk count in
        a manifest for the same hot begin range (the cold tier is unchanged). A crash in
        between leaves the old count in the manifests: recovery rebuilds the index with it."""
        cold = self._cold
        with cold.write_lock:
            self._cold_index.grow(
                factor, _cold_hashes(cold, cold.begin_address, cold.tail_address)
            )
            self._persist_cold(hot_low, hot_high)
        self._crowding = (self._cold_index.updates, self._cold_index.overflows)

    def _grow_cold_index_if_crowded(self) -> None:
        """After a hot-cold compaction: when more than 1/``_CROWDED`` of the cold index's
        updates since the last look went to shared chains (their chunks' tagged entries all
        held live chains), grow it to at most ``_CHUNK_RECORDS`` cold records a chunk (their
        keys are fewer: the records include older versions and dead ones)."""
        index = self._cold_index
        updates, overflows = index.updates, index.overflows
        before_updates, before_overflows = self._crowding
        updates -= before_updates
        if updates < _CROWDED_SAMPLE:
            return
        self._crowding = (index.updates, index.overflows)
        if (overflows - before_overflows) * _CROWDED <= updates:
            return
        factor = 2
        while self._n_cold_records > _CHUNK_RECORDS * index.n_chunks * factor:
            factor *= 2
        newest = self._newest_manifest()
        assert newest is not None  # written by the compaction that called
        self._grow_cold_index(factor, newest.hot_begin_low, newest.hot_begin_high)

    # -- persistence: the cold tier's manifest ---------------------------------------------

    def _persist_cold(self, hot_low: int, hot_high: int) -> None:
        """Make the cold tier durable and name it in a new manifest valid for a hot log that
        begins in [hot_low, hot_high]. The caller holds the cold log's write lock and has
        committed the hot store since the cold tier last changed, so the cold tier never holds
        a record (or lacks one shadowed by a hot record) that the recovered hot state has not
        seen."""
        cold = self._cold
        hlog = cold.log
        hlog.flush_tail()
        cold.device.flush()
        begin, tail = hlog.begin_address, hlog.tail_address
        first = begin >> hlog.page_bits
        sums = hlog.page_sums
        manifest = Manifest(
            seq=self._manifests.next_seq(),
            cold_begin=begin,
            cold_tail=tail,
            cold_tail_sum=hlog.tail_checksum(tail),
            cold_records=self._n_cold_records,
            cold_index_chunks=self._cold_index.n_chunks,
            cold_page_size=cold.page_size,
            hot_begin_low=hot_low,
            hot_begin_high=hot_high,
            hot_checkpoint=self._hot_checkpoint,
            first_page=first,
            page_sums=[sums[p] for p in range(first, tail >> hlog.page_bits)],
        )
        self._manifests.write(manifest)
        hlog.release_truncated(min(self._manifests.cold_begins()))

    def checkpoint(self, kind: str | None = None) -> int:
        """Checkpoint the hot store (``kind`` as in FasterKv) with the compactions paused, then
        the cold tier (its log and a new manifest)."""
        with self._maint_lock:
            seq = super().checkpoint(kind)
            self._hot_checkpoint = seq
            with self._cold.write_lock:
                begin = self._log.begin_address
                self._persist_cold(begin, begin)
            return seq

    # -- the cold tier on the read path ------------------------------------------------------

    def _cold_lookup(self, key: bytes, h: int) -> tuple[int, bytes] | None:
        """(-cold address, record) of ``key``'s newest cold record (maybe a tombstone)."""
        self._n_cold_reads += 1
        cache = self._cold_cache
        hit = cache.get(key, h)
        if hit is not None:
            return -hit[0], hit[1]
        epoch = cache.epoch
        self._n_cold_index_reads += 1
        if threading.get_ident() != self._compactor:
            self._n_user_cold_reads += 1  # a compaction paces itself by these (f2/pacing.py)
        found = self._cold.lookup(key, h)
        if found is None:
            return None
        cache.put(key, h, found[0], found[1], epoch)
        return -found[0], found[1]

    def _find_on_device(self, key: bytes, h: int, addr: int, hint: Hint | None) -> Found | None:
        hlog = self._log
        begin = hlog.begin_address
        want = addr if addr >= begin else COLD | begin
        if hint is None or hint[0] != want:
            raise _NeedsIO(want)
        result = hint[1]
        if result is None:
            return None
        rec_addr, rec = result
        if 0 <= rec_addr < begin:
            raise _NeedsIO(want)  # truncated since the hint was read: ``_run`` looks again
        info, kl, vl = _unpack_header(rec, 0)
        return self._live_or_none(rec_addr, rec, 0, info, kl, vl, key, h)

    def _disk_lookup(self, key: bytes, addr: int) -> tuple[int, bytes] | None:
        if not addr & COLD and addr >= self._log.begin_address:
            found = FasterKv._disk_lookup(self, key, addr)
            if found is not None:
                return found
        return self._cold_lookup(key, xxh3_64_intdigest(key))

    async def _adisk_lookup(self, key: bytes, addr: int) -> tuple[int, bytes] | None:
        h = xxh3_64_intdigest(key)
        if not addr & COLD:
            found = await FasterKv._adisk_lookup(self, key, addr)
            if found is not None:
                return found
        hit = self._cold_cache.get(key, h)
        if hit is not None:
            self._n_cold_reads += 1
            return -hit[0], hit[1]
        # The cold index and cold log read with blocking preads: run the lookup off the loop.
        return await asyncio.to_thread(self._cold_lookup, key, h)

    # Pending reads (sessions): a read that must go to the cold tier is issued under a token
    # address (COLD | sequence number) that names the key; the cold lookup runs on a worker
    # thread and its record comes back to ``_pending_continue`` as the token's data.

    def _cold_token(self, key: bytes) -> int:
        with self._token_lock:
            self._token_seq += 1
            token = COLD | (self._token_seq & ((1 << 48) - 1))
            self._pending_keys[token] = key
        return token

    def _read_start(self, key: bytes) -> tuple[str, bytes | None, int, int]:
        status, value, address, begin = super()._read_start(key)
        if status == "pending" and address & COLD:
            address = self._cold_token(key)
        return status, value, address, begin

    def _pending_issue(self, address: int, done: Callable[[bytes | None, Any], None]) -> None:
        if not address & COLD:
            super()._pending_issue(address, done)
            return
        with self._token_lock:
            key = self._pending_keys.pop(address)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="f2-pending")

        def run() -> None:
            try:
                found = self._cold_lookup(key, xxh3_64_intdigest(key))
            except BaseException as exc:
                done(None, exc)
                return
            done(b"" if found is None else found[1], None)

        self._executor.submit(run)

    def _pending_continue(
        self, key: bytes, address: int, data: bytes, begin: int
    ) -> tuple[str, Any]:
        if address & COLD:
            if not data:
                return "not_found", None
            info, kl, vl = _unpack_header(data, 0)
            if info & TOMBSTONE or _fkv._expired(data, 0, info, kl, vl):
                return "not_found", None
            self._n_hits += 1
            return "ok", data[HEADER_SIZE + kl : HEADER_SIZE + kl + vl]
        step = super()._pending_continue(key, address, data, begin)
        if step[0] == "not_found" and not (
            _unpack_header(data, 0)[1] == len(key) and data.startswith(key, HEADER_SIZE)
        ):
            return "next", self._cold_token(key)  # the hot chain ended: the cold tier next
        return step

    # -- writes ------------------------------------------------------------------------------

    def _write(
        self, key: bytes, h: int, value: bytes, expiry: int | None, found: Found | None
    ) -> None:
        size = record_size(len(key), len(value), expiry is not None)
        if size >= self._cold.page_size:
            raise RecordTooLargeError(
                f"a record of {size} bytes does not fit in a cold log page of"
                f" {self._cold.page_size} bytes (F2 uses a quarter of page_size); store smaller"
                " values or raise page_size"
            )
        if found is not None:
            addr = found[0]
            carry = UNCOUNTED if found[3] & UNCOUNTED and addr >= self._settled else 0
            self._carry = carry
        else:
            carry = self._carry  # set by the lookup (an uncounted tombstone) or a blind upsert
        tail = self._log.tail_address
        super()._write(key, h, value, expiry, found)
        if self._log.tail_address != tail:
            self._n_hot_records += 1
            if carry:
                self._n_blind += 1

    def _tombstone(self, addr: int, key: bytes, h: int) -> None:
        hlog = self._log
        if addr < 0:
            carry = 0  # a cold record: always counted
        elif addr >= hlog.head_address:
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            info = INFO.unpack_from(page, addr & hlog.page_mask)[0]
            carry = UNCOUNTED if info & UNCOUNTED and addr >= self._settled else 0
        else:
            carry = self._carry  # a hot record on the device: ``_live_or_none`` just saw it
        self._carry = carry  # the tombstone is the key's newest record now
        tail = hlog.tail_address
        super()._tombstone(addr, key, h)
        if hlog.tail_address != tail:
            self._n_hot_records += 1
            if carry:
                self._n_blind += 1

    def _blind_appended(self, n: int) -> None:
        self._n_hot_records += n
        self._n_blind += n

    def _upsert_slow(self, key: bytes, h: int, value: bytes, expiry: int | None) -> None:
        """A blind upsert that the compiled path could not do: the key's newest record in
        memory decides as in FasterKv; when there is none, the record is appended uncounted
        without looking further (no device read)."""
        with self._lock:
            if self._locate(key, h) >= self._log.head_address:
                found = self._find_live(key, h)  # in memory: never needs I/O
            else:
                found = None
                self._carry = UNCOUNTED
            self._write(key, h, value, expiry, found)

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        FasterKv.upsert(self, key, value, ttl)
        if not self._hot_room.is_set():
            self._wait_for_room()

    def upsert_many(
        self, items: Iterable[tuple[bytes, bytes]], ttl: float | None = None
    ) -> None:
        FasterKv.upsert_many(self, items, ttl)
        if not self._hot_room.is_set():
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        if threading.current_thread() is not self._maintenance:
            self._hot_room.wait(1.0)  # bounded: a stalled compaction slows writers, never stops

    def _find_live(self, key: bytes, h: int, hint: Hint | None = None) -> Found | None:
        self._carry = 0  # until a record of the key says otherwise (``_live_or_none``)
        return super()._find_live(key, h, hint)

    def _live_or_none(
        self,
        addr: int,
        buf: bytearray | bytes,
        off: int,
        info: int,
        kl: int,
        vl: int,
        key: bytes,
        h: int,
    ) -> Found | None:
        # The key's newest record: a write over it inherits its uncounted bit, also when it is
        # a tombstone (then no Found carries it).
        self._carry = UNCOUNTED if info & UNCOUNTED and addr >= self._settled else 0
        return super()._live_or_none(addr, buf, off, info, kl, vl, key, h)

    def __len__(self) -> int:
        """Number of live keys in both tiers (keys that expired but were not yet swept still
        count). Settles the count of the blind upserts since the last call first: it reads the
        hot records written since then and looks each such key up below them (O(those
        records), with device reads; waits for a running compaction). Writers wait only
        while the records in memory are read (counting.settle_to_tail)."""
        if self._n_blind:
            counting.settle_to_tail(self)
        return self._live

    def count_is_settled(self) -> bool:
        return not self._n_blind

    def _after_write(self) -> None:
        self._writes += 1
        ix = self._index
        if ix.old is not None:
            self._grow_step(_GROW_STEP)
        elif self._n_hot_records > self._grow_at:
            # The hot index grows with the hot log's records (an upper bound of its keys), not
            # with the store's live count, which includes every cold key. (Not with overflow
            # either: a split copies entries of chains on the device into both halves.)
            ix.start_grow()
        if not self._writes & 63:
            self._sweep(16)
            self._check_maintenance()

    def clear(self) -> None:
        """Remove every key from both tiers (and their files)."""
        with self._maint_lock, self._cold.write_lock:
            cold = self._cold
            # The cold tier first: a reader then never sees an older cold version of a key
            # whose newer hot version is already gone. The cold index keeps its entries: they
            # all point below the new cold begin address, which ends every chain.
            with self._lock:
                old = cold.log
                old.wait_flushed(old.read_only_address)
                start = ((old.tail_address >> old.page_bits) + 1) << old.page_bits
                cold.log = HybridLog(
                    old.page_size, old.memory_pages, 1e-9, None, old.device, start
                )
                self._cold_cache.clear()
                self._n_cold_records = 0
                hlog = self._log
                hot_start = ((hlog.tail_address >> hlog.page_bits) + 1) << hlog.page_bits
            # Valid for any hot log that begins where the hot clear starts it or later: until
            # the cleared hot store is committed, recovery takes the previous manifest, whose
            # cold files stay until both manifests name the cleared state.
            self._persist_cold(hot_start, MAX_ADDRESS)
            FasterKv.clear(self)
            self._n_hot_records = 0
            self._n_blind = 0
            self.commit()
            begin = self._log.begin_address
            self._persist_cold(begin, begin)

    # -- hot/cold bookkeeping for compactions ------------------------------------------------

    def _hot_state(self, key: bytes, h: int, stop: int = 0) -> tuple[int, bool, bool] | None:
        """(address, live, uncounted) of ``key``'s newest hot record at or above ``stop``
        (default: the hot begin address), or None if it has none there. ``uncounted``: the
        record is uncounted and not settled (its base lies below it)."""
        klen = len(key)
        now_ms = _fkv._now() * 1000
        with self._lock:
            hlog = self._log
            addr = self._locate(key, h)
            if addr >= hlog.head_address:  # the key's newest record, in memory
                if addr < stop:
                    return None
                page = hlog.pages[addr >> hlog.page_bits]
                assert page is not None
                off = addr & hlog.page_mask
                info, kl, vl = _unpack_header(page, off)
                exp = _fkv._expiry_of(page, off, info, kl, vl)
                live = not info & TOMBSTONE and (exp is None or exp > now_ms)
                return addr, live, bool(info & UNCOUNTED) and addr >= self._settled
        try:
            while addr >= max(stop, self._log.begin_address):
                rec = self._read_record(addr)
                info, kl, vl = _unpack_header(rec, 0)
                if kl == klen and rec.startswith(key, HEADER_SIZE):
                    exp = _fkv._expiry_of(rec, 0, info, kl, vl)
                    live = not info & TOMBSTONE and (exp is None or exp > now_ms)
                    return addr, live, bool(info & UNCOUNTED) and addr >= self._settled
                addr = info & PREV_MASK
        except AddressTruncatedError:
            pass  # moved to the cold tier meanwhile
        return None

    def _pacer(self) -> Pacer:
        """The calling thread's compaction's pacer: it pauses for users' device reads (those of
        the hot log's device part and of the cold tier; not the compaction's own), unless
        writers are waiting for it."""
        self._compactor = threading.get_ident()
        self._n_pauses_before += self._pacing.pauses
        self._pacing = Pacer(
            lambda: self._n_fast_reads + self._n_user_cold_reads,
            lambda: not self._hot_room.is_set(),  # writers wait for room in the hot log
        )
        return self._pacing

    def _clean_hot_index(self, pace: Pacer = NO_PACING) -> None:
        """Empty hot index entries whose chains lie wholly below the hot begin address (their
        keys moved to the cold tier), so that the hot index holds only hot keys."""
        pos = 0
        table = None
        while True:
            with self._lock:
                ix = self._index
                if ix.old is not None or (table is not None and ix.cur is not table):
                    return  # growing: the next compaction cleans up
                table = ix.cur
                begin = self._log.begin_address
                words = table.words
                buf = table.buf
                end = min(pos + _CLEAN_STEP, table.size)
                for bucket in range(pos, end):
                    b = bucket
                    overflow = False
                    while True:
                        ws = _unpack_bucket(buf, b << 6)
                        base = b << 3
                        for i in range(7):
                            e = ws[i]
                            if e and not e & TENTATIVE and e & ADDRESS_MASK < begin:
                                words[base + i] = 0
                        b = ws[7]
                        if not b:
                            break
                        overflow = True
                    if overflow:
                        table.compact_bucket(bucket)
                pos = end
                if pos >= table.size:
                    return
            pace.pause()  # the latch is free: a waiting reader goes first

    # -- compactions and the background thread -----------------------------------------------

    def compact(self, until: int | None = None, *, mode: str = "scan") -> int:
        """Hot-cold compaction of the hot log below ``until`` (default: ``compaction_fraction``
        of the hot log, never past its head); returns the records moved to the cold log."""
        if mode not in ("lookup", "scan"):
            raise ValueError(f"compaction mode must be 'lookup' or 'scan', got {mode!r}")
        with self._maint_lock:
            return compaction.hot_cold(self, until)

    def compact_cold(self, until: int | None = None) -> int:
        """Cold-cold compaction of the cold log below ``until``; returns the records copied."""
        with self._maint_lock:
            return compaction.cold_cold(self, until)

    def _hot_over(self) -> bool:
        hlog = self._log
        return (
            hlog.tail_address - hlog.begin_address > self.hot_log_size
            and hlog.head_address - hlog.begin_address >= hlog.page_size
        )

    def _cold_over(self) -> bool:
        trigger = self._cold_trigger
        return trigger is not None and self._cold.disk_bytes() > trigger

    def _run(self, key: bytes, h: int, op: Callable[[Found | None], T]) -> T:
        result = super()._run(key, h, op)
        if not self._hot_room.is_set():
            self._wait_for_room()
        return result

    def _check_maintenance(self) -> None:
        hlog = self._log
        hot_over = self._hot_over()
        if hot_over and hlog.tail_address - hlog.begin_address > self.hot_log_size * 3 // 2:
            self._hot_room.clear()  # set again by the compaction thread woken just below
        if hot_over or self._cold_over():
            self._wake_maintenance()  # FasterKv's background thread runs run_maintenance

    def run_maintenance(self) -> None:
        """Run hot-cold and cold-cold compactions while the tiers exceed their sizes."""
        try:
            self._compact_while_over()
        finally:
            self._hot_room.set()

    def _compact_while_over(self) -> None:
        while not self._f2_stopping:
            if self._hot_over():
                before = self._log.begin_address
                self.compact()
                if self._log.begin_address == before:
                    return
                hlog = self._log
                if hlog.tail_address - hlog.begin_address <= self.hot_log_size * 3 // 2:
                    self._hot_room.set()
                continue
            if self._cold_over():
                cold = self._cold
                before = cold.begin_address
                size_before = cold.disk_bytes()
                self.compact_cold()
                if cold.begin_address == before:
                    return
                assert self.cold_log_size is not None
                if cold.disk_bytes() > 0.8 * size_before:
                    # Mostly live data: compacting again now would copy it round in circles.
                    self._cold_trigger = max(self.cold_log_size, int(cold.disk_bytes() * 1.25))
                    log.info(
                        "cold log is mostly live; next cold-cold compaction above %d bytes",
                        self._cold_trigger,
                    )
                continue
            return

    def close(self) -> None:
        """Stop the compactions, then release both tiers' memory and files."""
        if self._closed:
            return
        self._f2_stopping = True  # a running compaction stops early; FasterKv.close joins it
        self._hot_room.set()
        with self._maint_lock:
            pass  # a len() settling a step reads the files without the latch: it ends first
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        try:
            super().close()  # takes a checkpoint (self.checkpoint: both tiers)
            newest = self._newest_manifest()
            if newest is not None and newest.cold_tail == self._cold.tail_address:
                self._cold_index.close_clean(newest.seq, newest.cold_begin, newest.cold_tail)
        finally:
            try:
                self._cold.device.close()
                self._cold_index.close()
            finally:
                self._cold_cache.clear()
                self.data_dir.release()

    # -- iteration ---------------------------------------------------------------------------

    def scan(self, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        """Redis-style SCAN over both tiers: the hot index's buckets, then the cold index's
        chunks. A key present for the whole iteration is returned; a key may come twice."""
        if cursor == 0:
            mark = self._log.tail_address >> self._log.page_bits
            if mark >> _SCAN_MARK_BITS:
                mark = 0  # no room in the cursor: report every live hot key of the cold phase
        else:
            mark = (cursor >> 32) & ((1 << _SCAN_MARK_BITS) - 1)
        high = mark << 32
        if not cursor & _SCAN_COLD:
            pos, keys = FasterKv.scan(self, cursor & _SCAN_POS, count)
            return (high | pos if pos else _SCAN_COLD | high), keys
        chunk = cursor & _SCAN_POS
        stop = min(self._cold_index.n_chunks, chunk + max(1, count))
        keys = []
        for n in range(chunk, stop):
            keys.extend(self._scan_chunk(n, mark << self._log.page_bits))
        return (_SCAN_COLD | high | stop if stop < self._cold_index.n_chunks else 0), keys

    def _scan_chunk(self, number: int, mark: int) -> list[bytes]:
        """Live keys whose truth is in the cold tier (or written to the hot tier at or above
        ``mark``, i.e. after the scan began) among cold index chunk ``number``'s chains."""
        while True:
            try:
                candidates = self._chunk_keys(number)
                break
            except AddressTruncatedError:
                continue  # cold-cold compaction moved a chain meanwhile
        out = []
        for key in candidates:
            state = self._hot_state(key, xxh3_64_intdigest(key))
            if state is None or (state[1] and state[0] >= mark):
                out.append(key)
        return out

    def _chunk_keys(self, number: int) -> list[bytes]:
        """Keys whose newest cold record in cold index chunk ``number``'s chains is live. A
        chain may hold other keys (a growth's older chunk, a tag collision): a key counts on
        its own tag's chain, else on the shared chain (cold_index.py)."""
        index = self._cold_index
        data = index.chunk(number)
        now_ms = _fkv._now() * 1000
        keys: list[bytes] = []
        on_tag: set[bytes] = set()  # keys met on their own tag's chain
        words = CHUNK_WORDS.unpack(data)
        for e, word in enumerate(words):
            addr = word & ADDRESS_MASK
            if not addr:
                continue
            shared = e == SHARED
            tag = word >> TAG_SHIFT
            seen: set[bytes] = set()
            for _, rec in self._cold.chain_records(addr):
                info, kl, vl = _unpack_header(rec, 0)
                key = rec[HEADER_SIZE : HEADER_SIZE + kl]
                if key in seen:
                    continue
                seen.add(key)
                h = xxh3_64_intdigest(key)
                if index.chunk_of(h) != number:
                    continue  # a chain from before the index grew: the key is in another chunk
                if shared:
                    if key in on_tag:
                        continue  # its newer records are on its tag's chain
                elif index.tag_of(h) != tag:
                    continue  # a chain of format 1 holds other tags
                else:
                    on_tag.add(key)
                if not info & TOMBSTONE:
                    exp = _fkv._expiry_of(rec, 0, info, kl, vl)
                    if exp is None or exp > now_ms:
                        keys.append(key)
        return keys

    # -- statistics --------------------------------------------------------------------------

    def _newest_manifest(self) -> Manifest | None:
        return max(
            (m for m in self._manifests.current if m is not None), key=lambda m: m.seq, default=None
        )

    def stats(self) -> dict[str, Any]:
        st = super().stats()
        cold = self._cold
        ci = self._cold_index.stats()
        rc = self._cold_cache
        cold_dev = cold.device.stats.as_dict()
        hot_dev = self.device.stats.as_dict()
        with self._lock:
            hlog = self._log
            hot_bytes = hlog.tail_address - hlog.begin_address
        cold_memory = cold.log.memory_bytes()
        manifest = self._newest_manifest()
        reads = max(1, st["reads"])
        st.update(
            {
                "tiering": "f2",
                "hot_log_records": self._n_hot_records,
                "hot_log_bytes": hot_bytes,
                "hot_log_size": self.hot_log_size,
                "hot_index_bytes": st["index_bytes"],
                "cold_log_records": self._n_cold_records,
                "cold_log_bytes": cold.size_bytes(),
                "cold_log_disk_bytes": cold.disk_bytes(),
                "cold_log_size": self.cold_log_size,
                "cold_log_begin_address": cold.begin_address,
                "cold_log_tail_address": cold.tail_address,
                "cold_log_memory_bytes": cold_memory,
                "cold_log_durable_tail": manifest.cold_tail if manifest else 0,
                "f2_manifest_seq": manifest.seq if manifest else 0,
                "cold_disk_reads": cold.disk_reads,
                "cold_reads": self._n_cold_reads,
                "cold_index_reads": self._n_cold_index_reads,
                "cold_index_lookups_per_read": self._n_cold_index_reads / reads,
                "settled_address": self._settled,
                "cold_read_cache_bytes": rc.memory_bytes,
                "cold_read_cache_records": len(rc),
                "cold_read_cache_hits": rc.hits,
                "cold_read_cache_misses": rc.misses,
                "hot_cold_compactions": self._n_hot_cold,
                "hot_cold_moved_records": self._n_hot_cold_moved,
                "cold_cold_compactions": self._n_cold_cold,
                "cold_cold_copied_records": self._n_cold_cold_copied,
                "compaction_pauses": self._n_pauses_before + self._pacing.pauses,
                "compaction_error": st["maintenance_error"],
                "device_bytes_read": hot_dev["bytes_read"]
                + cold_dev["bytes_read"]
                + self._cold_index.bytes_read,
                "device_bytes_written": hot_dev["bytes_written"]
                + cold_dev["bytes_written"]
                + self._cold_index.bytes_written,
                "hot_device_bytes_written": hot_dev["bytes_written"],
                "cold_device_bytes_written": cold_dev["bytes_written"],
                "cold_index_device_bytes_written": self._cold_index.bytes_written,
                "memory_bytes": st["memory_bytes"]
                + cold_memory
                + rc.memory_bytes
                + ci["cold_index_memory_bytes"],
                "memory_size": self.total_memory_size,
                **ci,
            }
        )
        # Last: len() may settle the count (device reads), which the counters above then do
        # not include, so that they are those of the operations so far (the next call has it).
        st["live_keys"] = len(self)
        return st


def _cold_hashes(cold: ColdLog, begin: int, tail: int) -> Iterator[tuple[int, int, bool]]:
    """(address, key hash, on the shared chain) of the cold log's records in [begin, tail),
    in address order."""
    for addr, info, kl, _vl, rec in cold.records(begin, tail):
        key = bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])
        yield addr, xxh3_64_intdigest(key), bool(info & ON_SHARED)


def _geometry(
    state_dir: Path, page: int | None, segment: int | None, memory: int
) -> tuple[int, int]:
    """(page size, segment size) of a store: the ones it was created with, if it exists."""
    stored = read_geometry(state_dir / GEOMETRY_FILE)
    if stored is None:
        return page or default_page_size(memory), segment or DEFAULT_SEGMENT_SIZE
    for name, given, kept in (("page_size", page, stored[0]), ("segment_size", segment, stored[1])):
        if given is not None and given != kept:
            raise ValueError(
                f"{state_dir.parent} was created with {name}={kept}; it cannot be opened with"
                f" {name}={given}"
            )
    return stored


def _prepare_layout(root: Path, fresh: bool) -> None:
    """Refuse a single-log store's directory; make the three stores' directories. Without a
    manifest nothing of an earlier run is recoverable (it never wrote its first manifest, or
    it predates F2 persistence): its files are deleted, with a warning, rather than misread."""
    single = root / SINGLE_LOG_DIR
    if single.is_dir() and any(single.iterdir()):
        raise EngineError(
            f"{root} holds a single-log store ({single}); open it without tiering='f2' or use"
            " another path for an F2 store"
        )
    for sub in (HOT_DIR, COLD_DIR, INDEX_DIR):
        d = root / sub
        d.mkdir(exist_ok=True)
        if not fresh:
            continue
        old = sorted(d.iterdir())
        if old:
            log.warning(
                "%s: discarding %d file(s) of an earlier F2 run that left no manifest;"
                " starting empty",
                d,
                len(old),
            )
            for f in old:
                if f.is_dir():
                    shutil.rmtree(f)
                else:
                    f.unlink()
