"""``backup`` and ``restore``: consistent copies of a data directory from a checkpoint.

A backup may run while another process has the store open. It copies the newest valid
checkpoint and the log bytes below that checkpoint's durable point: those bytes never change
(the log only grows at the tail), but compaction may delete old segments at any time, which
shows as a missing file; the backup then starts again from the newest checkpoint. The copy gets
a commit log holding just the checkpoint's point and is checked before success is reported.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from faster_backend.engine.checkpoint import (
    CommitLog,
    CorruptFileError,
    decode_info,
    write_geometry,
)
from faster_backend.engine.data_dir import DataDir, DataDirLockedError
from faster_backend.engine.faster_kv import GEOMETRY_FILE
from faster_backend.engine.recovery import merged_page_sums
from faster_backend.tools.check import CheckReport, check_store
from faster_backend.tools.layout import (
    LOG_NAME,
    CheckpointState,
    Durable,
    StorePaths,
    ToolError,
    VanishedError,
    infer_geometry,
    load_checkpoint,
    lock_holder,
    refuse_f2,
)

log = logging.getLogger(__name__)

_CHUNK = 4 << 20


@dataclass
class BackupReport:
    dest: Path
    seq: int
    kind: str
    tail: int
    created: float
    bytes_copied: int
    attempts: int
    check: CheckReport


@dataclass
class RestoreReport:
    dest: Path
    bytes_copied: int
    check: CheckReport


def backup_store(
    src: str | Path,
    dest: str | Path,
    *,
    page_size: int | None = None,
    segment_size: int | None = None,
    attempts: int = 10,
) -> BackupReport:
    """Copy ``src``'s newest valid checkpoint and its log into the new directory ``dest``."""
    sp, dp = StorePaths(Path(src)), StorePaths(Path(dest))
    if not sp.root.is_dir():
        raise ToolError(f"{sp.root}: no such directory")
    refuse_f2(sp.root, "backup")
    if dp.root.exists() and any(dp.root.iterdir()):
        raise ToolError(f"{dp.root} exists and is not empty; back up into a new directory")
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        _clear(dp.root)
        try:
            return _backup_once(sp, dp, page_size, segment_size, attempt)
        except VanishedError as exc:
            last_error = exc
            log.info("backup attempt %d: %s; starting again", attempt, exc)
            time.sleep(0.02 * attempt)
        except BaseException:
            _clear(dp.root)
            raise
    _clear(dp.root)
    raise ToolError(
        f"backup of {sp.root} gave up after {attempts} attempts: {last_error} (the store"
        " compacts away the log of its newest checkpoint faster than it can be copied;"
        " take a checkpoint and try again)"
    )


def _backup_once(
    sp: StorePaths, dp: StorePaths, page_size: int | None, segment_size: int | None,
    attempt: int,
) -> BackupReport:
    dp.checkpoints.mkdir(parents=True, exist_ok=True)
    dp.log_dir.mkdir(exist_ok=True)
    chosen: CheckpointState | None = None
    copied = 0
    for seq in reversed(sp.checkpoint_seqs()):
        src_dir = sp.checkpoint_dir(seq)
        try:
            copied += _copy_chain(sp, dp, seq)
        except FileNotFoundError:
            _clear(dp.checkpoints)  # retention removed it meanwhile: a newer one exists
            continue
        state = load_checkpoint(dp, seq)
        if state.valid:
            chosen = state
            break
        log.warning("backup skips corrupt checkpoint %s: %s", src_dir, state.problems[0])
        _clear(dp.checkpoints)
    if chosen is None or chosen.info is None:
        raise ToolError(
            f"{sp.root} has no valid checkpoint to back up (one is taken by kv.checkpoint()"
            " and at every clean close)"
        )
    info = chosen.info
    point, end = info.point, chosen.device_end
    durable = Durable(point, chosen, False, end, merged_page_sums(info, []))
    geo = infer_geometry(sp, durable, page_size, segment_size)
    seg_size = geo.segment_size
    for seg in range(point.begin // seg_size, (max(end, 1) - 1) // seg_size + 1):
        length = min(seg_size, end - seg * seg_size)
        name = f"{LOG_NAME}.{seg}"
        try:
            copied += _copy_file(sp.log_dir / name, dp.log_dir / name, length)
        except FileNotFoundError:
            raise VanishedError(f"log segment {name} was removed (compaction)") from None
    # The copy is opened without sizes like any store: it needs the sizes it was written with.
    write_geometry(dp.root / GEOMETRY_FILE, geo.page_size, seg_size)
    commits = CommitLog(dp.commits)
    try:
        commits.rewrite(point)
    finally:
        commits.close()
    _fsync(dp.log_dir)
    _fsync(dp.checkpoints)
    _fsync(dp.root)
    report = check_store(dp.root, page_size=geo.page_size, segment_size=seg_size)
    if report.exit_code != 0:
        raise ToolError(
            f"the backup in {dp.root} does not check clean: "
            + "; ".join(str(p) for p in report.problems)
        )
    return BackupReport(dp.root, info.seq, info.kind, point.tail, info.created, copied, attempt,
                        report)


def restore_store(
    src: str | Path,
    dest: str | Path,
    *,
    force: bool = False,
    page_size: int | None = None,
    segment_size: int | None = None,
) -> RestoreReport:
    """Copy the backup ``src`` into the data directory ``dest`` (empty unless ``force``)."""
    sp, dp = StorePaths(Path(src)), StorePaths(Path(dest))
    if not sp.root.is_dir():
        raise ToolError(f"{sp.root}: no such directory")
    source = check_store(sp.root, page_size=page_size, segment_size=segment_size)
    if source.exit_code != 0 or source.durable is None:
        why = "; ".join(str(p) for p in source.problems) or "it holds no durable data"
        raise ToolError(f"{sp.root} is not a clean backup: {why}")
    holder = lock_holder(dp) if dp.root.is_dir() else None
    if holder is not None:
        raise ToolError(f"{dp.root} is in use by process {holder}; stop it first")
    try:
        lock = DataDir(dp.root)
    except DataDirLockedError as exc:
        raise ToolError(f"cannot restore: {exc}") from None
    try:
        others = [p for p in dp.root.iterdir() if p.name != dp.lock.name]
        if others and not force:
            raise ToolError(
                f"{dp.root} is not empty ({len(others)} entries); pass --force to replace it"
            )
        for p in others:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        copied = 0
        for path in sorted(sp.root.rglob("*")):
            rel = path.relative_to(sp.root)
            if rel.name == dp.lock.name and len(rel.parts) == 1:
                continue
            target = dp.root / rel
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                copied += _copy_file(path, target)
        for d in (dp.root, dp.log_dir, dp.checkpoints, *dp.checkpoints.glob("[0-9]*")):
            if d.is_dir():
                _fsync(d)
        geo = source.geometry
        report = check_store(
            dp.root,
            page_size=geo.page_size if geo else page_size,
            segment_size=geo.segment_size if geo else segment_size,
            ignore_lock_of=os.getpid(),
        )
        if report.exit_code != 0:
            raise ToolError(
                f"the restored {dp.root} does not check clean: "
                + "; ".join(str(p) for p in report.problems)
            )
        return RestoreReport(dp.root, copied, report)
    finally:
        lock.release()


def _copy_chain(sp: StorePaths, dp: StorePaths, seq: int) -> int:
    """Copy checkpoint ``seq`` and, for an incremental one, every base it builds on."""
    copied = 0
    seen: set[int] = set()
    while seq and seq not in seen:
        seen.add(seq)
        src_dir, dst_dir = sp.checkpoint_dir(seq), dp.checkpoint_dir(seq)
        dst_dir.mkdir(parents=True, exist_ok=True)
        for name in ("info", "index", "snapshot", "delta"):
            if (src_dir / name).exists():
                copied += _copy_file(src_dir / name, dst_dir / name)
        try:
            info = decode_info(dst_dir / "info")
        except CorruptFileError:
            break  # load_checkpoint reports it
        seq = int(getattr(info, "base", 0) or 0) if info.kind == "incremental" else 0
    return copied


def _copy_file(src: Path, dst: Path, length: int | None = None) -> int:
    """Copy ``length`` bytes (all when None) from ``src``, fsynced; returns the byte count."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            done = 0
            while length is None or done < length:
                want = _CHUNK if length is None else min(_CHUNK, length - done)
                chunk = os.pread(fin, want, done)
                if not chunk:
                    break
                os.pwrite(fout, chunk, done)
                done += len(chunk)
            if length is not None and done < length:
                os.ftruncate(fout, length)  # never-written bytes read as zeros on the device
            os.fsync(fout)
            return done
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _clear(root: Path) -> None:
    if root.is_dir():
        for p in root.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
