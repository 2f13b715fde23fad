"""FASTER's hash bucket: one 64-byte cache line of seven entries and an overflow pointer.

A hash entry is one u64::

    bits 0-47   address of the newest record in this (bucket, tag) chain
                (bit 47 marks a read-cache address, as in FASTER)
    bits 48-61  tag: the high 14 bits of the key hash
    bit  62     tentative: an insert in progress; readers ignore such entries
    bit  63     reserved (zero)

Word 7 of a bucket holds the number of its overflow bucket (0 = none). Main and overflow buckets
live in one bytearray so that a probe is a single ``struct.unpack_from`` of eight words.
"""

import struct

ENTRIES_PER_BUCKET = 7
WORDS_PER_BUCKET = 8
BUCKET_BYTES = 64
OVERFLOW_SLOT = 7

TAG_SHIFT = 48
TAG_BITS = 14
TAG_MASK = (1 << TAG_BITS) - 1
HASH_TAG_SHIFT = 64 - TAG_BITS
ADDRESS_MASK = (1 << 48) - 1
TENTATIVE = 1 << 62

BUCKET = struct.Struct("<8Q")


def tag_of(key_hash: int) -> int:
    """The 14-bit tag of a 64-bit key hash; never 0, so an empty entry never matches."""
    return (key_hash >> HASH_TAG_SHIFT) or 1


def make_entry(address: int, tag: int, tentative: bool = False) -> int:
    entry = address | (tag << TAG_SHIFT)
    return entry | TENTATIVE if tentative else entry
