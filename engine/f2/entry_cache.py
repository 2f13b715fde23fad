"""The cold index's entry cache: (chunk, tag) pair -> its chain's cold-log address, in memory.

A two-way set-associative array of 6-byte slots (a bytearray, so a slot is read and written in
one step under the GIL): set = pair % sets, and each slot holds a 48-bit word, the pair's
*check* (pair // sets + 1, exact, so a slot answers only for its own pair) above the address.
The address is kept as (address / 8) - base + 1 (records are 8-byte aligned; 0 means "no live
chain"), relative to a *base* at or below the cold log's begin address, in the bits the check
leaves (36 at the bench's sizes: a window of 512 GiB of cold log). An address beyond the window
empties the cache and moves the base up to the cold begin address; one still beyond it (a live
cold log larger than the window) is not cached. 8-byte slots of the whole address held three
quarters as many pairs in the same memory.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

SLOT_BYTES = 6
_WAYS = struct.Struct("<IHIH")  # a set: both ways' words, low 32 bits then high 16
_LOW = (1 << 32) - 1
_WORD_BITS = 48
_MIN_ADDRESS_BITS = 24  # a window under 128 MiB of cold log: too small a cache to matter


class EntryCache:
    """At most ``nbytes`` of slots for the pairs below ``ids``; ``begin`` gives the cold log's
    begin address. Lookups take no lock but ``lock`` (the cold index's) when a hit in the
    second way moves the pair to the first; ``put`` and ``clear`` need it held."""

    def __init__(
        self, nbytes: int, ids: int, begin: Callable[[], int], lock: threading.Lock
    ) -> None:
        slots = min(nbytes // SLOT_BYTES, ids) & ~1
        self._sets = max(1, slots >> 1)
        self._address_bits = _WORD_BITS - (ids // self._sets + 1).bit_length()
        if self._address_bits < _MIN_ADDRESS_BITS:
            slots, self._address_bits = 0, _MIN_ADDRESS_BITS
        self._window = (1 << self._address_bits) - 1
        self._begin = begin
        self._lock = lock
        self.hits = 0
        # one tuple, so that a lookup never decodes one array's slot with another's base
        self._state = (bytearray(SLOT_BYTES * slots), 0)

    @property
    def nbytes(self) -> int:
        return len(self._state[0])

    @property
    def window(self) -> int:
        """Bytes of cold log above the base whose addresses fit a slot."""
        return self._window << 3

    def _set(self, pair: int) -> tuple[int, int]:
        """(the byte offset of ``pair``'s set, its check)."""
        check, i = divmod(pair, self._sets)
        return 2 * SLOT_BYTES * i, check + 1

    def get(self, pair: int) -> int:
        """The address cached for ``pair`` (0: no live chain), or -1."""
        slots, base = self._state
        if not slots:
            return -1
        i, check = self._set(pair)
        ways = _WAYS.unpack_from(slots, i)
        shift = self._address_bits
        value = ways[1] << 32 | ways[0]
        if value >> shift != check:
            value = ways[3] << 32 | ways[2]
            if value >> shift != check:
                return -1
            with self._lock:  # a put under it may be moving either word
                if self._state[0] is slots and _WAYS.unpack_from(slots, i) == ways:
                    _WAYS.pack_into(slots, i, ways[2], ways[3], ways[0], ways[1])
        self.hits += 1
        value &= self._window
        return (value - 1 + base) << 3 if value else 0

    def put(self, pair: int, address: int) -> None:
        """Cache ``pair``'s chain at ``address`` (0 or below the cold begin address: none) in
        the first way of its set; the first way's pair moves to the second, unless it is this
        one."""
        slots, base = self._state
        if not slots:
            return
        unit = address >> 3
        value = unit - base + 1 if address and unit >= base else 0
        if value > self._window:
            begin = self._begin() >> 3
            if begin > base:  # the window ran out: start again from the cold begin address
                slots, base = self._state = bytearray(len(slots)), begin
                value = unit - base + 1
            if value > self._window:
                value = -1  # not cacheable: the pair must not keep an older address
        i, check = self._set(pair)
        ways = _WAYS.unpack_from(slots, i)
        shift = self._address_bits
        first, second = ways[1] << 32 | ways[0], ways[3] << 32 | ways[2]
        mine = first >> shift == check
        if second >> shift == check:
            second = 0
        if value < 0:
            if mine:
                first, second = second, 0
        else:
            if not mine:
                second = first
            first = check << shift | value
        _WAYS.pack_into(slots, i, first & _LOW, first >> 32, second & _LOW, second >> 32)

    def clear(self) -> None:
        """Forget every pair (a rebuild or a growth changed the chains)."""
        self._state = (bytearray(len(self._state[0])), self._begin() >> 3)
