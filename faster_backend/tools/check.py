"""``check``: verify every file of a data directory without opening the store.

Safe next to a live store: files are only read, the lock is not taken, log pages below the
durable point never change, and a checkpoint or segment that a live store removes meanwhile
restarts the check (a few times) from the newest state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xxhash import xxh3_64_intdigest

from faster_backend.engine.record import TOMBSTONE
from faster_backend.tools.layout import (
    CheckpointState,
    CommitScan,
    Durable,
    Geometry,
    SegmentReader,
    StorePaths,
    ToolError,
    VanishedError,
    begin_path,
    choose_durable,
    infer_geometry,
    load_checkpoint,
    lock_holder,
    page_records,
    read_begin,
    refuse_f2,
    scan_commits,
    snapshot_data,
)

log = logging.getLogger(__name__)

CLEAN, PROBLEMS, UNUSABLE = 0, 1, 2
Progress = Callable[[int, int], None]  # (pages done, pages total)


@dataclass
class Problem:
    path: Path
    offset: int
    message: str
    fatal: bool = False  # the store cannot be opened (recovery would refuse it)

    def __str__(self) -> str:
        return f"{self.path} at offset {self.offset}: {self.message}"


@dataclass
class BadPage:
    page: int
    address: int
    path: Path
    offset: int
    reason: str


@dataclass
class CheckReport:
    root: Path
    locked_by: int | None = None
    checkpoints: list[CheckpointState] = field(default_factory=list)
    commits: CommitScan = field(default_factory=CommitScan)
    durable: Durable | None = None
    geometry: Geometry | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bad_pages: list[BadPage] = field(default_factory=list)
    pages_checked: int = 0
    log_bytes_on_disk: int = 0
    segment_files: int = 0
    records: int = 0
    tombstones: int = 0

    @property
    def exit_code(self) -> int:
        if any(p.fatal for p in self.problems):
            return UNUSABLE
        return PROBLEMS if self.problems else CLEAN


def check_store(
    root: str | Path,
    *,
    page_size: int | None = None,
    segment_size: int | None = None,
    progress: Progress | None = None,
    ignore_lock_of: int | None = None,
    attempts: int = 5,
) -> CheckReport:
    """Check a data directory; ``ignore_lock_of`` is a pid whose lock is expected (our own)."""
    paths = StorePaths(Path(root))
    if not paths.root.is_dir():
        raise ToolError(f"{paths.root}: no such directory")
    refuse_f2(paths.root, "check")
    for attempt in range(attempts):
        try:
            return _check_once(paths, page_size, segment_size, progress, ignore_lock_of)
        except VanishedError as exc:
            if attempt == attempts - 1:
                raise ToolError(f"{exc}; the store keeps changing under the check") from exc
            log.info("%s; checking again", exc)
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _check_once(
    paths: StorePaths,
    page_size: int | None,
    segment_size: int | None,
    progress: Progress | None,
    ignore_lock_of: int | None,
) -> CheckReport:
    report = CheckReport(paths.root)
    holder = lock_holder(paths)
    report.locked_by = holder if holder != ignore_lock_of else None
    live = report.locked_by is not None
    for stale in paths.stale_checkpoint_dirs():
        if live:
            report.notes.append(f"{stale}: a checkpoint being written")
        else:
            report.notes.append(
                f"{stale}: an interrupted checkpoint (harmless; the next open removes it)"
            )

    # The commit log is read before the checkpoints: a fold-over checkpoint rewrites it only
    # after its directory is in place, so this order never sees a commit log newer than the
    # checkpoints it depends on.
    report.commits = commits = scan_commits(paths.commits)
    if commits.problem is not None and live:
        time.sleep(0.05)  # an append may have been in flight: look again
        report.commits = commits = scan_commits(paths.commits)
    if commits.problem is not None:
        assert commits.problem_offset is not None
        what = commits.problem.split(": ", 1)[1].rsplit(" at offset ", 1)[0]
        report.problems.append(
            Problem(
                paths.commits,
                commits.problem_offset,
                f"{what} ({commits.size - commits.problem_offset} bytes); recovery ignores it"
                " (repair cuts it off)",
            )
        )
    for seq in reversed(paths.checkpoint_seqs()):
        state = load_checkpoint(paths, seq)
        report.checkpoints.append(state)
        for exc in state.problems:
            what = exc.args[0].split(": ", 1)[-1].rsplit(" at offset ", 1)[0]
            report.problems.append(Problem(exc.path, exc.offset, what))

    _, begin_problem = read_begin(paths)
    if begin_problem is not None:
        report.problems.append(
            Problem(begin_path(paths), 0, f"{begin_problem}; the store cannot open until"
                    " repair rewrites it", fatal=True)
        )
    durable = report.durable = choose_durable(report.checkpoints, commits.entries)
    segments = paths.segments()
    report.segment_files = len(segments)
    for p in segments.values():
        with contextlib.suppress(FileNotFoundError):  # removed by a live store's compaction
            report.log_bytes_on_disk += p.stat().st_size
    if durable is None:
        if report.checkpoints:
            report.problems.append(
                Problem(paths.checkpoints, 0, "every checkpoint is corrupt and no commit record"
                        " exists: nothing is recoverable", fatal=True)
            )
        else:
            report.notes.append("no checkpoint and no commit: the store holds no durable data")
            if segments and not live:
                report.notes.append(
                    f"{len(segments)} log segment file(s) hold nothing durable; the store"
                    " opens empty"
                )
        return report
    report.geometry = geo = infer_geometry(paths, durable, page_size, segment_size)
    _check_log(paths, report, durable, geo, live, progress)
    return report


def _check_log(
    paths: StorePaths,
    report: CheckReport,
    durable: Durable,
    geo: Geometry,
    live: bool,
    progress: Progress | None,
) -> None:
    """Verify every page below the durable point and count the records of the log."""
    bits, size = geo.page_bits, geo.page_size
    point = durable.point
    begin, tail, device_end = point.begin, point.tail, durable.device_end
    snap: tuple[int, bytes] | None = None
    if not durable.use_commit and durable.checkpoint is not None and device_end < tail:
        snap = snapshot_data(paths, durable.checkpoint.seq)
    first, last = begin >> bits, tail >> bits
    total = last - first + 1
    with SegmentReader(paths, geo.segment_size) as reader:
        for i, page in enumerate(range(first, last + 1)):
            start = page << bits
            buf = bytearray(size)
            ok = True
            if start < device_end:
                length = min(size, device_end - start)
                data, missing = reader.read(start, length)
                buf[:length] = data
                ok = _verify_page(report, reader, durable, page, start, length, data, missing,
                                  size, live)
            if snap is not None:
                s_start, s_data = snap
                lo, hi = max(start, s_start), min(start + size, s_start + len(s_data))
                if lo < hi:
                    buf[lo - start : hi - start] = s_data[lo - s_start : hi - s_start]
            if ok:
                try:
                    for _addr, info, _kl, _vl, _rec in page_records(
                        buf, start, max(start, begin), min(start + size, tail)
                    ):
                        report.records += 1
                        if info & TOMBSTONE:
                            report.tombstones += 1
                except ValueError as exc:
                    path, off = reader.locate(start)
                    report.problems.append(Problem(path, off, f"log page {page}: {exc}"))
            report.pages_checked += 1
            if progress is not None:
                progress(i + 1, total)


def _verify_page(
    report: CheckReport,
    reader: SegmentReader,
    durable: Durable,
    page: int,
    start: int,
    length: int,
    data: bytes,
    missing: list[int],
    size: int,
    live: bool,
) -> bool:
    path, off = reader.locate(start)
    reason = None
    if missing:
        if live:
            raise VanishedError(f"{reader.path(missing[0])} is missing (compaction removed it?)")
        reason = f"segment file {reader.path(missing[0]).name} is missing"
    elif length == size:
        expected = durable.sums.get(page)
        if expected is None:
            reason = "no checksum recorded for this page"
        elif xxh3_64_intdigest(data) != expected:
            reason = "page does not match its checksum (corrupt or torn)"
    elif xxh3_64_intdigest(data) != durable.point.tail_sum:
        reason = "last durable page does not match its checksum (corrupt or torn)"
    if reason is None:
        return True
    report.bad_pages.append(BadPage(page, start, path, off, reason))
    report.problems.append(
        Problem(path, off, f"log page {page} (address {start}): {reason}", fatal=True)
    )
    return False


def first_bad_page(report: CheckReport) -> BadPage | None:
    return min(report.bad_pages, key=lambda b: b.address) if report.bad_pages else None
