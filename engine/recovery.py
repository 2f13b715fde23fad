"""Recovery: rebuild a store from its newest valid checkpoint and the commits after it.

1. Pick the newest checkpoint whose files pass their checks (corrupt ones are skipped with a
   warning naming the file and offset) and the newest valid commit record.
2. The durable point is the later of the two. Everything below its tail is on the device, except
   that a snapshot checkpoint with no later commit keeps [snapshot_start, tail) in its snapshot.
3. Verify every log page on the device below that point against the recorded xxh3 checksums;
   a mismatch raises CorruptFileError naming the segment file and offset.
4. Load the checkpoint's index (or start from an empty one), grow it to the size it had at the
   commit, and replay the records written after the checkpoint into it: each record already
   carries its hash-chain link, so replay only points the index entries at the newest ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xxhash import xxh3_64_intdigest

from faster_backend.engine.checkpoint import (
    CheckpointDir,
    CheckpointInfo,
    CommitLog,
    CommitPoint,
    CorruptFileError,
)
from faster_backend.engine.hash_bucket import HASH_TAG_SHIFT
from faster_backend.engine.hash_table import BucketArray, HashTable
from faster_backend.engine.record import HEADER_SIZE

if TYPE_CHECKING:
    from faster_backend.engine.faster_kv import FasterKv

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    checkpoint: int | None  # sequence number used, None when recovered from commits only
    skipped_checkpoints: list[str]
    tail: int
    replayed_records: int
    sessions: dict[str, int]
    torn_commit: str | None


def merged_page_sums(info: CheckpointInfo | None, commits: list[CommitPoint]) -> dict[int, int]:
    sums: dict[int, int] = {}
    if info is not None:
        sums.update({int(k): v for k, v in info.point.page_sums.items()})
    for c in commits:
        sums.update({int(k): v for k, v in c.page_sums.items()})
    return sums


def verify_pages(kv: FasterKv, begin: int, end: int, sums: dict[int, int], tail_sum: int) -> None:
    """Check the device's log bytes in [begin, end) against page checksums."""
    hlog = kv._log
    bits = hlog.page_bits
    device = kv.device
    for page in range(begin >> bits, (end >> bits) + 1):
        start = page << bits
        if start >= end:
            break
        length = min(hlog.page_size, end - start)
        data = device.read(start, length)
        if length == hlog.page_size:
            expected = sums.get(page)
            if expected is None:
                raise CorruptFileError(
                    device.segment_path(start // device.segment_size),
                    start % device.segment_size,
                    f"no checksum recorded for log page {page}",
                )
        else:
            expected = tail_sum
        if xxh3_64_intdigest(data) != expected:
            raise CorruptFileError(
                device.segment_path(start // device.segment_size),
                start % device.segment_size,
                f"log page {page} does not match its checksum (corrupt or torn)",
            )


def recover(kv: FasterKv, checkpoints: CheckpointDir, commits_path: Path) -> RecoveryReport | None:
    """Rebuild ``kv`` in place; None when there is nothing to recover (a fresh store)."""
    commits, torn = CommitLog.read(commits_path)
    if torn:
        log.warning("ignoring the end of the commit log: %s", torn)
    skipped: list[str] = []
    info = None
    index = snap = None
    for seq in reversed(checkpoints.sequence_numbers()):
        try:
            info, index, snap = checkpoints.load(seq)
            break
        except (CorruptFileError, OSError) as exc:
            log.warning("skipping checkpoint %s: %s", checkpoints.path(seq), exc)
            skipped.append(f"{checkpoints.path(seq)}: {exc}")
    last = commits[-1] if commits else None
    if info is None and last is None:
        if skipped:
            raise CorruptFileError(
                checkpoints.root, 0, "every checkpoint is corrupt and no commit record exists"
            )
        return None
    use_commit = last is not None and (
        info is None
        or last.tail > info.point.tail
        or (last.tail == info.point.tail and info.kind == "fold-over")
    )
    point = last if use_commit else info.point  # type: ignore[union-attr]
    assert point is not None
    snapshot_start = point.tail
    if not use_commit and info is not None and info.kind != "fold-over":
        snapshot_start = info.snapshot_start
    device_end = snapshot_start
    hlog = kv._log
    sums = merged_page_sums(info, commits)
    tail_sum = point.tail_sum
    verify_pages(kv, point.begin, device_end, sums, tail_sum)

    # The log: device up to device_end, memory pages for the tail (and the snapshot region).
    bits = hlog.page_bits
    pages: dict[int, bytearray] = {}
    first = (snapshot_start >> bits) if snapshot_start < point.tail else (point.tail >> bits)
    for page in range(first, (point.tail >> bits) + 1):
        start = page << bits
        buf = bytearray(hlog.page_size)
        on_device = max(0, min(device_end, start + hlog.page_size) - max(start, point.begin))
        if on_device > 0:
            lo = max(start, point.begin)
            buf[lo - start : lo - start + on_device] = kv.device.read(lo, on_device)
        pages[page] = buf
    if snap is not None and not use_commit:
        s_start, s_data = snap
        pos = 0
        while pos < len(s_data):
            addr = s_start + pos
            page, off = addr >> bits, addr & hlog.page_mask
            n = min(hlog.page_size - off, len(s_data) - pos)
            pages[page][off : off + n] = s_data[pos : pos + n]
            pos += n
    hlog.restore(point.begin, point.tail, pages, device_end)
    hlog.page_sums = {p: s for p, s in sums.items() if p >= point.begin >> bits}

    # The index: the checkpoint's, unless the durable point's log begins after its tail (a
    # clear() since), when it describes only records that are gone.
    if index is not None and info is not None and info.point.tail >= point.begin:
        buckets, capacity, next_overflow, free, raw = index
        table = BucketArray.from_bytes(buckets, capacity, next_overflow, free, raw)
        kv._index = HashTable.from_table(table, kv._resolve)
        replay_from = info.point.tail  # type: ignore[union-attr]
    else:
        kv._index = HashTable(kv._index.size, kv._resolve)
        replay_from = point.begin
    replayed = 0
    if use_commit and point.tail > replay_from:
        while kv._index.size < point.index_size:
            kv._index.grow()
        replayed = replay(kv, replay_from, point.tail)
    kv._live = point.live
    kv._settled = point.settled
    kv._version = point.version + 1
    kv._recovered_sessions = dict(point.sessions)
    kv._last_commit = point
    return RecoveryReport(
        checkpoint=info.seq if info is not None else None,
        skipped_checkpoints=skipped,
        tail=point.tail,
        replayed_records=replayed,
        sessions=dict(point.sessions),
        torn_commit=torn,
    )


def replay(kv: FasterKv, start: int, end: int) -> int:
    """Point the index at the records in [start, end), oldest first."""
    table = kv._index.cur  # recovery owns the index and it is not growing
    mask = table.mask
    set_entry = table.set_entry
    n = 0
    for addr, _info, kl, _vl, rec in kv._log.records(start, end):
        h = xxh3_64_intdigest(rec[HEADER_SIZE : HEADER_SIZE + kl])
        set_entry(h & mask, (h >> HASH_TAG_SHIFT) or 1, addr)
        n += 1
    return n
