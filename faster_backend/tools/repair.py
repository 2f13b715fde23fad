"""``repair``: cut a data directory back to its last consistent point and say what was lost.

The point kept is always one the store itself recorded (a commit entry or a checkpoint), never
a made-up one: only those carry the live-key count, index size and session serials that belong
to exactly that log prefix, so CPR's guarantee (each session's state is exactly the prefix up to
its recovered serial) survives the repair.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from xxhash import xxh3_64_intdigest

from faster_backend.engine.checkpoint import CommitLog, CommitPoint
from faster_backend.engine.data_dir import DataDir, DataDirLockedError
from faster_backend.engine.record import HEADER_SIZE, TOMBSTONE
from faster_backend.tools.check import CheckReport, Progress, check_store, first_bad_page
from faster_backend.tools.layout import (
    CheckpointState,
    Durable,
    Geometry,
    SegmentReader,
    StorePaths,
    ToolError,
    choose_durable,
    page_records,
    read_begin,
    refuse_f2,
    snapshot_data,
    write_begin,
)

MAX_KEYS_LISTED = 1000


@dataclass
class Loss:
    """What a repair removed from the durable state."""

    from_address: int = 0
    to_address: int = 0
    records: int = 0
    keys: list[bytes] = field(default_factory=list)  # distinct keys touched, up to a limit
    key_count: int = 0
    unreadable_pages: list[int] = field(default_factory=list)
    sessions_before: dict[str, int] = field(default_factory=dict)
    sessions_after: dict[str, int] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return self.to_address - self.from_address


@dataclass
class RepairReport:
    before: CheckReport
    after: CheckReport | None = None
    removed_checkpoints: list[tuple[Path, str]] = field(default_factory=list)
    removed_stale: list[Path] = field(default_factory=list)
    commit_bytes_cut: int = 0
    commit_entries_dropped: int = 0
    log_bytes_cut: int = 0
    loss: Loss | None = None
    everything_lost: bool = False
    salvaged_point: CommitPoint | None = None  # the point --salvage wrote
    rewrote_begin: int | None = None  # log/hlog.begin was corrupt: rewritten with this segment

    @property
    def changed(self) -> bool:
        return bool(
            self.removed_checkpoints or self.removed_stale or self.commit_bytes_cut
            or self.log_bytes_cut or self.everything_lost or self.salvaged_point
            or self.rewrote_begin is not None
        )


def repair_store(
    root: str | Path,
    *,
    page_size: int | None = None,
    segment_size: int | None = None,
    force: bool = False,
    salvage: bool = False,
    progress: Progress | None = None,
) -> RepairReport:
    """Repair under the data directory's lock; ``force`` allows losing every record.

    ``salvage`` keeps the log up to the first corrupt page even when the store recorded no
    point there: a new commit point is written for that prefix, with the live keys counted
    from the log and each session's serial from the newest recorded point below it (so a
    session may hold operations after its reported serial: CPR's exact prefix is lost).
    """
    paths = StorePaths(Path(root))
    if not paths.root.is_dir():
        raise ToolError(f"{paths.root}: no such directory")
    refuse_f2(paths.root, "repair")
    try:
        lock = DataDir(paths.root)
    except DataDirLockedError as exc:
        raise ToolError(f"cannot repair: {exc}") from None
    try:
        me = os.getpid()
        before = check_store(
            paths.root, page_size=page_size, segment_size=segment_size, progress=progress,
            ignore_lock_of=me,
        )
        report = RepairReport(before)
        if before.exit_code == 0 and not before.notes:
            report.after = before
            return report
        _repair(paths, report, force, salvage)
        geo = before.geometry
        report.after = check_store(
            paths.root,
            page_size=geo.page_size if geo else page_size,
            segment_size=geo.segment_size if geo else segment_size,
            ignore_lock_of=me,
        )
        return report
    finally:
        lock.release()


def _repair(paths: StorePaths, report: RepairReport, force: bool, salvage: bool) -> None:
    before = report.before
    valid = [c for c in before.checkpoints if c.valid]
    drop: list[tuple[CheckpointState, str]] = [
        (c, "; ".join(str(p) for p in c.problems) or "corrupt")
        for c in before.checkpoints if not c.valid
    ]
    entries = before.commits.entries
    keep = len(entries)
    new: Durable | None = before.durable
    bad = first_bad_page(before)
    geo = before.geometry
    if bad is not None:
        assert geo is not None
        while True:
            new = choose_durable(valid, entries[:keep])
            if new is None or _consistent_below(paths, geo, new, bad.address):
                break
            if new.use_commit:
                keep -= 1
            else:
                assert new.checkpoint is not None
                valid.remove(new.checkpoint)
                drop.append((new.checkpoint, "its log lies beyond the last consistent point"))
        old = before.durable
        assert old is not None
        cut = (bad.address >> geo.page_bits) << geo.page_bits
        if salvage and cut > (new.point.tail if new is not None else old.point.begin):
            salvaged = _salvage_point(paths, geo, old, new, cut)
            report.salvaged_point = salvaged
            valid = [c for c in valid if c.info is not None and c.info.point.tail <= cut]
            dropped = {id(c) for c, _ in drop}
            drop += [(c, "its log lies beyond the salvaged point")
                     for c in before.checkpoints
                     if c.valid and c not in valid and id(c) not in dropped]
            new = Durable(salvaged, None, True, cut, {})
        if new is None:
            if not force:
                raise ToolError(
                    f"{paths.root}: no consistent point is left below the corrupt log page"
                    f" {bad.page} ({bad.path} at offset {bad.offset}): repairing would drop"
                    " every record; pass --force to do it anyway"
                )
            report.everything_lost = True
        report.loss = _loss(paths, geo, old, new, before)

    if new is None and before.durable is None and drop and not report.everything_lost:
        if not force:
            raise ToolError(
                f"{paths.root}: every checkpoint is corrupt and no commit exists; removing them"
                " leaves an empty store: pass --force to do it anyway"
            )
        report.everything_lost = True

    # Apply, most recoverable change last: a crash in the middle leaves a state recovery reads.
    for stale in paths.stale_checkpoint_dirs():
        shutil.rmtree(stale)
        report.removed_stale.append(stale)
    for ck, why in drop:
        shutil.rmtree(ck.path, ignore_errors=True)
        report.removed_checkpoints.append((ck.path, why))
    commits = before.commits
    if report.salvaged_point is not None:
        report.commit_bytes_cut = commits.size
        report.commit_entries_dropped = len(entries)
        log_ = CommitLog(paths.commits)
        try:
            log_.rewrite(report.salvaged_point)
        finally:
            log_.close()
    elif keep < len(entries) or commits.problem is not None:
        cut_at = commits.ends[keep - 1] if keep else 0
        report.commit_bytes_cut = commits.size - cut_at
        report.commit_entries_dropped = len(entries) - keep
        if keep:
            os.truncate(paths.commits, cut_at)
            _fsync(paths.commits)
        else:
            paths.commits.unlink(missing_ok=True)
    if bad is not None:
        assert geo is not None
        end = new.device_end if new is not None else 0
        report.log_bytes_cut = _cut_log(paths, geo, end)
    if read_begin(paths)[1] is not None:
        # Only a truncation mark: the lowest segment still there deletes nothing.
        first = min(paths.segments(), default=0)
        write_begin(paths, first)
        report.rewrote_begin = first
    _fsync(paths.root)
    if paths.checkpoints.is_dir():
        _fsync(paths.checkpoints)


def _salvage_point(
    paths: StorePaths, geo: Geometry, old: Durable, recorded: Durable | None, cut: int
) -> CommitPoint:
    """A commit point for the log prefix [begin, cut): ``cut`` is the start of the first bad
    page, so it lies on a record boundary (records never cross pages)."""
    bits, size = geo.page_bits, geo.page_size
    newest: dict[bytes, bool] = {}  # key -> its newest record is a deletion
    with SegmentReader(paths, geo.segment_size) as reader:
        for page in range(old.point.begin >> bits, cut >> bits):
            start = page << bits
            data, _ = reader.read(start, size)
            for _addr, info, kl, _vl, rec in page_records(
                data, start, max(start, old.point.begin), start + size
            ):
                newest[bytes(rec[HEADER_SIZE : HEADER_SIZE + kl])] = bool(info & TOMBSTONE)
    sums = {str(p): v for p, v in old.sums.items() if old.point.begin >> bits <= p < cut >> bits}
    sessions = dict(recorded.point.sessions) if recorded is not None else {}
    return CommitPoint(
        tail=cut,
        begin=old.point.begin,
        live=sum(1 for deleted in newest.values() if not deleted),
        version=old.point.version,
        sessions=sessions,
        page_sums=sums,
        tail_sum=xxh3_64_intdigest(b""),
        index_size=old.point.index_size,
    )


def _consistent_below(paths: StorePaths, geo: Geometry, d: Durable, bad_address: int) -> bool:
    """Whether ``d`` avoids the first bad page (its partial last page may end inside it)."""
    if d.device_end <= bad_address:
        return True
    if d.device_end >= bad_address + geo.page_size:
        return False
    with SegmentReader(paths, geo.segment_size) as reader:
        data, missing = reader.read(bad_address, d.device_end - bad_address)
    return not missing and xxh3_64_intdigest(data) == d.point.tail_sum


def _loss(
    paths: StorePaths, geo: Geometry, old: Durable, new: Durable | None, before: CheckReport
) -> Loss:
    lo = new.point.tail if new is not None else old.point.begin
    loss = Loss(lo, old.point.tail, sessions_before=dict(old.point.sessions),
                sessions_after=dict(new.point.sessions) if new is not None else {})
    bad = {b.page for b in before.bad_pages}
    bits, size = geo.page_bits, geo.page_size
    snap = None
    if not old.use_commit and old.checkpoint is not None and old.device_end < old.point.tail:
        snap = snapshot_data(paths, old.checkpoint.seq)
    keys: set[bytes] = set()
    with SegmentReader(paths, geo.segment_size) as reader:
        for page in range(lo >> bits, (old.point.tail >> bits) + 1):
            start = page << bits
            if page in bad:
                loss.unreadable_pages.append(page)
                continue
            buf = bytearray(size)
            if start < old.device_end:
                n = min(size, old.device_end - start)
                buf[:n] = reader.read(start, n)[0]
            if snap is not None:
                s_start, s_data = snap
                a, b = max(start, s_start), min(start + size, s_start + len(s_data))
                if a < b:
                    buf[a - start : b - start] = s_data[a - s_start : b - s_start]
            try:
                for _addr, _info, kl, _vl, rec in page_records(
                    buf, start, max(start, lo), min(start + size, old.point.tail)
                ):
                    loss.records += 1
                    keys.add(bytes(rec[HEADER_SIZE : HEADER_SIZE + kl]))
            except ValueError:
                loss.unreadable_pages.append(page)
    loss.key_count = len(keys)
    loss.keys = sorted(keys)[:MAX_KEYS_LISTED]
    return loss


def _cut_log(paths: StorePaths, geo: Geometry, end: int) -> int:
    """Remove the device's bytes at and above ``end``; returns how many went."""
    cut = 0
    for seg, path in paths.segments().items():
        seg_start = seg * geo.segment_size
        size = path.stat().st_size
        if seg_start >= end:
            cut += size
            path.unlink()
        elif seg_start + size > end:
            cut += seg_start + size - end
            os.truncate(path, end - seg_start)
            _fsync(path)
    if paths.log_dir.is_dir():
        _fsync(paths.log_dir)
    return cut


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
