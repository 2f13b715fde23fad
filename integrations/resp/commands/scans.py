"""HSCAN / SSCAN / ZSCAN: argument parsing (cursor MATCH COUNT [NOVALUES]) and paging."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from faster_backend.integrations.resp.commands._util import SYNTAX, to_int
from faster_backend.integrations.resp.objects import Entry
from faster_backend.integrations.resp.types import RespError


def parse_scan(
    argv: list[bytes], allow_novalues: bool = False
) -> tuple[int, bytes | None, int, bool]:
    """(cursor, match pattern, count, novalues) of ``XSCAN key cursor [options]``."""
    raw = argv[2]
    if not raw.isdigit() or int(raw) >= 2**64:
        raise RespError("ERR invalid cursor")
    match: bytes | None = None
    count = 10
    novalues = False
    i = 3
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if opt == b"NOVALUES" and allow_novalues:
            novalues = True
            i += 1
            continue
        if i + 1 >= n:
            raise SYNTAX
        if opt == b"COUNT":
            count = to_int(argv[i + 1])
            if count < 1:
                raise SYNTAX
        elif opt == b"MATCH":
            match = argv[i + 1]
        else:
            raise SYNTAX
        i += 2
    return int(raw), match, count, novalues


SMALL = 128
"""Collections up to this size answer a SCAN in one reply with cursor 0, as Redis' listpack
and intset encodings do (hash-max-listpack-entries, zset-max-listpack-entries: 128)."""

_U64 = (1 << 64) - 1


def _order(x: bytes) -> int:
    # Python caches a bytes object's hash, so this costs nothing for members of a dict or set.
    return hash(x) & _U64


class ScanOrder:
    """The elements of a collection sorted by their (unsigned 64-bit) hash, with the hashes.

    A cursor is the hash of the next element to return: any call returns the elements whose
    hash is at least the cursor, in hash order, so an element present for the whole scan is
    returned exactly once however the collection changes in between (Redis only promises at
    least once). The order is kept in ``Entry.cache`` until the collection changes
    (``ObjectStore.mark`` clears it)."""

    __slots__ = ("elements", "hashes")

    def __init__(self, elements: Iterable[bytes]) -> None:
        self.elements = sorted(elements, key=_order)
        self.hashes = array("Q", map(_order, self.elements))

    def page(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """About ``count`` elements from ``cursor`` on, and the next cursor (0: done)."""
        hashes = self.hashes
        n = len(hashes)
        i = bisect_left(hashes, cursor)
        j = min(i + count, n)
        while 0 < j < n and hashes[j] == hashes[j - 1]:
            j += 1  # equal hashes go together: the next cursor cannot split them
        return (hashes[j] if j < n else 0), self.elements[i:j]


def scan_page(
    e: Entry | None, members: Callable[[Any], Iterable[bytes]], cursor: int, count: int
) -> tuple[int, list[bytes]]:
    """One page of HSCAN / SSCAN / ZSCAN over ``e``'s object (``members`` lists its fields or
    members): everything at once for small collections, else by hash order."""
    if e is None:
        return 0, []
    obj = e.obj
    if len(obj) <= SMALL:
        return 0, list(members(obj))
    order = e.cache
    if order.__class__ is not ScanOrder:
        order = e.cache = ScanOrder(members(obj))
    return order.page(cursor, count)
