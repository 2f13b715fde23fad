"""F2's manifest: the one file that ties the hot store, the cold log and the cold index together.

The hot store recovers by itself (its own checkpoints and commit log, engine/recovery.py). The
cold tier has no commit log: its durable state is the one a manifest names, written after each
change of the cold tier (every compaction, ``clear``, a checkpoint)::

    magic "F2MANIF3" | version u32 | length u32 | JSON | first page u64 | n u32 | n x u64 | xxh3

JSON: ``seq``, ``cold_begin``, ``cold_tail``, ``cold_tail_sum`` (xxh3 of the tail's partial
page), ``cold_records``, ``cold_index_chunks``, ``cold_page_size``, ``hot_begin_low`` /
``hot_begin_high``, ``hot_checkpoint`` (the newest hot checkpoint then, for information) and
``created``; the binary part holds the xxh3 of every complete cold-log page from ``first page`` on.

A manifest is valid with a recovered hot log whose begin address lies in
[hot_begin_low, hot_begin_high]: a hot-cold compaction writes the manifest that covers the
records it moved *before* it truncates the hot log (so a hot state that still holds them is
fine: the hot records shadow their identical cold copies), and it commits the hot store *before*
the manifest (so the cold tier never holds a record the recovered hot state has not seen).

Two slots (``f2.manifest.0`` / ``.1``) are written alternately, each as temp file + fsync +
rename + fsync of the directory: the previous manifest stays as a fallback when the newest one is
corrupt (recovery says which file and offset) and still fits the hot log.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faster_backend.engine.checkpoint import CorruptFileError, read_checked, write_file
from faster_backend.engine.checkpoint import _fsync_dir as fsync_dir

log = logging.getLogger(__name__)

# The magic names the format. F2MANIF3 stores may hold uncounted records in their hot log
# (blind upserts, engine/f2/counting.py), which earlier builds would count wrongly, so they
# refuse it (an unknown magic). F2MANIF2 is the same file from a build without blind upserts:
# read as is (its hot log has no uncounted record). F2MANIF1 (a cold index stored in a chunk
# store, with its checkpoint named here) is not read by this build.
MAGIC = b"F2MANIF3"
COMPATIBLE_MAGICS = (b"F2MANIF2",)
OLD_MAGICS = (b"F2MANIF1",)
VERSION = 1  # engine/checkpoint.py's FORMAT_VERSION: read_checked checks it
SLOT_NAMES = ("f2.manifest.0", "f2.manifest.1")
_PREFIX = struct.Struct("<8sII")
_SUMS_HEAD = struct.Struct("<QI")


@dataclass
class Manifest:
    seq: int
    cold_begin: int
    cold_tail: int
    cold_tail_sum: int
    cold_records: int
    cold_index_chunks: int
    cold_page_size: int
    hot_begin_low: int
    hot_begin_high: int
    hot_checkpoint: int = 0
    created: float = 0.0
    first_page: int = 0
    page_sums: list[int] = field(default_factory=list)  # pages first_page, first_page + 1, ...

    def encode(self) -> bytes:
        meta = asdict(self)
        del meta["first_page"], meta["page_sums"]
        payload = json.dumps(meta, separators=(",", ":")).encode()
        n = len(self.page_sums)
        return b"".join(
            (
                _PREFIX.pack(MAGIC, VERSION, len(payload)),
                payload,
                _SUMS_HEAD.pack(self.first_page, n),
                struct.pack(f"<{n}Q", *self.page_sums),
            )
        )

    def sums(self) -> dict[int, int]:
        return {self.first_page + i: s for i, s in enumerate(self.page_sums)}

    def fits(self, hot_begin: int) -> bool:
        return self.hot_begin_low <= hot_begin <= self.hot_begin_high


def decode(path: Path) -> Manifest:
    """The manifest in ``path``; CorruptFileError (file and offset) when it fails a check."""
    head = path.read_bytes()[: len(MAGIC)]
    if head in OLD_MAGICS:
        raise CorruptFileError(
            path,
            0,
            f"an F2 manifest of an older format ({head.decode()}: the cold index was a chunk"
            f" store); this build reads {MAGIC.decode()}: recreate the store",
        )
    body = read_checked(path, head if head in COMPATIBLE_MAGICS else MAGIC)
    _, _, length = _PREFIX.unpack_from(body, 0)
    off = _PREFIX.size
    if off + length + _SUMS_HEAD.size > len(body):
        raise CorruptFileError(path, off, f"metadata of {length} bytes runs past the end")
    try:
        meta: dict[str, Any] = json.loads(body[off : off + length])
        m = Manifest(**meta)
    except (ValueError, TypeError) as exc:
        raise CorruptFileError(path, off, f"invalid manifest metadata: {exc}") from None
    off += length
    m.first_page, n = _SUMS_HEAD.unpack_from(body, off)
    off += _SUMS_HEAD.size
    if off + 8 * n != len(body):
        raise CorruptFileError(path, off, f"{n} page checksums do not fill the rest of the file")
    m.page_sums = list(struct.unpack_from(f"<{n}Q", body, off))
    return m


class ManifestSlots:
    """The two manifest files of an F2 directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = [root / name for name in SLOT_NAMES]
        for stale in root.glob("f2.manifest.*.tmp"):  # a write that a crash interrupted
            stale.unlink()
        self.current: list[Manifest | None] = [None, None]

    def exist(self) -> bool:
        return any(p.exists() for p in self.paths)

    def read(self) -> tuple[list[tuple[Path, Manifest]], list[str]]:
        """Readable manifests, newest first, and the problems of the unreadable ones."""
        found: list[tuple[Path, Manifest]] = []
        problems: list[str] = []
        for i, path in enumerate(self.paths):
            if not path.exists():
                continue
            try:
                m = decode(path)
            except CorruptFileError as exc:
                log.warning("F2 manifest unusable: %s", exc)
                problems.append(str(exc))
                continue
            self.current[i] = m
            found.append((path, m))
        found.sort(key=lambda pm: -pm[1].seq)
        return found, problems

    def next_seq(self) -> int:
        return 1 + max((m.seq for m in self.current if m is not None), default=0)

    def write(self, m: Manifest) -> None:
        m.created = time.time()
        slot = m.seq % 2
        path = self.paths[slot]
        tmp = path.with_name(path.name + ".tmp")
        write_file(tmp, m.encode())  # fsynced
        os.rename(tmp, path)
        fsync_dir(self.root)
        self.current[slot] = m

    def cold_begins(self) -> list[int]:
        """Cold-log begin addresses that a manifest on disk may still recover to."""
        return [m.cold_begin for m in self.current if m is not None]
