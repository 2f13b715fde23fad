"""Read-only access to a data directory's files, for the offline tools.

Nothing here opens a file for writing or takes the directory's lock, so it may run next to a
live store. The store records neither its page size nor its segment size on disk, so both are
inferred from the files (``infer_geometry``) unless the caller knows them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xxhash import xxh3_64_intdigest

from faster_backend.engine import checkpoint as engine_checkpoint
from faster_backend.engine.address import MAX_PAGE_BITS, MIN_PAGE_BITS
from faster_backend.engine.checkpoint import (
    COMMIT_MAGIC,
    CheckpointDir,
    CheckpointInfo,
    CommitPoint,
    CorruptFileError,
    decode_index,
    decode_info,
    decode_snapshot,
)
from faster_backend.engine.data_dir import LOCK_NAME
from faster_backend.engine.f2.manifest import SLOT_NAMES as F2_MANIFESTS
from faster_backend.engine.faster_kv import GEOMETRY_FILE
from faster_backend.engine.record import HEADER, HEADER_SIZE, size_from_header
from faster_backend.engine.recovery import merged_page_sums

LOG_DIR = "log"  # the layout of faster_backend.store.FasterKV
LOG_NAME = "hlog"
COMMITS = "commits"
CHECKPOINTS = "checkpoints"
DEFAULT_PAGE_SIZE = 4 << 20
DEFAULT_SEGMENT_SIZE = 1 << 30

_COMMIT_HEAD = struct.Struct("<II")
_U64 = struct.Struct("<Q")


class ToolError(Exception):
    """A tool cannot do its job (bad arguments, unknown geometry, store in use)."""


class VanishedError(ToolError):
    """A file disappeared while it was read (a live store removed it): start again."""


@dataclass
class StorePaths:
    root: Path

    @property
    def log_dir(self) -> Path:
        return self.root / LOG_DIR

    @property
    def commits(self) -> Path:
        return self.root / COMMITS

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    def checkpoint_dir(self, seq: int) -> Path:
        return self.checkpoints / f"{seq:016d}"

    def checkpoint_seqs(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(int(p.name) for p in self.checkpoints.iterdir() if p.name.isdigit())

    def stale_checkpoint_dirs(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(self.checkpoints.glob("tmp-*"))

    def segments(self) -> dict[int, Path]:
        """Log segment files by number."""
        if not self.log_dir.is_dir():
            return {}
        prefix = LOG_NAME + "."
        out = {}
        for entry in os.scandir(self.log_dir):
            suffix = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and suffix.isdigit():
                out[int(suffix)] = Path(entry.path)
        return dict(sorted(out.items()))


def lock_holder(paths: StorePaths) -> int | None:
    """The pid holding the data directory's flock, found without touching the lock.

    Taking even a shared lock to test it would make a concurrent opener fail, so the holder is
    looked up in /proc/locks by the LOCK file's device and inode.
    """
    try:
        st = os.stat(paths.lock)
    except FileNotFoundError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return _pid_file_holder(paths)
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1810 fe:00:2146409 0 EOF" (blocked waiters have "->")
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == want:
            return int(parts[4])
    return None


def _pid_file_holder(paths: StorePaths) -> int | None:
    try:
        pid = int(paths.lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return pid if exc.errno == errno.EPERM else None
    return pid


# -- log/hlog.begin (format in docs/devices.md) -----------------------------------------------

_BEGIN_MAGIC = b"FBDEVBEG"
_BEGIN = struct.Struct("<8sIQQ")  # magic, version, begin segment, xxh3 of the rest


def begin_path(paths: StorePaths) -> Path:
    return paths.log_dir / f"{LOG_NAME}.begin"


def read_begin(paths: StorePaths) -> tuple[int | None, str | None]:
    """The device's recorded first segment (None: no file) and a problem, if it is corrupt."""
    try:
        raw = begin_path(paths).read_bytes()
    except FileNotFoundError:
        return None, None
    if len(raw) != _BEGIN.size:
        return None, f"expected {_BEGIN.size} bytes, found {len(raw)}"
    magic, version, segment, check = _BEGIN.unpack(raw)
    if magic != _BEGIN_MAGIC or version != 1:
        return None, "bad magic or version"
    if check != xxh3_64_intdigest(raw[: _BEGIN.size - 8]):
        return None, "checksum mismatch"
    return int(segment), None


def write_begin(paths: StorePaths, segment: int) -> None:
    head = struct.pack("<8sIQ", _BEGIN_MAGIC, 1, segment)
    tmp = begin_path(paths).with_suffix(".begin.tmp")
    with tmp.open("wb") as fh:
        fh.write(head + _U64.pack(xxh3_64_intdigest(head)))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, begin_path(paths))


# -- the commit log ----------------------------------------------------------------------------


@dataclass
class CommitScan:
    """The valid entries of a commit log, where each one ends, and a torn tail if any."""

    entries: list[CommitPoint] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # byte offset just past each entry
    size: int = 0
    problem: str | None = None  # describes the first bad byte range (torn or corrupt)
    problem_offset: int | None = None

    @property
    def valid_end(self) -> int:
        return self.ends[-1] if self.ends else 0


def scan_commits(path: Path) -> CommitScan:
    """Parse the commit log the way ``CommitLog.read`` does, keeping byte offsets."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return CommitScan()
    scan = CommitScan(size=len(data))
    off = 0
    while off < len(data):
        problem = None
        if off + _COMMIT_HEAD.size > len(data):
            problem = "torn commit entry (header cut short)"
        else:
            magic, length = _COMMIT_HEAD.unpack_from(data, off)
            end = off + _COMMIT_HEAD.size + length + 8
            if magic != COMMIT_MAGIC:
                problem = "bad commit entry magic"
            elif end > len(data):
                problem = "torn commit entry (cut short)"
            elif xxh3_64_intdigest(data[off : end - 8]) != _U64.unpack_from(data, end - 8)[0]:
                problem = "commit entry checksum mismatch"
            else:
                try:
                    scan.entries.append(
                        CommitPoint.from_json(data[off + _COMMIT_HEAD.size : end - 8])
                    )
                except (ValueError, TypeError):
                    problem = "invalid commit entry"
        if problem is not None:
            scan.problem = f"{path}: {problem} at offset {off}"
            scan.problem_offset = off
            return scan
        scan.ends.append(end)
        off = end
    return scan


# -- checkpoints -------------------------------------------------------------------------------


@dataclass
class CheckpointState:
    seq: int
    path: Path
    info: CheckpointInfo | None = None
    problems: list[CorruptFileError] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes

    @property
    def valid(self) -> bool:
        return self.info is not None and not self.problems

    @property
    def device_end(self) -> int:
        assert self.info is not None
        if self.info.kind != "fold-over":  # snapshot kinds keep [snapshot_start, tail) aside
            return self.info.snapshot_start
        return self.info.point.tail

    @property
    def base(self) -> int:
        """The checkpoint an incremental one applies its delta to (0: none)."""
        return int(getattr(self.info, "base", 0) or 0)


def load_checkpoint(paths: StorePaths, seq: int) -> CheckpointState:
    """Check every file of one checkpoint (magic, version, checksum, lengths)."""
    d = paths.checkpoint_dir(seq)
    state = CheckpointState(seq, d)
    if not d.is_dir():
        raise VanishedError(f"{d} was removed while it was checked")
    for name in ("info", "index", "snapshot", "delta"):
        p = d / name
        with contextlib.suppress(FileNotFoundError):
            state.files[name] = p.stat().st_size
    try:
        state.info = decode_info(d / "info")
    except FileNotFoundError:
        _missing(d, state, "info")
    except CorruptFileError as exc:
        state.problems.append(exc)
    if state.info is not None and state.info.seq != seq:
        state.problems.append(
            CorruptFileError(d / "info", 0, f"records sequence number {state.info.seq}")
        )
    try:
        decode_index(d / "index")
    except FileNotFoundError:
        _missing(d, state, "index")
    except CorruptFileError as exc:
        state.problems.append(exc)
    if state.info is not None and state.info.kind == "snapshot":
        try:
            start, _ = decode_snapshot(d / "snapshot")
            if start != state.info.snapshot_start:
                state.problems.append(
                    CorruptFileError(d / "snapshot", 12, f"snapshot starts at {start}, info"
                                     f" says {state.info.snapshot_start}")
                )
        except FileNotFoundError:
            _missing(d, state, "snapshot")
        except CorruptFileError as exc:
            state.problems.append(exc)
    if state.info is not None and state.info.kind == "incremental":
        decode_delta = getattr(engine_checkpoint, "decode_delta", None)
        try:
            if decode_delta is None:
                raise CorruptFileError(d / "info", 0, "incremental checkpoints need a newer build")
            decode_delta(d / "delta")
            _engine_load(paths, seq)  # the whole chain of bases, as recovery applies it
        except FileNotFoundError as exc:
            if not (d / "delta").exists():
                _missing(d, state, "delta")
            else:
                state.problems.append(
                    CorruptFileError(d / "delta", 0, f"a base checkpoint's file is missing:"
                                     f" {exc.filename}")
                )
        except CorruptFileError as exc:
            if not state.problems or str(exc) != str(state.problems[-1]):
                state.problems.append(exc)
        except OSError as exc:
            state.problems.append(
                CorruptFileError(d / "delta", 0, f"its chain of base checkpoints: {exc}")
            )
    return state


def _engine_load(
    paths: StorePaths, seq: int
) -> tuple[CheckpointInfo, tuple[int, int, int, list[int], bytes], tuple[int, bytes] | None]:
    """Load a checkpoint without creating or cleaning up anything."""
    return CheckpointDir(paths.checkpoints, writable=False).load(seq)


def _missing(d: Path, state: CheckpointState, name: str) -> None:
    if not d.is_dir():
        raise VanishedError(f"{d} was removed while it was checked")
    state.problems.append(CorruptFileError(d / name, 0, "file missing"))


def snapshot_data(paths: StorePaths, seq: int) -> tuple[int, bytes]:
    """The log region a snapshot or incremental checkpoint holds (its chain applied)."""
    try:
        snap = _engine_load(paths, seq)[2]
    except FileNotFoundError:
        raise VanishedError(f"checkpoint {seq} was removed while it was read") from None
    if snap is None:
        return 0, b""
    return snap


# -- the durable point (as recovery chooses it) -----------------------------------------------


@dataclass
class Durable:
    """What recovery would restore from a given set of checkpoints and commits."""

    point: CommitPoint
    checkpoint: CheckpointState | None  # the checkpoint whose index recovery loads
    use_commit: bool
    device_end: int  # the device holds [point.begin, device_end); the snapshot the rest
    sums: dict[int, int]

    @property
    def source(self) -> str:
        if self.use_commit:
            return "commit log"
        assert self.checkpoint is not None
        return f"checkpoint {self.checkpoint.seq}"


def choose_durable(
    checkpoints: list[CheckpointState], commits: list[CommitPoint]
) -> Durable | None:
    """Mirror of ``engine.recovery.recover``'s choice; ``checkpoints`` are the valid ones."""
    valid = [c for c in checkpoints if c.valid]
    ck = max(valid, key=lambda c: c.seq) if valid else None
    info = ck.info if ck is not None else None
    last = commits[-1] if commits else None
    if info is None and last is None:
        return None
    use_commit = last is not None and (
        info is None
        or last.tail > info.point.tail
        or (last.tail == info.point.tail and info.kind == "fold-over")
    )
    if use_commit:
        assert last is not None
        point, device_end = last, last.tail
    else:
        assert ck is not None and info is not None
        point, device_end = info.point, ck.device_end
    return Durable(point, ck, use_commit, device_end, merged_page_sums(info, commits))


# -- the log on the device ---------------------------------------------------------------------


class SegmentReader:
    """Reads logical log addresses from the segment files, opened read-only."""

    def __init__(self, paths: StorePaths, segment_size: int) -> None:
        self.paths = paths
        self.segment_size = segment_size
        self._fds: dict[int, int | None] = {}

    def path(self, segment: int) -> Path:
        return self.paths.log_dir / f"{LOG_NAME}.{segment}"

    def locate(self, address: int) -> tuple[Path, int]:
        seg, off = divmod(address, self.segment_size)
        return self.path(seg), off

    def _fd(self, segment: int) -> int | None:
        if segment not in self._fds:
            try:
                self._fds[segment] = os.open(self.path(segment), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                self._fds[segment] = None
        return self._fds[segment]

    def read(self, address: int, length: int) -> tuple[bytes, list[int]]:
        """The bytes (zeros past a file's end) and the segments whose file is missing."""
        out = bytearray()
        missing = []
        while length > 0:
            seg, off = divmod(address, self.segment_size)
            n = min(length, self.segment_size - off)
            fd = self._fd(seg)
            if fd is None:
                missing.append(seg)
                chunk = b""
            else:
                chunk = os.pread(fd, n, off)
            out += chunk
            if len(chunk) < n:
                out += bytes(n - len(chunk))
            address += n
            length -= n
        return bytes(out), missing

    def close(self) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def page_records(
    page: bytes | bytearray | memoryview, page_start: int, lo: int, hi: int
) -> Iterator[tuple[int, int, int, int, memoryview]]:
    """Records of one page in [lo, hi), parsed like ``HybridLog.records``.

    Yields (address, info, key length, value length, record bytes).
    """
    view = memoryview(page)
    size = len(view)
    addr = lo
    off = lo - page_start
    while addr < hi and off + HEADER_SIZE <= size:
        info, klen, vlen = HEADER.unpack_from(view, off)
        if info == 0:
            return  # the rest of the page is unused
        rsize = size_from_header(info, klen, vlen)
        if off + rsize > size:
            raise ValueError(f"record at address {addr} ({rsize} bytes) crosses its page end")
        yield addr, info, klen, vlen, view[off : off + rsize]
        addr += rsize
        off += rsize


# -- geometry ----------------------------------------------------------------------------------


@dataclass
class Geometry:
    page_size: int
    segment_size: int
    source: str  # "given", "recorded" (the store's geometry file) or "inferred"

    @property
    def page_bits(self) -> int:
        return self.page_size.bit_length() - 1


def _power_sizes(lo_bits: int, hi_bits: int) -> list[int]:
    return [1 << b for b in range(lo_bits, hi_bits + 1)]


def infer_geometry(
    paths: StorePaths,
    durable: Durable | None,
    page_size: int | None = None,
    segment_size: int | None = None,
) -> Geometry:
    """Page and segment size: the given ones, else the store's geometry file, else the
    candidates the files agree with (stores written before the geometry file existed).

    A candidate pair is scored by how many recorded page checksums (a sample of up to four
    pages plus the partial tail page) it reproduces from the segment files; wrong sizes read
    the wrong bytes and match none. Ties prefer the defaults (4 MiB pages, 1 GiB segments).
    """
    if page_size is not None and segment_size is not None:
        return Geometry(page_size, segment_size, "given")
    if page_size is None and segment_size is None:
        recorded = recorded_geometry(paths)
        if recorded is not None:
            return Geometry(*recorded, "recorded")
    segments = paths.segments()
    sizes: dict[int, int] = {}
    for n, p in segments.items():
        with contextlib.suppress(FileNotFoundError):  # a live store's compaction removed it
            sizes[n] = p.stat().st_size
    if segment_size is not None:
        seg_candidates = [segment_size]
    elif len(sizes) >= 2:
        # every segment but the last is full (the log is written in address order)
        seg_candidates = [max(s for n, s in sizes.items() if n != max(sizes))]
    else:
        biggest = max(sizes.values(), default=0)
        seg_candidates = [DEFAULT_SEGMENT_SIZE] + [
            s for s in _power_sizes(MIN_PAGE_BITS, 40) if s != DEFAULT_SEGMENT_SIZE
        ]
        seg_candidates = [s for s in seg_candidates if s >= biggest]
    page_candidates = (
        [page_size]
        if page_size is not None
        else [DEFAULT_PAGE_SIZE]
        + [s for s in _power_sizes(MIN_PAGE_BITS, MAX_PAGE_BITS) if s != DEFAULT_PAGE_SIZE]
    )
    if durable is None:
        return Geometry(
            page_candidates[0], seg_candidates[0], "inferred" if page_size is None else "given"
        )
    best: tuple[int, int, int] | None = None
    for seg in seg_candidates:
        for page in page_candidates:
            if seg % page:
                continue
            score = _score(paths, durable, page, seg)
            if score > 0 and (best is None or score > best[0]):
                best = (score, page, seg)
    if best is None:
        raise ToolError(
            f"{paths.root}: cannot infer the log's page and segment size from its files"
            " (pass --page-size and --segment-size as the store was opened with)"
        )
    return Geometry(best[1], best[2], "inferred")


def refuse_f2(root: Path, tool: str) -> None:
    """The tools read single-log stores; an F2 directory holds a hot store, a cold log, a cold
    index and manifests."""
    if any((root / name).exists() for name in F2_MANIFESTS):
        raise ToolError(
            f"{root} is an F2 store (tiering='f2'): {tool} handles single-log stores only"
            " (an F2 store checks its manifest, cold pages and checkpoints when it opens)"
        )


def recorded_geometry(paths: StorePaths) -> tuple[int, int] | None:
    """(page size, segment size) from the store's geometry file; None when it has none or the
    file is damaged (then the sizes are inferred from the log instead)."""
    try:
        return engine_checkpoint.read_geometry(paths.root / GEOMETRY_FILE)
    except CorruptFileError:
        return None


def _score(paths: StorePaths, durable: Durable, page: int, seg: int) -> int:
    bits = page.bit_length() - 1
    begin, end = durable.point.begin, durable.device_end
    full = sorted(p for p in durable.sums if p >= begin >> bits and (p + 1) << bits <= end)
    if len(full) != len([p for p in durable.sums if p >= begin >> bits]):
        return 0  # a recorded page lies beyond the durable end: wrong page size
    sample = sorted({*full[:1], *full[-2:], *full[len(full) // 2 : len(full) // 2 + 1]})
    score = 0
    with SegmentReader(paths, seg) as reader:
        for p in sample:
            data, missing = reader.read(p << bits, page)
            if not missing and xxh3_64_intdigest(data) == durable.sums[p]:
                score += 1
        start = (end >> bits) << bits
        data, missing = reader.read(start, end - start)
        if not missing and xxh3_64_intdigest(data) == durable.point.tail_sum:
            score += 1
    return score
