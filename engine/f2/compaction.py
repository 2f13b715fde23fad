"""F2's two compactions, run by the store's background thread (or by hand).

Hot-cold compaction moves the oldest part of the hot log into the cold log: the newest hot
record of each key in the range is appended to the cold log (a tombstone only if the cold log
holds a live record for it to shadow; otherwise it is dropped), then the hot log is truncated
there. Cold-cold compaction copies the cold records in the oldest part of the cold log that are
still the key's truth (newest in the cold log, not shadowed by the hot log, not expired) to the
cold tail and truncates; tombstones are dropped, since every older record of their key lies in
the range being dropped. Neither holds the hot store's latch across I/O: the range is read from
the device without it, and it is taken per record for the check.
"""

from __future__ import annotations

import logging
from array import array
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from xxhash import xxh3_64_intdigest, xxh64_intdigest

from faster_backend.engine.f2 import counting
from faster_backend.engine.f2.range_keys import RangeKeys
from faster_backend.engine.faster_kv import FasterKv, Found
from faster_backend.engine.record import HEADER_SIZE, TOMBSTONE

if TYPE_CHECKING:
    from faster_backend.engine.f2.pacing import Pacer
    from faster_backend.engine.f2.store import F2Kv

log = logging.getLogger(__name__)
_BATCH_KEYS = 1 << 15  # records of its range a cold-cold compaction holds at a time


def hot_cold(kv: F2Kv, until: int | None = None) -> int:
    """Move the hot log below ``until`` (default: ``compaction_fraction`` of it) to the cold
    log; returns the number of records appended to the cold log."""
    hlog = kv._log
    cold = kv._cold
    with kv._lock:
        begin = hlog.begin_address
        if until is None:
            until = begin + int((hlog.tail_address - begin) * kv.compaction_fraction)
        until = min(until, hlog.head_address) & ~hlog.page_mask
    if until <= begin:
        return 0
    # Two passes over the range (pages are re-read from the device): the first gives each key
    # an id (RangeKeys: its records in the range and its uncounted run), the second settles
    # and moves each key's last record in the range (its newest) without copying the range
    # into Python objects.
    pace = kv._pacer()  # it lets users' reads go first (engine/f2/pacing.py)
    keys = RangeKeys(kv._settled, pace)
    add = keys.add
    for addr, info, kl, _vl, rec in hlog.records(begin, until):
        pace()
        view = rec[HEADER_SIZE : HEADER_SIZE + kl]
        add(xxh3_64_intdigest(view), xxh64_intdigest(view), addr, info)
    keys.release()
    ids, counts, hashes = keys.ids, keys.counts, keys.hashes
    n_records = len(ids)
    moved = 0
    with cold.write_lock:
        # The range's keys' cold-index entries, read in one pass in file order: the settling's
        # lookups and the moves' index updates then cost no I/O each (begin_batch).
        cold.index.begin_batch(hashes, pace)
        try:
            where = cold.index.positions(hashes, pace)  # by id: its key's place in the batch
            for n, (_addr, info, kl, _vl, rec) in enumerate(hlog.records(begin, until)):
                pace()
                i = ids[n]
                key = None
                if keys.needs_base(i):
                    # The range's blind upserts are settled (engine/f2/counting.py) so that
                    # every record moved to the cold log is counted. This key's run starts the
                    # range, so its base is its newest cold record: looked up at its first
                    # record in the range, before its newest moves (other keys' moves leave
                    # its cold records as they are).
                    key = bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])
                    keys.set_base(i, counting.live_of(cold.lookup_at(key, hashes[i], where[i])))
                left = counts[i] - 1
                counts[i] = left
                if left or kv._f2_stopping:
                    # an older version inside the range; or closing: the hot range stays
                    # (nothing is lost), but the settling goes on, since the cold log may now
                    # hold moved copies where later settlings would look for bases
                    continue
                if key is None:
                    key = bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])
                h = hashes[i]
                # [until, head) is on the device and immutable (only this compaction
                # truncates the hot log): a record of the key there supersedes ``addr``
                # (``addr`` is the newest below), which is then dropped, unless the newer one
                # is uncounted: ``addr`` may be the base its count needs (counting.py).
                state = kv._hot_state(key, h, until)
                if state is not None and not state[2]:
                    continue
                if info & TOMBSTONE and not counting.live_of(cold.lookup_at(key, h, where[i])):
                    continue  # nothing cold to shadow: the tombstone is safe to drop
                cold.append(key, h, rec, where[i])
                moved += 1
            # Neither the range (immutable below the head) nor, but for this compaction's
            # moves, the cold tier (compactions hold the maintenance lock) changed meanwhile:
            # the settled count holds. Writers that met a record of the range took it as
            # unsettled until now, as they would have before the moves.
            delta = keys.delta()
            with kv._lock:
                kv._live += delta
                kv._settled = max(kv._settled, until)
            if kv._f2_stopping:
                kv._n_cold_records += moved  # the copies stay in the cold log
                return moved
        finally:
            cold.index.end_batch(pace)
            # Before truncating: from now on readers may reach these keys' cold records.
            kv._cold_cache.invalidate(hashes, pace)
        kv._n_cold_records += moved
        # Durable before the hot log lets go of the range, in this order: the hot store (it
        # holds every moved record and every hot record that made a move unnecessary), then
        # the cold tier with a manifest valid for a hot log beginning at ``begin`` or ``until``.
        kv.commit()
        kv._persist_cold(begin, until)
        with kv._lock:
            hlog.truncate_until(until)
            kv._read_cache.drop_below(until)
            kv._n_hot_records -= n_records
            kv._n_hot_cold += 1
            kv._n_hot_cold_moved += moved
    kv._clean_hot_index(pace)
    kv._grow_cold_index_if_crowded()
    log.debug("hot-cold compaction of [%d, %d): %d records moved", begin, until, moved)
    return moved


def _keep(kv: F2Kv, found: Found | None, addr: int) -> bool:
    return (found is not None and found[0] == -addr) or kv._carry != 0


def cold_cold(kv: F2Kv, until: int | None = None) -> int:
    """Reclaim the cold log below ``until`` (default: ``cold_compaction_fraction`` of its
    on-disk part); returns the number of live records copied to the cold tail."""
    cold = kv._cold
    with cold.write_lock:
        begin = cold.begin_address
        head = cold.head_address
        if until is None:
            until = begin + int((head - begin) * kv.cold_compaction_fraction)
        until = min(until, head) & ~cold.log.page_mask
        if until <= begin:
            return 0
        copied = n_records = 0
        # The range in windows of records: the range may hold most of the store's keys, and a
        # window's keys and their cold-index batch are all that is held in memory. A key's
        # record is copied only if the index still names it its newest, so an older version in
        # an earlier window is passed over, and a copy (at the tail) outdates the key's records
        # in later windows.
        records = cold.records(begin, until)
        pace = kv._pacer()
        while not kv._f2_stopping:
            newest: dict[bytes, tuple[int, int]] = {}
            for addr, info, kl, _vl, rec in islice(records, _BATCH_KEYS):
                pace()
                newest[bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])] = (addr, info)
                n_records += 1
            if not newest:
                break
            try:
                copied += _copy_live(kv, newest, pace)
            finally:
                kv._cold_cache.invalidate((xxh3_64_intdigest(key) for key in newest), pace)
        if kv._f2_stopping:
            # closing: the range stays; its copies are duplicates, nothing is lost
            kv._n_cold_records += copied
            return copied
        # The hot records that shadowed the dropped cold ones (and the tombstones of expired
        # ones) become durable before the manifest that no longer has the cold records.
        kv.commit()
        cold.truncate_until(until)
        kv._n_cold_records += copied - n_records
        kv._n_cold_cold += 1
        kv._n_cold_cold_copied += copied
        hot_begin = kv._log.begin_address
        kv._persist_cold(hot_begin, hot_begin)
    log.debug("cold-cold compaction of [%d, %d): %d records copied", begin, until, copied)
    return copied


def _copy_live(kv: F2Kv, newest: dict[bytes, tuple[int, int]], pace: Pacer) -> int:
    """Copy to the cold tail each record of ``newest`` (key -> address, info) that is still its
    key's truth; tombstones are dropped, since every older record of their key lies in the
    range being dropped. Returns the number copied."""
    cold = kv._cold
    live = [(key, addr) for key, (addr, info) in newest.items() if not info & TOMBSTONE]
    if not live:
        return 0
    copied = 0
    hashes = array("Q", [xxh3_64_intdigest(key) for key, _ in live])
    cold.index.begin_batch(hashes, pace)
    try:
        where = cold.index.positions(hashes, pace)
        for j, (key, addr) in enumerate(live):
            pace()
            if kv._f2_stopping:
                break
            h = hashes[j]
            found = cold.lookup_at(key, h, where[j])
            if found is None or found[0] != addr:
                continue  # superseded inside the cold log
            # The store's own lookup decides: the hot log may shadow it, or it expired (then
            # the lookup writes the tombstone that keeps len() exact). A record shadowed by an
            # uncounted hot one stays: it may be the base that one's count needs
            # (counting.py); the lookup leaves ``_carry`` set for such a record. (FasterKv's
            # _run: a compaction must never wait for room in the hot log)
            if FasterKv._run(kv, key, h, partial(_keep, kv, addr=addr)):
                cold.append(key, h, found[1], where[j])
                copied += 1
    finally:
        cold.index.end_batch(pace)
    return copied
