"""FasterLog's on-disk formats: entry headers in pages, and commit records.

Entry: a 16-byte header ``<IIQ`` (payload length, kind, checksum) then the payload, padded to
8 bytes. ``checksum = xxh3_64(payload, seed=kind << 32 | length)``, so it covers the length and
the kind too. Entries never cross a page; the unused end of a page holds a filler header (kind
2) when 16 bytes or more remain, else zeros. Kind 0 (zeros) inside committed data is corruption.

Commit record file: ``<8s magic><u32 version><u32 body length><body><u64 xxh3 of all before>``;
body = ``<u64 sequence><u64 begin address><u64 committed until><u64 segment size>
<u32 page size><u32 iterators>``
then per iterator ``<u16 name length><name utf-8><u64 position>``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import xxhash

HEADER = struct.Struct("<IIQ")
HEADER_SIZE = HEADER.size  # 16
KIND_ENTRY = 1
KIND_FILLER = 2

COMMIT_MAGIC = b"FBLOGCMT"
COMMIT_VERSION = 1
_COMMIT_HEAD = struct.Struct("<8sII")
_COMMIT_BODY = struct.Struct("<QQQQII")
_ITER_NAME = struct.Struct("<H")
_U64 = struct.Struct("<Q")


def entry_size(length: int) -> int:
    """Bytes an entry of ``length`` payload bytes takes in a page."""
    return (HEADER_SIZE + length + 7) & ~7


def checksum(payload: bytes | bytearray | memoryview, kind: int, length: int) -> int:
    return xxhash.xxh3_64_intdigest(payload, seed=(kind << 32) | length)


@dataclass
class CommitRecord:
    """What one commit made durable."""

    sequence: int
    begin_address: int
    committed_until: int
    segment_size: int
    page_size: int
    iterators: dict[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        parts = [
            _COMMIT_BODY.pack(
                self.sequence,
                self.begin_address,
                self.committed_until,
                self.segment_size,
                self.page_size,
                len(self.iterators),
            )
        ]
        for name, position in sorted(self.iterators.items()):
            raw = name.encode()
            parts.append(_ITER_NAME.pack(len(raw)))
            parts.append(raw)
            parts.append(_U64.pack(position))
        body = b"".join(parts)
        head = _COMMIT_HEAD.pack(COMMIT_MAGIC, COMMIT_VERSION, len(body)) + body
        return head + _U64.pack(xxhash.xxh3_64_intdigest(head))

    @classmethod
    def decode(cls, raw: bytes) -> CommitRecord:
        """Parse a commit file; ``ValueError`` says what is wrong and at which offset."""
        if len(raw) < _COMMIT_HEAD.size + _U64.size:
            raise ValueError(f"offset 0: file too short ({len(raw)} bytes)")
        magic, version, length = _COMMIT_HEAD.unpack_from(raw)
        if magic != COMMIT_MAGIC:
            raise ValueError(f"offset 0: bad magic {magic!r}")
        if version != COMMIT_VERSION:
            raise ValueError(f"offset 8: unsupported version {version}")
        end = _COMMIT_HEAD.size + length
        if len(raw) != end + _U64.size:
            raise ValueError(
                f"offset {min(len(raw), end)}: length {len(raw)} does not match the header"
                f" ({end + _U64.size}); the file is torn"
            )
        (stored,) = _U64.unpack_from(raw, end)
        if stored != xxhash.xxh3_64_intdigest(raw[:end]):
            raise ValueError(f"offset {end}: checksum mismatch")
        pos = _COMMIT_HEAD.size
        sequence, begin, committed, segment_size, page_size, count = _COMMIT_BODY.unpack_from(
            raw, pos
        )
        pos += _COMMIT_BODY.size
        iterators: dict[str, int] = {}
        for _ in range(count):
            (n,) = _ITER_NAME.unpack_from(raw, pos)
            pos += _ITER_NAME.size
            name = raw[pos : pos + n].decode()
            pos += n
            (position,) = _U64.unpack_from(raw, pos)
            pos += _U64.size
            iterators[name] = position
        if pos != end:
            raise ValueError(f"offset {pos}: body length mismatch")
        if begin > committed:
            raise ValueError(f"offset {_COMMIT_HEAD.size}: begin {begin} beyond end {committed}")
        return cls(sequence, begin, committed, segment_size, page_size, iterators)
