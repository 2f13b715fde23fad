"""The record layout of the hybrid log.

A record is 8-byte aligned::

    0   RecordInfo (u64)  bits 0-47  previous address in the hash chain
                          bits 48-59 checkpoint version (12 bits)
                          bit  60    has expiry
                          bit  61    uncounted (F2's hot log: see below)
                          bit  62    tombstone
                          bit  63    final
    8   key length (u32)
    12  value length (u32)
    16  key bytes, then value bytes, zero padding to 8 bytes
    ..  expiry (i64, unix milliseconds) in the last 8 bytes, present only with the has-expiry bit

FASTER's C++ RecordInfo has a 13-bit version and no expiry bit; we give one version bit to
expiry so that records without a TTL pay nothing for it. Its invalid bit is ours "uncounted":
F2's blind upserts write records whose key may or may not have existed, so the store's live-key
count was not adjusted for them; F2 settles the count later (docs/f2.md). The single log never
sets it. The key always starts at offset 16, so
a key comparison needs no branch. A page ends where a zero RecordInfo word (or the page end) is
found: a real record always has a non-zero word because the final bit is set on every record.
"""

import struct

HEADER_SIZE = 16
EXPIRY_SIZE = 8

PREV_MASK = (1 << 48) - 1
VERSION_SHIFT = 48
VERSION_MASK = 0xFFF
HAS_EXPIRY = 1 << 60
UNCOUNTED = 1 << 61
TOMBSTONE = 1 << 62
FINAL = 1 << 63

HEADER = struct.Struct("<QII")
INFO = struct.Struct("<Q")
EXPIRY = struct.Struct("<q")
VALUE_LEN = struct.Struct("<I")

MAX_FIELD = 0xFFFFFFFF


def record_size(key_len: int, value_len: int, has_expiry: bool) -> int:
    """Bytes a record occupies in the log, padding included."""
    size = (HEADER_SIZE + key_len + value_len + 7) & ~7
    return size + EXPIRY_SIZE if has_expiry else size


def make_info(prev: int, version: int, flags: int) -> int:
    return prev | ((version & VERSION_MASK) << VERSION_SHIFT) | flags | FINAL


def size_from_header(info: int, key_len: int, value_len: int) -> int:
    return record_size(key_len, value_len, bool(info & HAS_EXPIRY))


def write_record(
    page: bytearray,
    offset: int,
    info: int,
    key: bytes,
    value: bytes,
    expiry_ms: int | None,
    size: int,
) -> None:
    """Write one record whose ``size`` was computed by ``record_size``."""
    klen = len(key)
    HEADER.pack_into(page, offset, info, klen, len(value))
    start = offset + HEADER_SIZE
    page[start : start + klen] = key
    page[start + klen : start + klen + len(value)] = value
    if expiry_ms is not None:
        EXPIRY.pack_into(page, offset + size - EXPIRY_SIZE, expiry_ms)
