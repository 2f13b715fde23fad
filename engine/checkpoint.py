"""Persistent formats of a store: checkpoints and the commit log.

Every file starts with a magic number and a format version and ends with an xxh3-64 checksum of
everything before it, so a torn or corrupted file is detected, never interpreted::

    checkpoints/<seq>/info      magic "FKVCKPT1" | version u32 | length u32 | JSON | xxh3 u64
    checkpoints/<seq>/index     magic "FKVINDX1" | version u32 | n_buckets u64 | capacity u64 |
                                next_overflow u64 | free count u64 | free ids u64... |
                                bucket bytes | xxh3 u64
    checkpoints/<seq>/snapshot  magic "FKVSNAP1" | version u32 | start u64 | length u64 |
                                log bytes [start, start + length) | xxh3 u64
    checkpoints/<seq>/delta     magic "FKVDELT1" | version u32 | base seq u64 | count u64 |
                                (address u64 | length u64 | bytes) * count | xxh3 u64
    log/commits                 entries: magic u32 | length u32 | JSON | xxh3 u64 (of the rest)

A checkpoint directory is written under a temporary name and renamed into place only when all of
its files are durable, so a crash during a checkpoint leaves no half checkpoint behind; a
checkpoint that is corrupt afterwards is skipped in favour of the previous one. Commit entries
are appended and fsynced; a torn last entry is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xxhash import xxh3_64_intdigest

from faster_backend.engine.errors import EngineError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFO_MAGIC = b"FKVCKPT1"
INDEX_MAGIC = b"FKVINDX1"
SNAPSHOT_MAGIC = b"FKVSNAP1"
DELTA_MAGIC = b"FKVDELT1"
COMMIT_MAGIC = 0x464B5643  # "FKVC"

_PREFIX = struct.Struct("<8sII")  # magic, version, length
_U64 = struct.Struct("<Q")
_INDEX_HEAD = struct.Struct("<8sIQQQQ")
_SNAP_HEAD = struct.Struct("<8sIQQ")
_DELTA_HEAD = struct.Struct("<8sIQQ")
_RANGE = struct.Struct("<QQ")
_COMMIT_HEAD = struct.Struct("<II")


class CorruptFileError(EngineError):
    """A persistent file failed its magic, version or checksum check."""

    def __init__(self, path: Path, offset: int, problem: str) -> None:
        self.path = path
        self.offset = offset
        super().__init__(f"{path}: {problem} at offset {offset}")


@dataclass
class CommitPoint:
    """The state of the log that a commit (or checkpoint) makes durable."""

    tail: int  # every record below this address is on the device or in the snapshot
    begin: int
    live: int
    version: int
    sessions: dict[str, int] = field(default_factory=dict)
    page_sums: dict[str, int] = field(default_factory=dict)  # page number -> xxh3 of the page
    tail_sum: int = 0  # xxh3 of the device's bytes [start of the last page, device end)
    index_size: int = 0  # buckets of the index when the point was taken (replay needs it)
    # F2: ``live`` already counts the uncounted records below this address (engine/record.py)
    settled: int = 0

    def to_json(self) -> bytes:
        fields = asdict(self)
        if not fields["settled"]:
            del fields["settled"]  # a single log's commits keep the format earlier builds read
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CommitPoint:
        raw = json.loads(data)
        return cls(**raw)


@dataclass
class CheckpointInfo:
    seq: int
    kind: str  # "fold-over", "snapshot" or "incremental"
    point: CommitPoint
    index_buckets: int
    snapshot_start: int = 0  # snapshot kinds: memory [snapshot_start, point.tail) is in snapshot
    created: float = 0.0
    base: int = 0  # incremental: the checkpoint its delta applies to

    def to_json(self) -> bytes:
        d = asdict(self)
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CheckpointInfo:
        raw: dict[str, Any] = json.loads(data)
        raw["point"] = CommitPoint(**raw["point"])
        return cls(**raw)


# -- generic framed files --------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, body: bytes) -> None:
    """Write ``body`` followed by its xxh3 checksum, fsynced."""
    with path.open("wb") as fh:
        fh.write(body)
        fh.write(_U64.pack(xxh3_64_intdigest(body)))
        fh.flush()
        os.fsync(fh.fileno())


def read_checked(path: Path, magic: bytes) -> bytes:
    """The body of a framed file after checking its checksum, magic and version."""
    data = path.read_bytes()
    if len(data) < len(magic) + 4 + 8:
        raise CorruptFileError(path, len(data), "file too short (truncated)")
    body, stored = data[:-8], _U64.unpack_from(data, len(data) - 8)[0]
    if xxh3_64_intdigest(body) != stored:
        raise CorruptFileError(path, len(data) - 8, "checksum mismatch")
    if body[: len(magic)] != magic:
        raise CorruptFileError(path, 0, f"bad magic {body[: len(magic)]!r}, expected {magic!r}")
    version = struct.unpack_from("<I", body, len(magic))[0]
    if version != FORMAT_VERSION:
        raise CorruptFileError(
            path, len(magic), f"format version {version}, this build reads {FORMAT_VERSION}"
        )
    return body


# -- checkpoint files --------------------------------------------------------------------------


def encode_info(info: CheckpointInfo) -> bytes:
    payload = info.to_json()
    return _PREFIX.pack(INFO_MAGIC, FORMAT_VERSION, len(payload)) + payload


def decode_info(path: Path) -> CheckpointInfo:
    body = read_checked(path, INFO_MAGIC)
    _, _, length = _PREFIX.unpack_from(body, 0)
    try:
        return CheckpointInfo.from_json(body[_PREFIX.size : _PREFIX.size + length])
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptFileError(path, _PREFIX.size, f"invalid checkpoint metadata: {exc}") from None


def encode_index(
    buckets: int, capacity: int, next_overflow: int, free: list[int], raw: bytes
) -> bytes:
    head = _INDEX_HEAD.pack(
        INDEX_MAGIC, FORMAT_VERSION, buckets, capacity, next_overflow, len(free)
    )
    return head + struct.pack(f"<{len(free)}Q", *free) + raw


def decode_index(path: Path) -> tuple[int, int, int, list[int], bytes]:
    body = read_checked(path, INDEX_MAGIC)
    _, _, buckets, capacity, next_overflow, nfree = _INDEX_HEAD.unpack_from(body, 0)
    off = _INDEX_HEAD.size
    free = list(struct.unpack_from(f"<{nfree}Q", body, off))
    off += 8 * nfree
    raw = body[off:]
    if len(raw) != capacity * 64:
        raise CorruptFileError(path, off, f"index holds {len(raw)} bytes, expected {capacity * 64}")
    return buckets, capacity, next_overflow, free, raw


def encode_snapshot(start: int, data: bytes) -> bytes:
    return _SNAP_HEAD.pack(SNAPSHOT_MAGIC, FORMAT_VERSION, start, len(data)) + data


def decode_snapshot(path: Path) -> tuple[int, bytes]:
    body = read_checked(path, SNAPSHOT_MAGIC)
    _, _, start, length = _SNAP_HEAD.unpack_from(body, 0)
    data = body[_SNAP_HEAD.size :]
    if len(data) != length:
        raise CorruptFileError(path, _SNAP_HEAD.size, "snapshot length mismatch")
    return start, data


def encode_delta(base: int, ranges: list[tuple[int, bytes]]) -> bytes:
    parts = [_DELTA_HEAD.pack(DELTA_MAGIC, FORMAT_VERSION, base, len(ranges))]
    for address, data in ranges:
        parts.append(_RANGE.pack(address, len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_delta(path: Path) -> tuple[int, list[tuple[int, bytes]]]:
    body = read_checked(path, DELTA_MAGIC)
    _, _, base, count = _DELTA_HEAD.unpack_from(body, 0)
    off = _DELTA_HEAD.size
    ranges = []
    for _ in range(count):
        if off + _RANGE.size > len(body):
            raise CorruptFileError(path, off, "delta entry header beyond the end")
        address, length = _RANGE.unpack_from(body, off)
        off += _RANGE.size
        if off + length > len(body):
            raise CorruptFileError(path, off, "delta entry beyond the end")
        ranges.append((address, body[off : off + length]))
        off += length
    return base, ranges


class CheckpointDir:
    """The ``checkpoints/`` folder: numbered checkpoint directories, newest last.

    With ``writable=False`` nothing is created or cleaned up (for tools reading a live store).
    """

    def __init__(self, root: Path, writable: bool = True) -> None:
        self.root = root
        if not writable:
            return
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("tmp-*"):  # a checkpoint that a crash interrupted
            log.warning("removing incomplete checkpoint %s", stale)
            shutil.rmtree(stale, ignore_errors=True)

    def sequence_numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit())

    def begins(self) -> dict[int, int]:
        """The log begin address of every readable checkpoint (to know what it still needs)."""
        out: dict[int, int] = {}
        for seq in self.sequence_numbers():
            try:
                out[seq] = decode_info(self.path(seq) / "info").point.begin
            except (CorruptFileError, OSError):
                continue
        return out

    def path(self, seq: int) -> Path:
        return self.root / f"{seq:016d}"

    def write(
        self, info: CheckpointInfo, index: bytes, snapshot: bytes | None, retain: int
    ) -> Path:
        tmp = self.root / f"tmp-{info.seq:016d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_file(tmp / "index", index)
        if snapshot is not None:
            write_file(tmp / ("delta" if info.kind == "incremental" else "snapshot"), snapshot)
        write_file(tmp / "info", encode_info(info))
        _fsync_dir(tmp)
        final = self.path(info.seq)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        seqs = self.sequence_numbers()
        keep = set(seqs[-retain:])
        for seq in list(keep):  # an incremental checkpoint needs its whole chain of bases
            while seq:
                try:
                    seq = decode_info(self.path(seq) / "info").base
                except (CorruptFileError, OSError):
                    break
                keep.add(seq)
        for old in seqs:
            if old not in keep:
                # Renamed first, so a crash while deleting leaves a tmp-* (cleaned at the next
                # open), never a half-deleted checkpoint that looks complete.
                doomed = self.root / f"tmp-{old:016d}"
                os.rename(self.path(old), doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        return final

    def load(
        self, seq: int
    ) -> tuple[CheckpointInfo, tuple[int, int, int, list[int], bytes], tuple[int, bytes] | None]:
        d = self.path(seq)
        info = decode_info(d / "info")
        index = decode_index(d / "index")
        snap = None
        if info.kind == "snapshot":
            snap = decode_snapshot(d / "snapshot")
        elif info.kind == "incremental":
            snap = self._materialize(info)
        return info, index, snap

    def _materialize(self, info: CheckpointInfo) -> tuple[int, bytes]:
        """The mutable region of an incremental checkpoint: its chain applied to the base."""
        layers: list[list[tuple[int, bytes]]] = []
        current = info
        while current.kind == "incremental":
            base, ranges = decode_delta(self.path(current.seq) / "delta")
            layers.append(ranges)
            if base >= current.seq:
                raise CorruptFileError(self.path(current.seq) / "delta", 0, "base not older")
            current = decode_info(self.path(base) / "info")
        if current.kind != "snapshot":
            raise CorruptFileError(self.path(current.seq), 0, "incremental chain lacks a base")
        start, data = decode_snapshot(self.path(current.seq) / "snapshot")
        end = max(info.point.tail, start + len(data))
        region = bytearray(end - start)
        region[: len(data)] = data
        for ranges in reversed(layers):
            for address, chunk in ranges:
                region[address - start : address - start + len(chunk)] = chunk
        lo = info.snapshot_start
        return lo, bytes(region[lo - start : info.point.tail - start])


# -- the commit log ----------------------------------------------------------------------------


class CommitLog:
    """Append-only, fsynced commit records; the newest valid one is the durable state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            # Cut a torn or corrupt tail before appending: entries written after it would be
            # unreachable for every later recovery.
            _, torn, valid_end = CommitLog.scan(path)
            if torn is not None:
                log.warning("cutting the commit log back to its last valid entry: %s", torn)
                os.truncate(path, valid_end)
        self._fh = path.open("ab")

    def append(self, point: CommitPoint) -> None:
        payload = point.to_json()
        head = _COMMIT_HEAD.pack(COMMIT_MAGIC, len(payload))
        self._fh.write(head + payload + _U64.pack(xxh3_64_intdigest(head + payload)))
        self._fh.flush()
        os.fdatasync(self._fh.fileno())

    def rewrite(self, point: CommitPoint) -> None:
        """Replace the file by one holding only ``point`` (after a checkpoint)."""
        tmp = self.path.with_suffix(".tmp")
        payload = point.to_json()
        head = _COMMIT_HEAD.pack(COMMIT_MAGIC, len(payload))
        with tmp.open("wb") as fh:
            fh.write(head + payload + _U64.pack(xxh3_64_intdigest(head + payload)))
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        os.rename(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._fh = self.path.open("ab")

    def close(self) -> None:
        self._fh.close()

    @staticmethod
    def read(path: Path) -> tuple[list[CommitPoint], str | None]:
        """Valid entries in order, and a description of a torn/corrupt tail if there was one."""
        entries, torn, _ = CommitLog.scan(path)
        return entries, torn

    @staticmethod
    def scan(path: Path) -> tuple[list[CommitPoint], str | None, int]:
        """``read`` plus the byte length of the valid prefix."""
        if not path.exists():
            return [], None, 0
        data = path.read_bytes()
        out: list[CommitPoint] = []
        off = 0
        while off < len(data):
            if off + _COMMIT_HEAD.size > len(data):
                return out, f"{path}: torn commit entry at offset {off}", off
            magic, length = _COMMIT_HEAD.unpack_from(data, off)
            end = off + _COMMIT_HEAD.size + length + 8
            if magic != COMMIT_MAGIC or end > len(data):
                return out, f"{path}: torn or corrupt commit entry at offset {off}", off
            body = data[off : end - 8]
            if xxh3_64_intdigest(body) != _U64.unpack_from(data, end - 8)[0]:
                return out, f"{path}: commit entry checksum mismatch at offset {off}", off
            try:
                out.append(CommitPoint.from_json(body[_COMMIT_HEAD.size :]))
            except (ValueError, TypeError):
                return out, f"{path}: invalid commit entry at offset {off}", off
            off = end
        return out, None, off


# -- the store's geometry ------------------------------------------------------------------------

GEOMETRY_MAGIC = b"FKVGEOM1"
_GEOMETRY = struct.Struct("<8sIQQ")


def write_geometry(path: Path, page_size: int, segment_size: int) -> None:
    """Record the page and segment sizes a store was created with (they cannot change)."""
    tmp = path.with_suffix(".tmp")
    write_file(tmp, _GEOMETRY.pack(GEOMETRY_MAGIC, FORMAT_VERSION, page_size, segment_size))
    os.rename(tmp, path)
    _fsync_dir(path.parent)


def read_geometry(path: Path) -> tuple[int, int] | None:
    """(page size, segment size) of an existing store, or None for a new one."""
    if not path.exists():
        return None
    body = read_checked(path, GEOMETRY_MAGIC)
    _, _, page_size, segment_size = _GEOMETRY.unpack_from(body, 0)
    return page_size, segment_size
