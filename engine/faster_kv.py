"""FasterKv: FASTER's key-value store (hash index + hybrid log) for bytes keys and values.

Concurrency model: one latch (a ``threading.Lock``) per store serialises the in-memory part of
every operation. Under the GIL only one thread runs Python code at a time anyway, so finer
latching would add cost without adding parallelism; what matters is that every operation is
atomic and that the latch is never held across I/O. An operation whose hash chain leads to the
device releases the latch, reads the chain from the device (records there never change), and
runs again with what it read as a hint: if the chain still leads to the same address the hint
completes it, otherwise it reads again. RMW updaters run under the latch, which is what makes RMW
atomic: they must be quick and must not call back into the store.

The hot paths (``read``, ``upsert``, ``incr`` and the expiry sweep) hand the index's and log's
buffers to ``hotpath``, compiled C (``_hotpath.c``) with a pure-Python reference: in CPython every
bytecode of a bucket probe and chain walk costs tens of nanoseconds, and these run millions of
times per second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from xxhash import xxh3_64_intdigest

from faster_backend.engine import hotpath as _hotpath
from faster_backend.engine.address import FIRST_ADDRESS
from faster_backend.engine.checkpoint import (
    CheckpointDir,
    CheckpointInfo,
    CommitLog,
    CommitPoint,
    encode_delta,
    encode_index,
    encode_snapshot,
    read_geometry,
    write_geometry,
)
from faster_backend.engine.devices import AddressTruncatedError, StorageDevice
from faster_backend.engine.errors import EngineError, RecordTooLargeError, StoreClosedError
from faster_backend.engine.hash_bucket import ADDRESS_MASK, HASH_TAG_SHIFT, TAG_SHIFT
from faster_backend.engine.hash_table import HashTable
from faster_backend.engine.hotpath import cached_read as _cached_read
from faster_backend.engine.hotpath import chain_read as _chain_read
from faster_backend.engine.hotpath import chain_walk, next_cursor, parse_int64, py_collect_bucket
from faster_backend.engine.hotpath import collect_bucket as _bucket_keys
from faster_backend.engine.hotpath import expired_entries as _expired_entries
from faster_backend.engine.hotpath import index_incr as _index_incr
from faster_backend.engine.hotpath import index_incr_many as _index_incr_many
from faster_backend.engine.hotpath import index_locate as _index_locate
from faster_backend.engine.hotpath import index_read as _index_read
from faster_backend.engine.hotpath import index_read_many as _index_read_many
from faster_backend.engine.hotpath import index_upsert as _index_upsert
from faster_backend.engine.hotpath import index_upsert_many as _index_upsert_many
from faster_backend.engine.hotpath import pread_value as _pread_value
from faster_backend.engine.hotpath import record_value as _record_value
from faster_backend.engine.hotpath import skip_empty as _skip_empty
from faster_backend.engine.hybrid_log import HybridLog
from faster_backend.engine.read_cache import ReadCache
from faster_backend.engine.record import (
    EXPIRY,
    EXPIRY_SIZE,
    HAS_EXPIRY,
    HEADER,
    HEADER_SIZE,
    INFO,
    MAX_FIELD,
    PREV_MASK,
    TOMBSTONE,
    UNCOUNTED,
    VALUE_LEN,
    make_info,
    record_size,
    size_from_header,
    write_record,
)
from faster_backend.engine.session import Session
from faster_backend.engine.ttl import KEEP_TTL, TtlArg

log = logging.getLogger(__name__)

Updater = Callable[[bytes | None], bytes | None]
T = TypeVar("T")
# (address, buffer, offset, info, key length, value length) of a live record; the buffer is a
# log page for records in memory, the record's own bytes (offset 0) for records on the device.
Found = tuple[int, bytearray | bytes, int, int, int, int]
# What a device lookup learned: the chain start it read from, and the key's newest record there.
Hint = tuple[int, tuple[int, bytes] | None]

_unpack_header = HEADER.unpack_from
_unpack_expiry = EXPIRY.unpack_from
_pack_info = INFO.pack_into
_pack_expiry = EXPIRY.pack_into
_pack_vlen = VALUE_LEN.pack_into
_now = time.time

_SWEEP_EVERY = 64  # writes between two incremental expiry sweeps
_SWEEP_BUCKETS = 16
_GROW_STEP = 256  # old buckets split per write while the index grows
_FIRST_READ = 512  # bytes read for a record on the device before its size is known
# The begin address a blind upsert hands the compiled upsert: above every address, so a chain
# that leaves memory counts as ended there and the record is appended without a device read.
_BLIND_BEGIN = 1 << 62


DURABILITY_MODES = ("none", "periodic", "always")
GEOMETRY_FILE = "geometry"
CHECKPOINT_KINDS = ("fold-over", "snapshot", "incremental")
COMPACTION_FRACTION = 0.2  # of the on-disk log a compaction takes (FASTER's docs: ~20%)


# The longest TTL a record's i64 millisecond expiry can hold (about 290 million years from now):
# longer ones, float("inf") included, are clamped to it, i.e. the record effectively never expires.
_MAX_TTL = 9e15


def expiry_ms(ttl: float | None) -> int | None:
    """Absolute expiry (unix ms) of a ``ttl`` in seconds from now; None stays None."""
    return None if ttl is None else int((_now() + min(ttl, _MAX_TTL)) * 1000)


class _NeedsIO(Exception):
    """The hash chain continues on the device at ``address``."""

    def __init__(self, address: int) -> None:
        self.address = address


class _ClosedLatch:
    """Stands in for the latch of a closed store so that the hot paths need no extra check."""

    def acquire(self, *args: Any) -> bool:
        raise StoreClosedError("the store is closed")

    def release(self) -> None:  # pragma: no cover - acquire never succeeds
        pass

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:  # pragma: no cover
        pass


class FasterKv:
    """A FASTER store of bytes keys and values with optional per-record TTL."""

    # The hook for a store whose keys may live below the log's begin address (F2's cold tier):
    # with it set, ``read`` hands a chain that ends below the begin address to ``_disk_lookup``
    # instead of treating the key as absent; the subclass continues the lookup there and in
    # ``_find_on_device``.
    _lookup_below_begin = False
    # F2's blind upserts: records appended without knowing whether the key existed carry the
    # uncounted bit and leave ``_live`` alone (the subclass settles the count later).
    _blind_upserts = False

    def __init__(
        self,
        *,
        memory_size: int = 256 << 20,
        index_size: int = 1 << 16,
        page_size: int | None = None,
        mutable_fraction: float = 0.9,
        index_load_factor: float = 6.0,
        device: StorageDevice | None = None,
        read_cache_size: int | None = None,
        read_cache_second_chance: float = 0.1,
        log_size_limit: int | None = None,
        max_disk_size: int | None = None,
        compaction_fraction: float = COMPACTION_FRACTION,
        begin_address: int = FIRST_ADDRESS,
        state_dir: Path | None = None,
        durability: str = "none",
        commit_interval: float = 1.0,
        checkpoint_kind: str = "fold-over",
        checkpoint_retention: int = 2,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(
                f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}"
            )
        if checkpoint_kind not in CHECKPOINT_KINDS:
            raise ValueError(
                f"checkpoint_kind must be one of {', '.join(CHECKPOINT_KINDS)},"
                f" got {checkpoint_kind!r}"
            )
        if checkpoint_retention < 1:
            raise ValueError("checkpoint_retention must be at least 1")
        if page_size is None:
            page_size = default_page_size(memory_size)
        if index_load_factor <= 0:
            raise ValueError(f"index_load_factor must be positive, got {index_load_factor}")
        if not 0.0 < compaction_fraction <= 1.0:
            raise ValueError(f"compaction_fraction must be in (0, 1], got {compaction_fraction}")
        persistent = device is not None and device.kind != "null"
        if read_cache_size is None:
            read_cache_size = memory_size // 8 if persistent else 0
        self.memory_size = memory_size
        self.page_size = page_size
        self.index_load_factor = index_load_factor
        self.mutable_fraction = mutable_fraction
        self.log_size_limit = log_size_limit
        self.max_disk_size = max_disk_size
        self.compaction_fraction = compaction_fraction
        self._lock: Any = threading.Lock()
        self._log = HybridLog(
            page_size,
            (memory_size - read_cache_size) // page_size,
            mutable_fraction,
            self._on_evict,
            device,
            begin_address,
        )
        self.device = self._log.device
        self._read_cache = ReadCache(read_cache_size, read_cache_second_chance)
        self._index = HashTable(index_size, self._resolve)
        self._version = 0
        # RecordInfo bits of a fresh record with no flags: final bit + checkpoint version.
        self._info_bits = make_info(0, self._version, 0)
        self._live = 0
        # F2 (engine/record.py, UNCOUNTED): ``_live`` covers uncounted records below
        # ``_settled``; ``_carry`` is the uncounted bit the next write inherits (0 here).
        self._settled = 0
        self._carry = 0
        self._writes = 0
        self._sweep_cursor = 0
        # Whether a record with an expiry may exist: until one does, the sweep has nothing to do.
        self._ttl_seen = False
        self._grow_at = int(index_size * index_load_factor)
        self._sessions: dict[str, Session] = {}
        self._closed = False
        self._maintenance: threading.Thread | None = None
        self._maintenance_wake = threading.Event()
        self._maintenance_error: BaseException | None = None
        self._compaction_floor = 0  # after an unproductive compaction: wait for this size
        self._maintenance_lock = threading.Lock()
        # counters (plain attributes: cheaper than a dict on the hot path)
        # read() counts its hits and misses (one increment per call, it is the hot path); the
        # other read paths count every read in _n_reads and their hits in _n_hits.
        self._n_reads = self._n_hits = self._n_upserts = self._n_rmws = 0
        self._n_read_hits = self._n_misses = 0
        self._n_in_place = self._n_copies = self._n_deletes = self._n_expired = 0
        self._n_evicted = self._n_grows = self._n_disk_reads = self._n_pending = 0
        # Device reads that read's compiled path made itself (counted here, not by the device).
        self._n_fast_reads = self._fast_read_bytes = 0
        self._n_compactions = self._n_compacted_copies = self._n_dropped_segments_keys = 0
        self._n_commits = self._n_checkpoints = 0
        # durability
        self.durability = durability
        self.commit_interval = commit_interval
        self.checkpoint_kind = checkpoint_kind
        self.checkpoint_retention = checkpoint_retention
        self._commit_lock = threading.Lock()
        self._last_commit: CommitPoint | None = None
        self._recovered_sessions: dict[str, int] = {}
        self._checkpoints: CheckpointDir | None = None
        self._checkpoint_begins: dict[int, int] = {}  # retained checkpoint -> its begin
        self._last_snapshot: tuple[int, int] | None = None  # (seq, tail) incrementals build on
        self._commit_log: CommitLog | None = None
        self._committer: threading.Thread | None = None
        self.recovery: Any = None
        if state_dir is not None:
            if not self._log.persistent:
                raise ValueError("a state directory needs a persistent device")
            from faster_backend.engine.recovery import recover

            geometry = read_geometry(Path(state_dir) / GEOMETRY_FILE)
            if geometry is None:
                write_geometry(Path(state_dir) / GEOMETRY_FILE, page_size, self.device.segment_size)
            elif geometry != (page_size, self.device.segment_size):
                raise EngineError(
                    f"{state_dir} was created with page_size={geometry[0]} and"
                    f" segment_size={geometry[1]}; open it with the same sizes"
                    f" (not {page_size} and {self.device.segment_size})"
                )
            self._checkpoints = CheckpointDir(Path(state_dir) / "checkpoints")
            commits = Path(state_dir) / "commits"
            self.recovery = recover(self, self._checkpoints, commits)
            self._ttl_seen = self._log.tail_address > self._log.begin_address
            self._commit_log = CommitLog(commits)
            self._checkpoint_begins = self._checkpoints.begins()
            self._release_segments()  # finish a truncation that a crash interrupted
            self._info_bits = make_info(0, self._version, 0)
            self._grow_at = int(self._index.size * index_load_factor)
            if durability == "always":
                self._make_writes_durable()
            elif durability == "periodic":
                self._committer = threading.Thread(
                    target=self._commit_loop, name="faster-commit", daemon=True
                )
                self._committer.start()
        elif durability != "none":
            raise ValueError(f"durability={durability!r} needs a store with a data directory")

    # -- context management ----------------------------------------------------------------

    def __enter__(self) -> FasterKv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's memory and files; later operations raise StoreClosedError."""
        if self._closed:
            return
        self._maintenance_wake.set()
        error: BaseException | None = None
        if self._checkpoints is not None:
            try:
                self.checkpoint()  # a clean shutdown leaves a checkpoint: a fast restart
            except BaseException as exc:  # still release everything; re-raised below
                error = exc
                log.error("checkpoint at close failed: %s", exc)
        with self._lock:
            self._closed = True
            self._lock = _ClosedLatch()
        self._maintenance_wake.set()
        for thread in (self._maintenance, self._committer):
            if thread is not None:
                thread.join()
        try:
            if self._commit_log is not None:
                self._commit_log.close()
            self._close_device()
        finally:
            log.debug("store closed")
        if error is not None:
            raise error

    def _close_device(self) -> None:
        """Hook for subclasses that persist the log before the device closes."""
        self.device.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self, session_id: str | None = None) -> Session:
        """A session: the same operations, each numbered with a serial number (for CPR).

        Passing the id of a recovered session continues it from its recovered serial number.
        """
        serial = self._recovered_sessions.pop(session_id, 0) if session_id else 0
        s = Session(self, session_id, serial)
        self._sessions[s.id] = s
        return s

    def recover(self) -> dict[str, int]:
        """The serial number each session had reached in the state recovered at open: every
        operation of a session up to that number is in the store, and none after it."""
        if self.recovery is None:
            return {}
        return dict(self.recovery.sessions)

    # -- durability: commits and checkpoints -----------------------------------------------

    def commit(self) -> int:
        """Make every completed operation durable; returns the durable tail address."""
        if self._commit_log is None:
            return 0
        with self._commit_lock:
            return self._commit_locked()

    def _commit_upto(self, address: int) -> None:
        """Group commit: return once ``address`` is durable, sharing other threads' fsyncs."""
        last = self._last_commit
        if last is not None and last.tail >= address:
            return
        with self._commit_lock:
            last = self._last_commit
            if last is None or last.tail < address:
                self._commit_locked()

    def _commit_locked(self) -> int:
        with self._lock:
            hlog = self._log
            tail = hlog.tail_address
            last = self._last_commit
            if (
                last is not None
                and last.tail == tail
                and last.begin == hlog.begin_address
                # F2: a compaction's or len()'s settling changes these without a write
                and last.live == self._live
                and last.settled == self._settled
            ):
                self._release_segments()
                return tail
            hlog.shift_read_only(tail)
            sums = dict(hlog.new_sums)
            point = CommitPoint(
                tail=tail,
                begin=hlog.begin_address,
                live=self._live,
                version=self._version,
                sessions=self._session_serials(),
                page_sums={str(k): v for k, v in sums.items()},
                tail_sum=hlog.tail_checksum(tail),
                index_size=self._index.cur.size,
                settled=self._settled,
            )
        hlog.wait_flushed(tail)
        self.device.flush()
        assert self._commit_log is not None
        self._commit_log.append(point)
        for k in sums:
            hlog.new_sums.pop(k, None)
        self._last_commit = point
        self._n_commits += 1
        self._release_segments()
        return tail

    def checkpoint(self, kind: str | None = None) -> int:
        """Take a checkpoint (index + log) and return its sequence number.

        "fold-over" flushes the whole log to the device (the mutable region becomes read-only);
        "snapshot" copies the in-memory mutable region to the checkpoint instead, so in-place
        updates continue. Operations go on meanwhile; the latch is held only while the index
        and the mutable region are copied.
        """
        kind = kind or self.checkpoint_kind
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {', '.join(CHECKPOINT_KINDS)}")
        if self._checkpoints is None or self._commit_log is None:
            raise EngineError("checkpoints need a store opened with a data directory")
        with self._commit_lock:
            with self._lock:
                while not self._grow_step(1 << 30):
                    pass
                hlog = self._log
                tail = hlog.tail_address
                table = self._index.cur
                index_blob = encode_index(
                    table.size,
                    table.capacity,
                    table.next_overflow,
                    table.free_overflow,
                    bytes(table.buf),
                )
                snapshot: bytes | None = None
                delta: list[tuple[int, bytes]] | None = None
                base = 0
                if kind == "incremental" and self._last_snapshot is None:
                    kind = "snapshot"  # nothing to be incremental to
                if kind == "fold-over":
                    hlog.shift_read_only(tail)
                    device_end = tail
                elif kind == "snapshot":
                    device_end = hlog.read_only_address
                    snapshot = hlog.copy_range(device_end, tail)
                else:
                    # FASTER's delta log: only the pages changed or appended since the last
                    # snapshot; recovery applies the chain on top of its full snapshot.
                    device_end = hlog.read_only_address
                    base, base_tail = self._last_snapshot  # type: ignore[misc]
                    delta = []
                    bits = hlog.page_bits
                    for page in range(device_end >> bits, (tail >> bits) + 1):
                        if page in hlog.dirty or page >= base_tail >> bits:
                            lo = max(device_end, page << bits)
                            hi = min(tail, (page + 1) << bits)
                            if hi > lo:
                                delta.append((lo, hlog.copy_range(lo, hi)))
                hlog.dirty.clear()
                sums = dict(hlog.page_sums)
                point = CommitPoint(
                    tail=tail,
                    begin=hlog.begin_address,
                    live=self._live,
                    version=self._version,
                    sessions=self._session_serials(),
                    page_sums={str(k): v for k, v in sums.items()},
                    tail_sum=hlog.tail_checksum(device_end),
                    index_size=table.size,
                    settled=self._settled,
                )
                self._version += 1
                self._info_bits = make_info(0, self._version, 0)
            hlog.wait_flushed(device_end)
            self.device.flush()
            existing = self._checkpoints.sequence_numbers()
            seq = existing[-1] + 1 if existing else 1
            info = CheckpointInfo(seq, kind, point, table.size, device_end, time.time(), base)
            if snapshot is not None:
                snap: bytes | None = encode_snapshot(device_end, snapshot)
            elif delta is not None:
                snap = encode_delta(base, delta)
            else:
                snap = None
            self._last_snapshot = None if kind == "fold-over" else (seq, tail)
            self._checkpoints.write(info, index_blob, snap, self.checkpoint_retention)
            if kind == "fold-over":
                self._commit_log.rewrite(point)
                self._last_commit = point
                for k in sums:
                    hlog.new_sums.pop(k, None)
            self._checkpoint_begins[seq] = point.begin
            for old in sorted(self._checkpoint_begins)[: -self.checkpoint_retention]:
                del self._checkpoint_begins[old]
            self._n_checkpoints += 1
            self._release_segments()
            log.info("checkpoint %d (%s) at log address %d", seq, kind, tail)
            return seq

    def _release_segments(self) -> None:
        """Delete log segments that no retained checkpoint and no commit point still needs."""
        begins = list(self._checkpoint_begins.values())
        if self._last_commit is not None:
            begins.append(self._last_commit.begin)
        if begins:
            self._log.release_truncated(min(begins))

    def _session_serials(self) -> dict[str, int]:
        serials = dict(self._recovered_sessions)
        serials.update({sid: s.serial for sid, s in self._sessions.items()})
        return serials

    def _commit_loop(self) -> None:
        while not self._closed:
            self._maintenance_wake.wait(self.commit_interval)
            if self._closed:
                return
            try:
                self.commit()
            except StoreClosedError:
                return
            except BaseException:
                log.exception("periodic commit failed")

    def _make_writes_durable(self) -> None:
        """durability="always": each write returns only once it is durable (group commit)."""

        def durable(method: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                result = method(*args, **kwargs)
                self._commit_upto(self._log.tail_address)
                return result

            call.__doc__ = method.__doc__
            return call

        def adurable(method: Callable[..., Any]) -> Callable[..., Any]:
            async def call(*args: Any, **kwargs: Any) -> Any:
                import asyncio

                result = await method(*args, **kwargs)
                await asyncio.to_thread(self._commit_upto, self._log.tail_address)
                return result

            return call

        for name in ("upsert", "upsert_many", "rmw", "incr", "delete", "add", "expire", "clear"):
            setattr(self, name, durable(getattr(self, name)))
        for name in ("aupsert", "armw", "aincr", "adelete", "aadd", "aexpire"):
            setattr(self, name, adurable(getattr(self, name)))

    def _in_session(self, session: Session, key: bytes, op: Callable[[Found | None, int], T]) -> T:
        """Run an operation for ``session``: its serial number advances under the latch,
        atomically with the operation's effect, so checkpoints see matching serials."""
        h = xxh3_64_intdigest(key)

        def run(found: Found | None) -> T:
            result = op(found, h)
            session.serial += 1
            return result

        return self._run(key, h, run)

    def _session_write_done(self) -> None:
        if self.durability == "always":
            self._commit_upto(self._log.tail_address)

    def _end_session(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    # -- reads -----------------------------------------------------------------------------

    def read(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None if absent, deleted or expired."""
        lock = self._lock
        lock.acquire()
        try:
            ix = self._index
            hlog = self._log
            if ix.old is None:  # (the compiled walk hashes the key itself: h None)
                table = ix.cur
                r = _index_read(
                    table.buf, table.mask, None, hlog.pages, hlog.head_address, hlog.page_bits,
                    key, _now,
                )
            else:
                r = _chain_read(
                    ix.find(xxh3_64_intdigest(key)), hlog.pages, hlog.head_address,
                    hlog.page_bits, key, _now,
                )
            if r.__class__ is bytes:
                self._n_read_hits += 1
                return r  # type: ignore[return-value]
            if r is None:
                self._n_misses += 1
                return None
            # False: the compiled walk declined (a page it cannot read); -1 walks in Python.
            addr: int = -1 if r is False else r  # type: ignore[assignment]
            if addr < -1:
                self._expire_at(-addr, key, xxh3_64_intdigest(key))
                self._n_misses += 1
                return None
            if 0 <= addr < hlog.begin_address and not self._lookup_below_begin:
                self._n_misses += 1
                return None
            begin = hlog.begin_address
            uncached = False
            if addr > 0 and not self._lookup_below_begin:
                # The chain's first record below the head may be in the read cache.
                rc = self._read_cache
                hit = _cached_read(rc.entries, addr, key, rc.hit_floor, _now)
                if hit is None or hit.__class__ is bytes:
                    rc.hits += 1
                    if hit is None:
                        self._n_misses += 1
                        return None
                    self._n_read_hits += 1
                    return hit  # type: ignore[return-value]
                uncached = hit is True
        finally:
            lock.release()
        if addr < 0:
            return self._run(key, xxh3_64_intdigest(key), self._count_read)
        if uncached:
            # The common case on the device: the chain's first record there is the key's.
            device = self.device
            segments = device.pread_segments
            value: bytes | bool | None = False
            if segments is not None:  # read and decode in one compiled call
                bits = hlog.page_bits
                room = (((addr >> bits) + 1) << bits) - addr  # a record never crosses its page
                n = _FIRST_READ if room > _FIRST_READ else room
                got = _pread_value(segments, device.segment_size, addr, n, key, _now)
                if got is not False:
                    value, rec = got  # type: ignore[misc]
                    self._n_fast_reads += 1
                    self._fast_read_bytes += n
            if value is False:
                try:
                    rec = self._device_record(addr)
                except AddressTruncatedError:
                    return self.read(key)  # compaction moved the chain meanwhile: look again
                value = _record_value(rec, key, _now)
            if value is not False:
                rc.misses += 1
                rc.put(addr, rec)
                if value is None:
                    self._n_misses += 1
                    return None
                self._n_read_hits += 1
                return value  # type: ignore[return-value]
        # The chain continues on the device: read it without the latch.
        try:
            found = self._disk_lookup(key, addr)
        except AddressTruncatedError:
            return self.read(key)  # compaction moved the chain meanwhile: look again
        if found is None:
            if self._log is not hlog or hlog.begin_address != begin:
                return self.read(key)  # the walk may have ended at a moved begin: look again
            self._n_misses += 1
            return None
        rec = found[1]
        info, kl, vl = _unpack_header(rec, 0)
        if info & TOMBSTONE or (info & HAS_EXPIRY and _expired(rec, 0, info, kl, vl)):
            self._n_misses += 1
            return None
        self._n_read_hits += 1
        return rec[HEADER_SIZE + kl : HEADER_SIZE + kl + vl]

    def _read_in_memory(self, key: bytes, h: int) -> bytes | bool | None:
        """Under the latch: ``read``'s compiled fast path: the value, None (absent or deleted),
        or False when the general path must decide (device, expiry, a growing index)."""
        ix = self._index
        if ix.old is not None:
            return False
        table = ix.cur
        hlog = self._log
        r = _index_read(
            table.buf, table.mask, h, hlog.pages, hlog.head_address, hlog.page_bits, key, _now
        )
        if r.__class__ is bytes:
            self._n_read_hits += 1
            return r  # type: ignore[return-value]
        if r is None:
            self._n_misses += 1
            return None
        if r.__class__ is int and 0 <= r < hlog.begin_address and not self._lookup_below_begin:  # type: ignore[operator]
            self._n_misses += 1
            return None  # the chain ends before the log begins: absent
        return False

    def _count_read(self, found: Found | None) -> bytes | None:
        self._n_reads += 1
        if found is None:
            return None
        self._n_hits += 1
        return _found_value(found)

    def read_with_expiry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """(value, absolute expiry as a unix time or None), or None if there is no live value."""
        h = xxh3_64_intdigest(key)

        def op(found: Found | None) -> tuple[bytes, float | None] | None:
            self._n_reads += 1
            if found is None:
                return None
            _, buf, off, info, kl, vl = found
            self._n_hits += 1
            value = bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            expiry = _expiry_of(buf, off, info, kl, vl)
            return value, None if expiry is None else expiry / 1000.0

        return self._run(key, h, op)

    def exists(self, key: bytes) -> bool:
        return self._run(key, xxh3_64_intdigest(key), _is_found)

    def ttl(self, key: bytes) -> float | None:
        """Seconds left before ``key`` expires; None for no expiry. Raises KeyError if absent."""
        found = self.read_with_expiry(key)
        if found is None:
            raise KeyError(key)
        expiry = found[1]
        return None if expiry is None else max(0.0, expiry - _now())

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; ``ttl`` in seconds (None: never expires)."""
        expiry = None
        if ttl is not None:
            if ttl <= 0:
                self.delete(key)
                return
            expiry = int((_now() + (ttl if ttl < _MAX_TTL else _MAX_TTL)) * 1000)
            self._ttl_seen = True
        lock = self._lock
        lock.acquire()
        try:
            self._n_upserts += 1
            at = self._upsert_in_memory(key, None, value, expiry, 0)  # (hashed in C)
        finally:
            lock.release()
        if at:
            self._upsert_beyond_memory(key, xxh3_64_intdigest(key), value, expiry, at)

    def _upsert_in_memory(
        self, key: bytes, h: int | None, value: bytes, expiry: int | None, known_end: int
    ) -> int:
        """Under the latch: the upsert's compiled fast path (in place, or appended at the tail of
        a page with room). 0 when done; the device address where the key's chain continues (the
        key may be live there); -1 when the general path must run. ``known_end``: that address,
        where the caller found the key live: append on the chain only if it still ends there."""
        ix = self._index
        if ix.old is not None:
            return -1
        table = ix.cur
        hlog = self._log
        blind = self._blind_upserts
        r = _index_upsert(
            table.buf,
            table.mask,
            h,
            hlog.pages,
            hlog.head_address,
            hlog.read_only_address,
            _BLIND_BEGIN if blind else hlog.begin_address,
            hlog.tail_address,
            hlog.page_bits,
            key,
            value,
            expiry,
            self._info_bits | (UNCOUNTED if blind else 0),
            hlog.dirty,
            known_end,
        )
        if r == 1:
            self._n_in_place += 1
            # _after_write() minus index growth: an in-place update adds no key
            self._writes = writes = self._writes + 1
            if not writes & (_SWEEP_EVERY - 1):
                self._sweep(_SWEEP_BUCKETS)
                self._check_maintenance()
            return 0
        if r > 1:
            hlog.tail_address = r
            if known_end:
                self._n_copies += 1  # the key's live record on the device is superseded
            elif blind:
                self._blind_appended(1)
            else:
                self._live += 1
            self._after_write()
            return 0
        return -r if r < 0 else -1

    def _upsert_beyond_memory(
        self, key: bytes, h: int, value: bytes, expiry: int | None, at: int
    ) -> None:
        """The rest of an upsert that memory alone could not do: when the key's chain continues
        on the device at ``at`` (> 0) and the key's live record is the first one there, append on
        that chain (one device read, no general walk); else the general path."""
        device = self.device
        segments = device.pread_segments
        if at > 0 and segments is not None:
            bits = self._log.page_bits
            room = (((at >> bits) + 1) << bits) - at  # a record never crosses its page
            n = _FIRST_READ if room > _FIRST_READ else room
            got = _pread_value(segments, device.segment_size, at, n, key, _now)
            if got is not False:
                self._n_fast_reads += 1
                self._fast_read_bytes += n
                if got[0] is not None:  # type: ignore[index]
                    with self._lock:
                        if not self._upsert_in_memory(key, h, value, expiry, at):
                            return
        self._upsert_slow(key, h, value, expiry)

    def _upsert_slow(self, key: bytes, h: int, value: bytes, expiry: int | None) -> None:
        self._run(key, h, self._upsert_op(key, h, value, expiry))

    # Operations as closures over the live record, shared by the blocking and asyncio APIs.

    def _upsert_op(
        self, key: bytes, h: int, value: bytes, expiry: int | None
    ) -> Callable[[Found | None], None]:
        def op(found: Found | None) -> None:
            self._write(key, h, value, expiry, found)

        return op

    def _add_op(
        self, key: bytes, h: int, value: bytes, expiry: int | None
    ) -> Callable[[Found | None], bool]:
        def op(found: Found | None) -> bool:
            if found is not None:
                return False
            self._write(key, h, value, expiry, None)
            return True

        return op

    def _delete_op(self, key: bytes, h: int) -> Callable[[Found | None], bool]:
        def op(found: Found | None) -> bool:
            if found is None:
                return False
            self._tombstone(found[0], key, h)
            self._n_deletes += 1
            return True

        return op

    def add(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` has no live value; True if it was stored."""
        if ttl is not None and ttl <= 0:
            return not self.exists(key)
        h = xxh3_64_intdigest(key)
        expiry = expiry_ms(ttl)
        return self._run(key, h, self._add_op(key, h, value, expiry))

    def rmw(self, key: bytes, updater: Updater, ttl: TtlArg = KEEP_TTL) -> bytes | None:
        """Atomically replace the value with ``updater(old)`` (old is None when absent).

        The updater returns the new value, or None to leave the store unchanged; an exception
        it raises propagates and nothing is written. ``ttl``: seconds, None for no expiry, or
        KEEP_TTL (default) to keep an existing record's expiry. Returns the value now stored.
        """
        h = xxh3_64_intdigest(key)
        return self._run(key, h, lambda found: self._rmw(key, h, updater, ttl, found))

    def _rmw(
        self, key: bytes, h: int, updater: Updater, ttl: TtlArg, found: Found | None
    ) -> bytes | None:
        self._n_rmws += 1
        if found is None:
            old = None
            old_expiry = None
        else:
            _, buf, off, info, kl, vl = found
            old = bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            old_expiry = _expiry_of(buf, off, info, kl, vl)
        new = updater(old)
        if new is None:
            return old
        if ttl is KEEP_TTL:
            expiry = old_expiry
        elif ttl is None:
            expiry = None
        else:
            if ttl <= 0:  # type: ignore[operator]
                if found is not None:
                    self._tombstone(found[0], key, h)
                    self._n_deletes += 1
                return None
            expiry = expiry_ms(ttl)  # type: ignore[arg-type]
        self._write(key, h, new, expiry, found)
        return new

    def incr(self, key: bytes, delta: int = 1, *, create: bool = True) -> int:
        """Atomically add ``delta`` to the integer stored under ``key`` and return the sum
        (Redis' INCRBY): the value must be a canonical decimal int64, the expiry is kept.

        An absent key counts as 0 (``create=False``: KeyError). ValueError when the value is
        not such an integer, OverflowError when the sum leaves int64; nothing is written then.
        """
        lock = self._lock
        lock.acquire()
        try:
            ix = self._index
            if ix.old is None:
                table = ix.cur
                hlog = self._log
                new = _index_incr(
                    table.buf,
                    table.mask,
                    None,  # the compiled walk hashes the key itself
                    hlog.pages,
                    hlog.head_address,
                    hlog.read_only_address,
                    hlog.page_bits,
                    key,
                    delta,
                    _now,
                    hlog.dirty,
                )
                if new is not None:
                    self._n_rmws += 1
                    self._n_in_place += 1
                    # _after_write() minus index growth: an in-place update adds no key
                    self._writes = writes = self._writes + 1
                    if not writes & (_SWEEP_EVERY - 1):
                        self._sweep(_SWEEP_BUCKETS)
                        self._check_maintenance()
                    return new
        finally:
            lock.release()
        h = xxh3_64_intdigest(key)
        return self._run(key, h, self._incr_op(key, h, delta, create))

    def incr_many(self, keys: Iterable[bytes], delta: int = 1) -> list[int | Exception]:
        """``incr`` of each key in order (an absent key counts as 0): the new values, with the
        exception ``incr`` raised for a key (ValueError, OverflowError, an I/O error...) in
        place of its value; nothing is written for that key, and the keys after it still run."""
        batch = keys if type(keys) is list else list(keys)
        out: list[int | Exception] = []
        n = len(batch)
        i = 0
        lock = self._lock
        lock.acquire()
        try:
            while i < n:
                ix = self._index
                if ix.old is None:  # the compiled loop, up to the first key it cannot do
                    table = ix.cur
                    hlog = self._log
                    done = len(out)
                    i = _index_incr_many(
                        table.buf,
                        table.mask,
                        hlog.pages,
                        hlog.head_address,
                        hlog.read_only_address,
                        hlog.page_bits,
                        batch,
                        i,
                        delta,
                        _now,
                        hlog.dirty,
                        out,
                    )
                    done = len(out) - done
                    if done:
                        # incr's bookkeeping for in-place updates, once for the batch
                        self._n_rmws += done
                        self._n_in_place += done
                        before = self._writes
                        self._writes = before + done
                        if before // _SWEEP_EVERY != self._writes // _SWEEP_EVERY:
                            self._sweep(_SWEEP_BUCKETS)
                            self._check_maintenance()
                    if i == n:
                        break
                key = batch[i]
                i += 1
                lock.release()  # the key at i takes incr's general path, order kept
                try:
                    out.append(self.incr(key, delta))
                except Exception as e:  # that key's result, as a batch of incr calls would see
                    out.append(e)
                finally:
                    lock.acquire()
        finally:
            lock.release()
        return out

    def _locate(self, key: bytes, h: int) -> int:
        """Under the latch: the address of ``key``'s newest record when it is in memory, else
        the first address of its chain below the head (0: no chain; else on the device)."""
        ix = self._index
        hlog = self._log
        if ix.old is None:
            table = ix.cur
            addr = _index_locate(
                table.buf, table.mask, h, hlog.pages, hlog.head_address, hlog.page_bits, key
            )
            if addr >= 0:
                return addr
        # The index grows (or the compiled walk declined): walk in Python.
        return chain_walk(hlog.pages, hlog.head_address, hlog.page_bits, ix.find(h), key)[0]

    def _incr_op(
        self, key: bytes, h: int, delta: int, create: bool
    ) -> Callable[[Found | None], int]:
        def op(found: Found | None) -> int:
            self._n_rmws += 1
            if found is None:
                if not create:
                    raise KeyError(key)
                new = _int64(delta)
                self._write(key, h, b"%d" % new, None, None)
                return new
            _, buf, off, info, kl, vl = found
            start = off + HEADER_SIZE + kl
            new = _int64(_parse_int64(bytes(buf[start : start + vl])) + delta)
            self._write(key, h, b"%d" % new, _expiry_of(buf, off, info, kl, vl), found)
            return new

        return op

    def upsert_many(
        self, items: Iterable[tuple[bytes, bytes]], ttl: float | None = None
    ) -> None:
        """Upsert each (key, value) in order with one ``ttl``; under durability "always" the
        whole batch becomes durable with one commit before this returns."""
        if ttl is not None and ttl <= 0:
            for key, _ in items:
                self.delete(key)
            return
        expiry = None
        if ttl is not None:
            expiry = int((_now() + (ttl if ttl < _MAX_TTL else _MAX_TTL)) * 1000)
            self._ttl_seen = True
        batch = items if type(items) is list else list(items)
        i = 0
        n = len(batch)
        lock = self._lock
        lock.acquire()
        try:
            while i < n:
                at = -1
                ix = self._index
                if ix.old is None:  # the compiled loop, up to the first item it cannot do
                    table = ix.cur
                    hlog = self._log
                    i, tail, in_place, appended, code = _index_upsert_many(
                        table.buf,
                        table.mask,
                        hlog.pages,
                        hlog.head_address,
                        hlog.read_only_address,
                        _BLIND_BEGIN if self._blind_upserts else hlog.begin_address,
                        hlog.tail_address,
                        hlog.page_bits,
                        batch,
                        i,
                        expiry,
                        self._info_bits | (UNCOUNTED if self._blind_upserts else 0),
                        hlog.dirty,
                        None,  # the compiled loop hashes the keys itself
                    )
                    if in_place or appended:
                        self._batch_written(tail, in_place, appended)
                    if i == n:
                        break
                    at = -code if code < 0 else -1
                # The item at i takes the rest of the way, with the latch its own; order is kept.
                key, value = batch[i]
                h = xxh3_64_intdigest(key)
                self._n_upserts += 1
                if at == -1:
                    at = self._upsert_in_memory(key, h, value, expiry, 0)
                i += 1
                if at:
                    lock.release()
                    try:
                        self._upsert_beyond_memory(key, h, value, expiry, at)
                    finally:
                        lock.acquire()
        finally:
            lock.release()

    def _batch_written(self, tail: int, in_place: int, appended: int) -> None:
        """Under the latch: the bookkeeping of ``_upsert_in_memory`` for a compiled batch."""
        self._log.tail_address = tail
        done = in_place + appended
        self._n_upserts += done
        self._n_in_place += in_place
        if self._blind_upserts:
            self._blind_appended(appended)
        else:
            self._live += appended
        before = self._writes
        self._writes = before + done
        if self._index.old is None and self._live > self._grow_at:
            self._index.start_grow()
        if before // _SWEEP_EVERY != self._writes // _SWEEP_EVERY:
            self._sweep(_SWEEP_BUCKETS)
            self._check_maintenance()

    def read_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """``read`` of each key, in order."""
        batch = keys if type(keys) is list else list(keys)
        lock = self._lock
        lock.acquire()
        try:
            ix = self._index
            if ix.old is None:  # one compiled loop
                table = ix.cur
                hlog = self._log
                out, hits, misses = _index_read_many(
                    table.buf,
                    table.mask,
                    hlog.pages,
                    hlog.head_address,
                    hlog.page_bits,
                    0 if self._lookup_below_begin else hlog.begin_address,
                    batch,
                    _now,
                )
                self._n_read_hits += hits
                self._n_misses += misses
                rest = len(out) - hits - misses
            else:
                out = [self._read_in_memory(key, xxh3_64_intdigest(key)) for key in batch]
                rest = out.count(False)
        finally:
            lock.release()
        if rest:
            # The rest (device, read cache, expiry, a growing index): ``read`` decides, without
            # the latch, and counts them.
            for i, r in enumerate(out):
                if r is not None and r.__class__ is not bytes:
                    out[i] = self.read(batch[i])
        return out  # type: ignore[return-value]

    def expire(self, key: bytes, ttl: float | None) -> bool:
        """Set (seconds) or clear (None) the expiry of a live key; ttl <= 0 deletes it."""
        h = xxh3_64_intdigest(key)
        return self._run(key, h, self._expire_op(key, h, ttl))

    def _expire_op(self, key: bytes, h: int, ttl: float | None) -> Callable[[Found | None], bool]:
        def op(found: Found | None) -> bool:
            if found is None:
                return False
            addr, buf, off, info, kl, vl = found
            if ttl is not None and ttl <= 0:
                self._tombstone(addr, key, h)
                self._n_deletes += 1
                return True
            expiry = expiry_ms(ttl)
            if addr >= self._log.read_only_address and bool(info & HAS_EXPIRY) == (
                expiry is not None
            ):
                if expiry is not None:
                    _pack_expiry(buf, off + record_size(kl, vl, True) - EXPIRY_SIZE, expiry)  # type: ignore[arg-type]
                    self._log.dirty.add(addr >> self._log.page_bits)
                self._n_in_place += 1
                return True
            value = bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            self._write(key, h, value, expiry, found)
            return True

        return op

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; True if it had a live value."""
        h = xxh3_64_intdigest(key)
        return self._run(key, h, self._delete_op(key, h))

    def clear(self) -> None:
        """Remove every key (the device's log files too, once the empty state is durable)."""
        with self._lock:
            hlog = self._log
            hlog.wait_flushed(hlog.read_only_address)
            tail = hlog.tail_address
            start = (((tail >> hlog.page_bits) + 1) << hlog.page_bits) if hlog.persistent else 0
            self._log = HybridLog(
                self.page_size,
                hlog.memory_pages,
                self.mutable_fraction,
                self._on_evict,
                hlog.device,
                max(FIRST_ADDRESS, start),
            )
            if hlog.persistent and self._commit_log is None:
                self.device.truncate(start)
            self._read_cache.clear()
            self._last_snapshot = None
            self._index = HashTable(self._index.size, self._resolve)
            self._live = 0
            self._sweep_cursor = 0
            self._ttl_seen = False
        if hlog.persistent and self._commit_log is not None:
            # The older checkpoints and commits need the old segments: a crash between their
            # deletion and the next durable point would leave nothing to recover. Commit the
            # empty log first (recovery then ignores what lies below its begin).
            self.commit()
            self.device.truncate(start)

    # -- asyncio ---------------------------------------------------------------------------

    async def aread(self, key: bytes) -> bytes | None:
        """``read`` for asyncio: device reads are awaited, never blocking the event loop."""
        h = xxh3_64_intdigest(key)
        with self._lock:
            r = self._read_in_memory(key, h)
        if r is not False:
            return r  # type: ignore[return-value]
        found = await self._arun(key, h, _found_value)
        self._n_reads += 1
        if found is not None:
            self._n_hits += 1
        return found

    async def aread_with_expiry(self, key: bytes) -> tuple[bytes, float | None] | None:
        def op(found: Found | None) -> tuple[bytes, float | None] | None:
            if found is None:
                return None
            _, buf, off, info, kl, vl = found
            expiry = _expiry_of(buf, off, info, kl, vl)
            value = bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])
            return value, None if expiry is None else expiry / 1000.0

        return await self._arun(key, xxh3_64_intdigest(key), op)

    async def aexists(self, key: bytes) -> bool:
        return await self._arun(key, xxh3_64_intdigest(key), _is_found)

    async def aupsert(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        if ttl is not None and ttl <= 0:
            await self.adelete(key)
            return
        h = xxh3_64_intdigest(key)
        expiry = expiry_ms(ttl)
        if expiry is not None:
            self._ttl_seen = True
        with self._lock:
            self._n_upserts += 1
            if not self._upsert_in_memory(key, h, value, expiry, 0):
                return
        await self._arun(key, h, self._upsert_op(key, h, value, expiry))

    async def aadd(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        if ttl is not None and ttl <= 0:
            return not await self.aexists(key)
        h = xxh3_64_intdigest(key)
        expiry = expiry_ms(ttl)
        return await self._arun(key, h, self._add_op(key, h, value, expiry))

    async def armw(self, key: bytes, updater: Updater, ttl: TtlArg = KEEP_TTL) -> bytes | None:
        h = xxh3_64_intdigest(key)
        return await self._arun(key, h, lambda found: self._rmw(key, h, updater, ttl, found))

    async def aincr(self, key: bytes, delta: int = 1, *, create: bool = True) -> int:
        h = xxh3_64_intdigest(key)
        return await self._arun(key, h, self._incr_op(key, h, delta, create))

    async def adelete(self, key: bytes) -> bool:
        h = xxh3_64_intdigest(key)
        return await self._arun(key, h, self._delete_op(key, h))

    async def aexpire(self, key: bytes, ttl: float | None) -> bool:
        h = xxh3_64_intdigest(key)
        return await self._arun(key, h, self._expire_op(key, h, ttl))

    # -- iteration -------------------------------------------------------------------------

    def scan(self, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        """Redis-style SCAN over live keys: visits about ``count`` buckets from ``cursor``.

        Returns (next cursor, keys); a full iteration ends when the cursor returned is 0. It
        returns every key that is present for the whole iteration, even while the index grows
        (the reverse-binary cursor of Redis' dictScan), and may return a key more than once.
        """
        keys: list[bytes] = []
        on_disk: list[tuple[int, set[bytes], int, int]] = []
        with self._lock:
            while not self._grow_step(4096):
                pass
            table = self._index.cur
            mask = table.mask
            v = cursor
            visited = 0
            while True:
                # Empty buckets count as visited but cost next to nothing: a sparse index
                # (few keys, many buckets) scans as fast as a dense one.
                v, skipped = _skip_empty(table.buf, mask, v, count - visited)
                visited += skipped
                if (skipped and v == 0) or visited >= count:
                    break
                self._collect_bucket(table, v & mask, keys, on_disk)
                visited += 1
                v = next_cursor(v, mask)
                if v == 0 or visited >= count:
                    break
        for addr, seen, bucket, bmask in on_disk:
            self._collect_disk_chain(addr, seen, keys, bucket, bmask)
        return v, keys

    def keys(self) -> Iterator[bytes]:
        """Every live key (a full scan; keys written meanwhile may or may not appear)."""
        cursor = 0
        while True:
            cursor, batch = self.scan(cursor, 256)
            yield from batch
            if cursor == 0:
                return

    def __len__(self) -> int:
        """Number of live keys (keys that expired but were not yet swept still count)."""
        return self._live

    @property
    def checkpoint_version(self) -> int:
        """The store's version: a checkpoint's cut advances it (``stats()`` has it too)."""
        return self._version

    def count_is_settled(self) -> bool:
        """True when ``len()`` is O(1) now (F2: no blind upserts since its last settling)."""
        return True

    def sweep_expired(self, max_buckets: int = 1024) -> int:
        """Delete expired records from the next ``max_buckets`` buckets; returns how many."""
        with self._lock:
            return self._sweep(max_buckets)

    def grow_index(self) -> None:
        """Double the hash index now, letting other threads in between chunks."""
        with self._lock:
            self._index.start_grow()
        while True:
            with self._lock:
                if self._grow_step(4096):
                    return

    # -- compaction ------------------------------------------------------------------------

    def compact(self, until: int | None = None, *, mode: str = "lookup") -> int:
        """Copy the live records below ``until`` to the tail and drop that part of the log.

        ``until`` defaults to ``compaction_fraction`` of the on-disk log; it is rounded down to
        a page boundary and never passes the head address (only the on-device part is
        compacted). ``mode`` is "lookup" (look each record up in the index) or "scan" (first
        find the newest record of each key in the range, as FASTER's scan compaction does).
        Returns the number of records copied.
        """
        from faster_backend.engine.compaction import compact

        return compact(self, until, mode).copied

    def _drop_oldest(self, until: int) -> int:
        """Cache mode: drop the log below ``until``; its live keys become misses."""
        from faster_backend.engine.compaction import drop_oldest

        return drop_oldest(self, until)

    # -- statistics ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            hlog = self._log
            ix = self._index
            rc = self._read_cache
            index_bytes = ix.memory_bytes()
            slots = ix.size * 7
            dev = self.device.stats.as_dict()
            return {
                "compiled_hot_paths": _hotpath.NATIVE,
                "reads": self._n_reads + self._n_read_hits + self._n_misses,
                "read_hits": self._n_hits + self._n_read_hits,
                "read_misses": self._n_reads - self._n_hits + self._n_misses,
                "upserts": self._n_upserts,
                "rmws": self._n_rmws,
                "in_place_updates": self._n_in_place,
                "copy_updates": self._n_copies,
                "deletes": self._n_deletes,
                "expirations": self._n_expired,
                "evicted_records": self._n_evicted,
                "live_keys": self._live,
                "index_buckets": ix.size,
                "index_overflow_buckets": ix.overflow_buckets(),
                "index_growing": ix.growing,
                "index_grows": self._n_grows,
                "index_load": self._live / slots if slots else 0.0,
                "index_bytes": index_bytes,
                "log_begin_address": hlog.begin_address,
                "log_head_address": hlog.head_address,
                "log_read_only_address": hlog.read_only_address,
                "log_flushed_until_address": hlog.flushed_until_address,
                "log_tail_address": hlog.tail_address,
                "log_pages_in_memory": hlog.pages_in_memory(),
                "log_memory_bytes": hlog.memory_bytes(),
                "log_evicted_pages": hlog.evicted_pages,
                "log_disk_bytes": hlog.head_address - hlog.begin_address
                if hlog.persistent
                else 0,
                "disk_reads": self._n_disk_reads + self._n_fast_reads,
                "pending_reads": self._n_pending,
                "read_cache_bytes": rc.bytes,
                "read_cache_records": len(rc),
                "read_cache_hits": rc.hits,
                "read_cache_misses": rc.misses,
                "read_cache_copies": rc.copies,
                "compactions": self._n_compactions,
                "compacted_records": self._n_compacted_copies,
                "dropped_keys": self._n_dropped_segments_keys,
                "maintenance_error": repr(self._maintenance_error)
                if self._maintenance_error
                else None,
                "device": self.device.kind,
                "device_bytes_read": dev["bytes_read"] + self._fast_read_bytes,
                "device_bytes_written": dev["bytes_written"],
                "device_reads": dev["reads"] + self._n_fast_reads,
                "device_writes": dev["writes"],
                "memory_bytes": hlog.memory_bytes() + index_bytes + rc.bytes,
                "page_size": self.page_size,
                "memory_size": self.memory_size,
                "sessions": len(self._sessions),
                "durability": self.durability,
                "commits": self._n_commits,
                "checkpoints": self._n_checkpoints,
                "committed_address": self._last_commit.tail if self._last_commit else 0,
                "checkpoint_version": self._version,
            }

    # -- running an operation, with device reads outside the latch -------------------------

    def _run(self, key: bytes, h: int, op: Callable[[Found | None], T]) -> T:
        """Run ``op(live record or None)`` under the latch, reading the device between tries."""
        hint: Hint | None = None
        while True:
            with self._lock:
                try:
                    found = self._find_live(key, h, hint)
                except _NeedsIO as need:
                    start = need.address
                else:
                    return op(found)
            try:
                hint = (start, self._disk_lookup(key, start))
            except AddressTruncatedError:
                hint = None  # compaction moved the chain meanwhile: look again

    async def _arun(self, key: bytes, h: int, op: Callable[[Found | None], T]) -> T:
        hint: Hint | None = None
        while True:
            with self._lock:
                try:
                    found = self._find_live(key, h, hint)
                except _NeedsIO as need:
                    start = need.address
                else:
                    return op(found)
            try:
                hint = (start, await self._adisk_lookup(key, start))
            except AddressTruncatedError:
                hint = None

    def _find_live(self, key: bytes, h: int, hint: Hint | None = None) -> Found | None:
        """The live record of ``key``; raises _NeedsIO when the chain continues on the device
        at an address that ``hint`` does not cover. Expired records are tombstoned here."""
        hlog = self._log
        addr = self._locate(key, h)
        if addr >= hlog.head_address:
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            info, kl, vl = _unpack_header(page, off)
            return self._live_or_none(addr, page, off, info, kl, vl, key, h)
        return self._find_on_device(key, h, addr, hint)

    def _find_on_device(self, key: bytes, h: int, addr: int, hint: Hint | None) -> Found | None:
        """The rest of ``_find_live`` once the chain has left memory at ``addr``."""
        hlog = self._log
        if addr < hlog.begin_address:
            return None
        if hint is None or hint[0] != addr:
            raise _NeedsIO(addr)
        result = hint[1]
        if result is None or result[0] < hlog.begin_address:
            return None
        rec_addr, rec = result
        info, kl, vl = _unpack_header(rec, 0)
        return self._live_or_none(rec_addr, rec, 0, info, kl, vl, key, h)

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
        if info & TOMBSTONE:
            return None
        if info & HAS_EXPIRY and _expired(buf, off, info, kl, vl):
            self._expire_at(addr, key, h)
            return None
        return addr, buf, off, info, kl, vl

    def _read_record(self, addr: int) -> bytes:
        """The whole record at a device address (through the read cache)."""
        cached = self._read_cache.get(addr)
        if cached is not None:
            return cached
        return self._device_record(addr)

    def _device_record(self, addr: int) -> bytes:
        """The whole record at a device address, read from the device."""
        self._n_disk_reads += 1
        bits = self._log.page_bits
        room = (((addr >> bits) + 1) << bits) - addr  # a record never crosses its page's end
        device = self.device
        data = device.read(addr, _FIRST_READ if room > _FIRST_READ else room)
        info, kl, vl = _unpack_header(data, 0)
        size = (HEADER_SIZE + kl + vl + 7) & ~7  # record_size, inlined: this path is hot
        if info & HAS_EXPIRY:
            size += EXPIRY_SIZE
        if size > len(data):
            return data + device.read(addr + len(data), size - len(data))
        return data[:size]

    def _disk_lookup(self, key: bytes, addr: int) -> tuple[int, bytes] | None:
        """Follow a hash chain on the device: (address, record) of ``key``'s newest record.

        The record found is offered to the read cache when it came from the device (the cache
        admits it on its second read); records of other keys on the chain are not."""
        hlog = self._log
        cache = self._read_cache
        klen = len(key)
        while addr >= hlog.begin_address:
            rec = cache.get(addr)
            if rec is None:
                rec = self._device_record(addr)
                info, kl, _ = _unpack_header(rec, 0)
                if kl == klen and rec.startswith(key, HEADER_SIZE):
                    cache.put(addr, rec)
                    return addr, rec
            else:
                info, kl, _ = _unpack_header(rec, 0)
                if kl == klen and rec.startswith(key, HEADER_SIZE):
                    return addr, rec
            addr = info & PREV_MASK
        return None

    async def _adisk_lookup(self, key: bytes, addr: int) -> tuple[int, bytes] | None:
        klen = len(key)
        hlog = self._log
        while addr >= hlog.begin_address:
            rec = self._read_cache.get(addr)
            cached = rec is not None
            if rec is None:
                self._n_disk_reads += 1
                page_end = ((addr >> hlog.page_bits) + 1) << hlog.page_bits
                rec = await self.device.aread(addr, min(_FIRST_READ, page_end - addr))
                info, kl, vl = _unpack_header(rec, 0)
                size = size_from_header(info, kl, vl)
                if size > len(rec):
                    rec += await self.device.aread(addr + len(rec), size - len(rec))
                rec = rec[:size]
            info, kl, _ = _unpack_header(rec, 0)
            if kl == klen and rec.startswith(key, HEADER_SIZE):
                if not cached:
                    self._read_cache.put(addr, rec)
                return addr, rec
            addr = info & PREV_MASK
        return None

    # -- pending reads (sessions) ----------------------------------------------------------

    def _read_start(self, key: bytes) -> tuple[str, bytes | None, int, int]:
        """("ok" | "not_found", value, 0, 0) from memory, or ("pending", None, device address,
        begin address at the time) when the chain continues on the device."""
        h = xxh3_64_intdigest(key)
        with self._lock:
            self._n_reads += 1
            try:
                found = self._find_live(key, h)
            except _NeedsIO as need:
                self._n_pending += 1
                return "pending", None, need.address, self._log.begin_address
            if found is None:
                return "not_found", None, 0, 0
            self._n_hits += 1
            return "ok", _found_value(found), 0, 0

    def _pending_issue(self, address: int, done: Callable[[bytes | None, Any], None]) -> None:
        """Start reading the record at ``address``; ``done(data, error)`` runs on completion
        (on a device thread, or at once for a read-cache hit): it must only hand over."""
        cached = self._read_cache.get(address)
        if cached is not None:
            done(cached, None)
            return
        self._n_disk_reads += 1
        page_end = ((address >> self._log.page_bits) + 1) << self._log.page_bits
        self.device.read_async(address, min(_FIRST_READ, page_end - address), done)

    def _pending_continue(
        self, key: bytes, address: int, data: bytes, begin: int
    ) -> tuple[str, Any]:
        """One step of a pending read, in the thread completing it: ("ok", value),
        ("not_found", None), ("next", address to read) or ("restart", None) when compaction
        moved the log's begin meanwhile (the caller then reads the blocking way)."""
        info, kl, vl = _unpack_header(data, 0)
        size = size_from_header(info, kl, vl)
        if size > len(data):
            data += self.device.read(address + len(data), size - len(data))
        rec = data[:size]
        if kl != len(key) or not rec.startswith(key, HEADER_SIZE):
            nxt = info & PREV_MASK
            if nxt >= self._log.begin_address:
                return "next", nxt
            return ("restart", None) if self._log.begin_address != begin else ("not_found", None)
        if address not in self._read_cache:  # a read-cache hit is not offered again
            self._read_cache.put(address, rec)
        if info & TOMBSTONE or _expired(rec, 0, info, kl, vl):
            return "not_found", None
        self._n_hits += 1
        return "ok", rec[HEADER_SIZE + kl : HEADER_SIZE + kl + vl]

    # -- internals (callers hold the latch) ------------------------------------------------

    def _write(
        self, key: bytes, h: int, value: bytes, expiry: int | None, found: Found | None
    ) -> None:
        """Upsert core: update ``found`` in place in the mutable region, else append."""
        klen = len(key)
        vlen = len(value)
        if klen > MAX_FIELD or vlen > MAX_FIELD:
            raise RecordTooLargeError("keys and values are limited to 4 GiB")
        size = record_size(klen, vlen, expiry is not None)
        hlog = self._log
        if found is not None:
            addr, buf, off, info, kl, vl = found
            if (
                addr >= hlog.read_only_address
                and bool(info & HAS_EXPIRY) == (expiry is not None)
                and record_size(kl, vl, expiry is not None) == size
            ):
                start = off + HEADER_SIZE + kl
                buf[start : start + vlen] = value  # type: ignore[index]
                _pack_vlen(buf, off + 12, vlen)  # type: ignore[arg-type]
                if expiry is not None:
                    _pack_expiry(buf, off + size - EXPIRY_SIZE, expiry)  # type: ignore[arg-type]
                hlog.dirty.add(addr >> hlog.page_bits)
                self._n_in_place += 1
                self._after_write()
                return
        new_addr = hlog.allocate(size)
        live_before = found is not None
        # Without a device, allocation may have evicted the record we found (and counted it).
        if live_before and not hlog.persistent and found[0] < hlog.head_address:  # type: ignore[index]
            live_before = False
        table, slot = self._index.find_slot(h, create=True)
        words = table.words
        page = hlog.pages[new_addr >> hlog.page_bits]
        assert page is not None
        carry = self._carry
        flags = carry
        if expiry is not None:
            flags |= HAS_EXPIRY
            self._ttl_seen = True
        write_record(
            page,
            new_addr & hlog.page_mask,
            make_info(words[slot] & ADDRESS_MASK, self._version, flags),
            key,
            value,
            expiry,
            size,
        )
        words[slot] = new_addr | ((h >> HASH_TAG_SHIFT) or 1) << TAG_SHIFT
        if found is not None:
            self._n_copies += 1
        if not live_before and not carry:
            self._live += 1
        self._after_write()

    def _blind_appended(self, n: int) -> None:
        """Under the latch: ``n`` uncounted records were appended (F2's bookkeeping)."""

    def _after_write(self) -> None:
        self._writes += 1
        ix = self._index
        if ix.old is not None:
            self._grow_step(_GROW_STEP)
        elif self._live > self._grow_at:
            ix.start_grow()
        if not self._writes & (_SWEEP_EVERY - 1):
            self._sweep(_SWEEP_BUCKETS)
            self._check_maintenance()

    def _grow_step(self, max_buckets: int) -> bool:
        """Advance an index growth, if one runs; True when none is left running."""
        ix = self._index
        if ix.old is None:
            return True
        if not ix.grow_step(max_buckets):
            return False
        self._n_grows += 1
        self._grow_at = int(ix.size * self.index_load_factor)
        return True

    def _expire_at(self, addr: int, key: bytes, h: int) -> None:
        self._tombstone(addr, key, h)
        self._n_expired += 1

    def _tombstone(self, addr: int, key: bytes, h: int) -> None:
        """Mark the live record at ``addr`` deleted: in place if mutable, else append one."""
        hlog = self._log
        carry = self._carry
        if addr >= hlog.read_only_address:
            if not carry:
                self._live -= 1
            page = hlog.pages[addr >> hlog.page_bits]
            assert page is not None
            off = addr & hlog.page_mask
            _pack_info(page, off, INFO.unpack_from(page, off)[0] | TOMBSTONE)
            hlog.dirty.add(addr >> hlog.page_bits)
            return
        size = record_size(len(key), 0, False)
        new_addr = hlog.allocate(size)
        if not carry and (hlog.persistent or addr >= hlog.head_address):
            self._live -= 1  # else eviction during allocate already uncounted it
        table, slot = self._index.find_slot(h, create=True)
        words = table.words
        page = hlog.pages[new_addr >> hlog.page_bits]
        assert page is not None
        info = make_info(words[slot] & ADDRESS_MASK, self._version, TOMBSTONE | carry)
        write_record(page, new_addr & hlog.page_mask, info, key, b"", None, size)
        words[slot] = new_addr | ((h >> HASH_TAG_SHIFT) or 1) << TAG_SHIFT

    def _collect_bucket(
        self,
        table: Any,
        bucket: int,
        out: list[bytes],
        on_disk: list[tuple[int, set[bytes], int, int]],
    ) -> None:
        """Append the live keys of a bucket's chains in memory to ``out``; chains that go on
        to the device are noted in ``on_disk`` with the keys already seen."""
        hlog = self._log
        args = (
            table.buf,
            table.mask,
            bucket,
            hlog.pages,
            hlog.head_address,
            hlog.page_bits,
            _now() * 1000,
            xxh3_64_intdigest,
            out,
        )
        chains = _bucket_keys(*args)
        if chains is None:  # the compiled walk declined: the reference walks (and reports)
            chains = py_collect_bucket(*args)
        begin = hlog.begin_address
        for addr, seen in chains or ():
            if addr >= begin:
                on_disk.append((addr, seen, bucket, table.mask))

    def _collect_disk_chain(
        self, addr: int, seen: set[bytes], out: list[bytes], bucket: int, mask: int
    ) -> None:
        now_ms = _now() * 1000
        try:
            while addr >= self._log.begin_address:
                rec = self._read_record(addr)
                info, kl, vl = _unpack_header(rec, 0)
                key = rec[HEADER_SIZE : HEADER_SIZE + kl]
                if key not in seen:
                    seen.add(key)
                    if not info & TOMBSTONE and xxh3_64_intdigest(key) & mask == bucket:
                        exp = _expiry_of(rec, 0, info, kl, vl)
                        if exp is None or exp > now_ms:
                            out.append(key)
                addr = info & PREV_MASK
        except AddressTruncatedError:
            pass  # compacted meanwhile: its live records were copied to the tail

    def _sweep(self, max_buckets: int) -> int:
        """Tombstone expired records (in memory) that index entries of the next buckets point
        to. Only each entry's newest record is looked at: older versions are dead anyway, and a
        rare tag-sharing key further down a chain still expires when it is read or compacted."""
        ix = self._index
        if ix.growing or not self._ttl_seen:
            return 0
        table = ix.cur
        hlog = self._log
        start = self._sweep_cursor & table.mask
        count = min(max_buckets, table.size)
        self._sweep_cursor = start + count
        expired = _expired_entries(
            table.buf, table.mask, start, count, hlog.pages, hlog.head_address, hlog.page_bits,
            _now() * 1000,
        )
        for addr, key in expired:
            self._expire_at(addr, key, xxh3_64_intdigest(key))
        return len(expired)

    def _resolve(self, addr: int) -> tuple[int, int] | None:
        """(key hash, previous address) of an in-memory record, for index growth."""
        hlog = self._log
        if addr < hlog.head_address:
            return None
        page = hlog.pages[addr >> hlog.page_bits]
        if page is None:
            return None
        off = addr & hlog.page_mask
        info, kl, _ = _unpack_header(page, off)
        key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
        return xxh3_64_intdigest(key), info & PREV_MASK

    def _on_evict(self, page_no: int, page: bytearray, end: int) -> None:
        """A page leaves memory with no device behind it: its live records are gone."""
        hlog = self._log
        start = max(hlog.begin_address, page_no << hlog.page_bits)
        index = self._index
        for addr, info, kl, _vl, _rec in hlog.records(start, end):
            if info & TOMBSTONE:
                continue
            off = addr & hlog.page_mask
            key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + kl])
            # Live only if it is the first record for its key on the chain.
            a = index.find(xxh3_64_intdigest(key))
            while a > addr:
                p = hlog.pages[a >> hlog.page_bits]
                if p is None:
                    break
                o = a & hlog.page_mask
                i2, k2, _ = _unpack_header(p, o)
                if k2 == kl and p.startswith(key, o + HEADER_SIZE):
                    break
                a = i2 & PREV_MASK
            if a == addr:
                self._live -= 1
                self._n_evicted += 1

    # -- background maintenance: automatic compaction and cache-mode truncation ------------

    def _check_maintenance(self) -> None:
        hlog = self._log
        if not hlog.persistent:
            return
        on_disk = hlog.head_address - hlog.begin_address
        limit = self.log_size_limit
        if (limit is not None and on_disk > max(limit, self._compaction_floor)) or (
            self.max_disk_size is not None and on_disk > self.max_disk_size
        ):
            self._wake_maintenance()

    def _wake_maintenance(self) -> None:
        """Wake the background thread that calls ``run_maintenance`` (started on first use)."""
        if self._maintenance is None:
            self._maintenance = threading.Thread(
                target=self._maintenance_loop, name="faster-maintenance", daemon=True
            )
            self._maintenance.start()
        self._maintenance_wake.set()

    def _maintenance_loop(self) -> None:
        while True:
            self._maintenance_wake.wait()
            self._maintenance_wake.clear()
            if self._closed:
                return
            try:
                self.run_maintenance()
            except StoreClosedError:
                return
            except BaseException as exc:  # reported by stats and logged; the store goes on
                self._maintenance_error = exc
                log.exception("background compaction failed")

    def run_maintenance(self) -> None:
        """Compact (or, in cache mode, drop) the oldest part of the log while over its limits."""
        with self._maintenance_lock:
            self._run_maintenance()

    def _run_maintenance(self) -> None:
        from faster_backend.engine.compaction import compact

        hlog = self._log
        while not self._closed:
            on_disk = hlog.head_address - hlog.begin_address
            if self.max_disk_size is not None and on_disk > self.max_disk_size:
                seg = self.device.segment_size
                target = hlog.head_address - self.max_disk_size
                self._drop_oldest(((target + seg - 1) // seg) * seg)
                continue
            if self.log_size_limit is not None and on_disk > max(
                self.log_size_limit, self._compaction_floor
            ):
                result = compact(self, None, "lookup")
                after = hlog.head_address - hlog.begin_address
                if result.reclaimed == 0 or result.copied_bytes > result.reclaimed * 0.9:
                    # The live data itself exceeds the limit: compacting again would only copy
                    # it around. Wait until the log has grown by another slice.
                    self._compaction_floor = after + int(
                        self.log_size_limit * self.compaction_fraction
                    )
                    log.warning(
                        "live data (%d bytes on disk) exceeds log_size_limit (%d):"
                        " compaction reclaims little; raise the limit",
                        after,
                        self.log_size_limit,
                    )
                    return
                continue
            return


def _expiry_of(buf: bytearray | bytes, off: int, info: int, kl: int, vl: int) -> int | None:
    if not info & HAS_EXPIRY:
        return None
    return int(_unpack_expiry(buf, off + record_size(kl, vl, True) - EXPIRY_SIZE)[0])


def _expired(buf: bytearray | bytes, off: int, info: int, kl: int, vl: int) -> bool:
    exp = _expiry_of(buf, off, info, kl, vl)
    return exp is not None and exp <= _now() * 1000


def _parse_int64(raw: bytes) -> int:
    value = parse_int64(raw)
    if value is None:
        raise ValueError("value is not an integer or out of range")
    return value


def _int64(value: int) -> int:
    if not -(1 << 63) <= value < 1 << 63:
        raise OverflowError("increment or decrement would overflow")
    return value


def _is_found(found: Found | None) -> bool:
    return found is not None


def _found_value(found: Found | None) -> bytes | None:
    if found is None:
        return None
    _, buf, off, _info, kl, vl = found
    return bytes(buf[off + HEADER_SIZE + kl : off + HEADER_SIZE + kl + vl])


def default_page_size(memory_size: int) -> int:
    """4 MiB pages, smaller for small budgets so that at least 8 pages fit (min 4 KiB)."""
    size = 4 << 20
    while size > 4096 and size * 8 > memory_size:
        size >>= 1
    return size

