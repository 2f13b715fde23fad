"""F2's cold index: a two-level hash index in a flat file of fixed-size chunks.

Level one is arithmetic: the low bits of a key's hash pick a chunk. Level two is the chunk, 256
bytes of 32 u64 entries at a fixed place in the file (FASTER's cold index geometry), searched
by tag as FASTER searches a hash bucket. Entries 0-30 are tagged: bits 48-61 hold a tag (hash
bits 40-53), bits 0-47 the cold-log address of the newest record of the chain of the chunk's
keys with that tag. Entry 31 is the chunk's *shared* entry: the chain of keys that found no
entry of their own (all 31 held live chains when they moved cold; rare at a size the store
keeps). A key's records are on its tag's chain, else on the shared chain, and its records on
the tag's chain are newer than those on the shared one, since a key goes to the shared chain
only while its tag has no entry with a live chain. So a cold lookup reads the chain of its own
key, not of every key whose hash shares a few bits with it, and a lookup of an absent key reads
no record at all (a 14-bit tag collision, 1 in about 500 per chunk of 30 keys, costs a record).
Records on a chain are compared by key anyway.

An entry whose address is 0 or below the cold log's begin address is *free* (its chain is
gone) and may be claimed by another tag; claims take the first free entry, so the empty ones
(all zero) are a suffix of the chunk. A record put on the shared chain has bit 61 of its
RecordInfo set (``ON_SHARED``: in the hot log that bit means uncounted, and cold records are
always counted), so that a rebuild puts it there again.

Only the chunk a lookup needs is read (``pread`` of 256 bytes; with ``direct``, the store's
device being O_DIRECT, the file is O_DIRECT too and a lookup reads the chunk's 4 KiB sector, so
no page cache keeps the index in memory behind the budget). So the index costs no process
memory beyond a bounded entry cache: ``cache_bytes``, part of the store's memory budget, maps a
(chunk, tag) pair to its chain's address, so a lookup of a key read lately needs no ``pread``:
a two-way set-associative array of 6-byte slots (engine/f2/entry_cache.py), written through by
every update; and a bit per chunk that says its shared chain is known to be empty.

Because a chain holds exactly the records of its keys (and its entry's place in the chunk does
not matter), the index is a function of the cold log: replaying the records of [cold begin,
cold tail) in address order rebuilds it (the records' previous-address links were written by
the same rule, or by a smaller index's, whose chains hold the new entries' chains: ``grow``; or
by format 1's, whose entry of 5 tag bits holds every chain of format 2 that shares them). So it
needs no checkpoint of its own. It is written in place while the store runs; at a clean close
its checksums are written and its header names the manifest it matches. Opening trusts it only
if the header is clean, names the manifest recovery chose and every block's checksum holds;
otherwise (a crash, corruption: logged with file and offset) it is rebuilt from the cold log,
whose pages the manifest has just verified. File layout::

    0       header (4096 B): magic "F2CIDX01" | version u32 | state u32 (0 in use, 1 clean) |
            n_chunks u64 | manifest seq u64 | cold begin u64 | cold tail u64 | blocks u64 |
            xxh3 of the preceding header bytes u64
    4096    n_chunks x 256 B of chunks (entry e of chunk c at 4096 + 256c + 8e)
    after   blocks x u64: xxh3 of each 1 MiB block of the chunk region (valid when clean)
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import islice
from pathlib import Path

from xxhash import xxh3_64_intdigest

from faster_backend.engine.checkpoint import _fsync_dir as fsync_dir
from faster_backend.engine.devices.direct_io import DIRECT_SECTOR_SIZE, DirectFile
from faster_backend.engine.f2.entry_cache import EntryCache
from faster_backend.engine.f2.pacing import NO_PACING, Pacer
from faster_backend.engine.record import INFO as _INFO
from faster_backend.engine.record import PREV_MASK, UNCOUNTED

log = logging.getLogger(__name__)

MAGIC = b"F2CIDX01"
VERSION = 2  # 1: an entry per 5 hash bits, no tags (its chains are rebuilt into format 2)
CHUNK_BYTES = 256
ENTRIES_PER_CHUNK = 32
SHARED = ENTRIES_PER_CHUNK - 1  # the shared entry's place in a chunk
TAG_SHIFT = 48
TAG_BITS = 14
TAG_MASK = (1 << TAG_BITS) - 1
HEADER_BYTES = 4096
BLOCK_BYTES = 1 << 20
ADDRESS_MASK = (1 << 48) - 1
ON_SHARED = UNCOUNTED  # a cold record's bit 61: it is on its chunk's shared chain
IN_USE, CLEAN = 0, 1
_HEADER = struct.Struct("<8sIIQQQQQ")
_U64 = struct.Struct("<Q")
CHUNK_WORDS = struct.Struct("<32Q")
_NO_SLOT = 0xFF
_EMPTY = bytes(CHUNK_BYTES)
_REBUILD_CHUNKS = 1 << 16  # chunks a rebuild keeps in memory before it writes them
_REHOME_MAX = 1 << 16  # shared tags a rebuild gives entries of their own, at most
_RUN_BYTES = 1 << 20  # the most one read or write of a batch's sector run covers
_RUN_GAP = 4 * DIRECT_SECTOR_SIZE  # sectors in between that a run reads too, not skips


class CrowdedChunkError(Exception):
    """A rebuild met more chains in a chunk than it has tagged entries (a format-1 index)."""


def _runs(numbers: Sequence[int], shift: int, size: int) -> Iterable[tuple[int, int, int]]:
    """Group item numbers in file order (an item of ``size`` bytes at ``HEADER_BYTES + (n <<
    shift)``; the items of one sector in any order) into file runs of whole sectors: (start,
    end, how many items it holds). Items closer than ``_RUN_GAP`` share a run, up to
    ``_RUN_BYTES``."""
    sector = DIRECT_SECTOR_SIZE
    i = 0
    n = len(numbers)
    while i < n:
        first = HEADER_BYTES + (numbers[i] << shift)
        start = first - first % sector
        last = first
        j = i + 1
        while j < n:
            off = HEADER_BYTES + (numbers[j] << shift)
            if off - last >= _RUN_GAP or off + size - start > _RUN_BYTES:
                break
            last = off
            j += 1
        yield start, -(-(last + size) // sector) * sector, j - i
        i = j


_SORT_PARTS_BITS = 6


def _sorted_pairs(
    hashes: Iterable[int], mask: int, pace: Pacer = NO_PACING
) -> Iterator[int]:
    """The (chunk, tag) pairs of ``hashes`` in order, with duplicates. They are sorted in up to
    64 parts by their top bits: a sorted list of all of them held an int object a key (about
    44 B), a part holds 1/64 of that at a time."""
    shift = max(0, (mask << TAG_BITS | TAG_MASK).bit_length() - _SORT_PARTS_BITS)
    parts = [array("Q") for _ in range(1 << _SORT_PARTS_BITS)]
    for h in hashes:
        pace()
        pair = (h & mask) << TAG_BITS | (h >> 40) & TAG_MASK
        parts[pair >> shift].append(pair)
    for k in range(len(parts)):
        ordered = sorted(parts[k])
        parts[k] = array("Q")  # freed before the next part is sorted
        yield from ordered


def _tags(chunk: bytes | bytearray) -> list[int]:
    """The tags of a chunk's 31 tagged entries (the top u16 of each little-endian u64)."""
    with memoryview(chunk) as view:
        return view.cast("H")[3 : 4 * SHARED : 4].tolist()


def _search(chunk: bytes | bytearray, tag: int) -> int:
    """The place of ``tag``'s entry in the chunk, or -1. The first match is right for tag 0
    too: the empty entries (all zero) are a suffix."""
    try:
        return _tags(chunk).index(tag)
    except ValueError:
        return -1


def _free_entries(words: list[int], begin: int) -> int:
    """A bit per tagged entry of a chunk (``words``) that is free: empty (the empty ones are a
    suffix), or its chain below ``begin``."""
    try:
        used = words.index(0, 0, SHARED)
    except ValueError:
        used = SHARED
    free = ((1 << SHARED) - 1) >> used << used
    for e in range(used):
        if words[e] & ADDRESS_MASK < begin:
            free |= 1 << e
    return free


def _claim(chunk: bytes | bytearray, begin: int) -> int:
    """The first free tagged entry of the chunk (empty, or its chain below ``begin``), or
    -1."""
    unpack_from = _U64.unpack_from
    for e in range(SHARED):
        address = unpack_from(chunk, 8 * e)[0] & ADDRESS_MASK
        if address < begin or not address:
            return e
    return -1


class ColdIndex:
    """Maps a key hash to the newest cold-log address of its chain, in the file ``path``."""

    def __init__(
        self, path: Path, n_chunks: int, cache_bytes: int = 0, direct: bool = False
    ) -> None:
        if n_chunks < 1 or n_chunks & (n_chunks - 1):
            raise ValueError(f"cold_index_chunks must be a power of two, got {n_chunks}")
        self.path = path
        self.direct = direct
        self.cache_bytes = cache_bytes
        # The cold log's begin address (set by ColdLog): chains below it are gone.
        self.log_begin: Callable[[], int] = lambda: 0
        # Readers and the writer touch chunks with pread/pwrite; the lock keeps a reader from
        # seeing half of an entry being written.
        self._lock = threading.Lock()
        self._set_geometry(n_chunks)
        self._open(path)
        self._end_batch_state()
        self.lookups = 0
        self.updates = 0
        self.overflows = 0
        self.rebuilds = 0
        self.growths = 0
        self.reads = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def _set_geometry(self, n_chunks: int) -> None:
        """Size everything that follows from the chunk count; the entry cache starts empty."""
        self.n_chunks = n_chunks
        self.mask = n_chunks - 1
        # keyed by pair, chunk << 14 | tag
        self._cache = EntryCache(
            self.cache_bytes, n_chunks << TAG_BITS, lambda: self.log_begin(), self._lock
        )
        # A bit a chunk: its shared chain is known to be empty (or gone), so a lookup that
        # did not find its key on its tag's chain need not read the chunk for it. Set by the
        # reads that see it so, cleared by an update of the shared entry.
        self._no_shared = bytearray((n_chunks + 7) >> 3)
        # What lookups read without the lock, in one tuple: a lookup must not take its chunk
        # from one geometry and its cached answer from another's (after a growth, chunk c of
        # the old count is another pair's chunk in the new one)
        self._unlocked = (self.mask, self._cache, self._no_shared)
        self.chunk_bytes = n_chunks * CHUNK_BYTES
        self.n_blocks = -(-self.chunk_bytes // BLOCK_BYTES)

    def _open(self, path: Path) -> None:
        self._direct = DirectFile(path) if self.direct else None
        if self._direct is not None:
            self._fd = self._direct.fd
            self._pread: Callable[[int, int], bytes] = self._direct.pread
            self._pwrite: Callable[[bytes | bytearray, int], None] = self._direct.pwrite
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pread = partial(os.pread, self._fd)
            self._pwrite = self._pwrite_buffered

    @property
    def cache_hits(self) -> int:
        return self._cache.hits

    # -- entries -----------------------------------------------------------------------------

    def chunk_of(self, h: int) -> int:
        return h & self.mask

    @staticmethod
    def tag_of(h: int) -> int:
        """A key's tag: hash bits 40-53 (format 1's entry was bits 40-44: a format-1 chain
        holds the chains of every tag with those bits)."""
        return (h >> 40) & TAG_MASK

    def _file_chunk(self, number: int) -> bytes:
        """Chunk ``number`` as the file has it."""
        data = self._pread(CHUNK_BYTES, HEADER_BYTES + number * CHUNK_BYTES)
        self.reads += 1
        self.bytes_read += CHUNK_BYTES
        return data if len(data) == CHUNK_BYTES else data + _EMPTY[len(data) :]

    def _batched(self, numbers: array[int], number: int) -> int:
        """The position of ``number`` in the sorted ``numbers`` (of the running batch), or -1."""
        i = bisect_left(numbers, number)
        return i if i < len(numbers) and numbers[i] == number else -1

    def find(self, h: int) -> tuple[int, int]:
        """(address of the chain of a key with hash ``h``'s tag, 0 if none; address of its
        chunk's shared chain, or -1 if this lookup does not know it: ``shared``)."""
        self.lookups += 1
        tag = (h >> 40) & TAG_MASK
        mask, cache, no_shared = self._unlocked
        number = h & mask
        address = cache.get((number << TAG_BITS) | tag)
        if address >= 0:
            return address, (0 if no_shared[number >> 3] >> (number & 7) & 1 else -1)
        with self._lock:  # a fill under the lock: an update cannot slip in between
            number = h & self.mask  # (again: the index may have grown meanwhile)
            pair = (number << TAG_BITS) | tag
            k = self._batched(self._bchunk, number)
            if k >= 0:
                i = self._batched(self._bpair, pair)
                if i >= 0:  # a compaction's own lookup: its updates will cache the pair
                    slot = self._bslot[i]
                    return (self._baddr[i] if slot != _NO_SLOT else 0), self._bshared[k]
            data = self._file_chunk(number)
            e = _search(data, tag)
            address = _U64.unpack_from(data, 8 * e)[0] & ADDRESS_MASK if e >= 0 else 0
            if k >= 0:  # the batch does not change this pair's entry, maybe the shared one
                return address, self._bshared[k]
            shared = self._shared_of(number, data)
            self._cache.put(pair, address)
        return address, shared

    def shared(self, h: int) -> int:
        """Address of the shared chain of the chunk of a key with hash ``h`` (0: none)."""
        mask, _, no_shared = self._unlocked
        number = h & mask
        if no_shared[number >> 3] >> (number & 7) & 1:
            return 0
        with self._lock:
            number = h & self.mask
            k = self._batched(self._bchunk, number)
            if k >= 0:
                return self._bshared[k]
            return self._shared_of(number, self._file_chunk(number))

    def _shared_of(self, number: int, data: bytes) -> int:
        """The shared entry's address in chunk ``number`` (``data``, from the file); notes a
        chain that is empty or gone. The caller holds the lock."""
        address: int = _U64.unpack_from(data, 8 * SHARED)[0] & ADDRESS_MASK
        if address < self.log_begin() or not address:
            self._no_shared[number >> 3] |= 1 << (number & 7)
        return address

    def _link(self, page: bytearray, off: int, prev: int, flag: int) -> None:
        info = _INFO.unpack_from(page, off)[0]
        # cold records are always counted (engine/f2/counting.py): bit 61 is ON_SHARED
        _INFO.pack_into(page, off, (info & ~(PREV_MASK | UNCOUNTED)) | prev | flag)

    def _overflow(self, number: int) -> None:
        """An update goes to chunk ``number``'s shared chain: before its entry changes, so
        that no reader takes the chain for empty after it."""
        self.overflows += 1
        self._no_shared[number >> 3] &= ~(1 << (number & 7)) & 0xFF

    def set(self, h: int, address: int, page: bytearray, off: int) -> None:
        """Point the chain of hash ``h`` at the record at ``address``, which lies at ``off`` in
        ``page``: its previous-address field is set to the chain's current head first, so a
        reader never follows a record whose link is not set yet. The chain is the tag's entry,
        else a free entry claimed for the tag, else the chunk's shared entry. The caller
        serialises writers (the cold log's write lock). A key of the running batch is written
        at its end (and a key outside it must not be in one of its chunks)."""
        self.updates += 1
        tag = (h >> 40) & TAG_MASK
        with self._lock:
            number = h & self.mask
            pair = (number << TAG_BITS) | tag
            k = self._batched(self._bchunk, number)
            if k >= 0:
                self._set_batched(k, pair, address, page, off)
                return
            data = self._file_chunk(number)
            e = _search(data, tag)
            prev = _U64.unpack_from(data, 8 * e)[0] & ADDRESS_MASK if e >= 0 else 0
            if not prev:  # no entry of the tag's (an empty one matches tag 0): claim one
                e = _claim(data, self.log_begin())
            if e < 0:
                e = SHARED
                prev = _U64.unpack_from(data, 8 * SHARED)[0] & ADDRESS_MASK
                self._overflow(number)
            self._link(page, off, prev, ON_SHARED if e == SHARED else 0)
            word = address if e == SHARED else tag << TAG_SHIFT | address
            self._pwrite(_U64.pack(word), HEADER_BYTES + number * CHUNK_BYTES + 8 * e)
            self.bytes_written += 8
            if e != SHARED:
                self._cache.put(pair, address)

    def _set_batched(self, k: int, pair: int, address: int, page: bytearray, off: int) -> None:
        """``set`` of a key of the running batch, whose chunk is its ``k``-th."""
        i = self._batched(self._bpair, pair)
        if i < 0:
            raise RuntimeError(
                f"{self.path}: an update of a key outside the running batch, in one of its"
                f" chunks ({pair >> TAG_BITS})"
            )
        self._set_at(i, k, address, page, off)

    def _set_at(self, i: int, k: int, address: int, page: bytearray, off: int) -> None:
        """``set`` of the running batch's ``i``-th pair, in its ``k``-th chunk (lock held)."""
        e = self._bslot[i]
        if e != _NO_SLOT:
            prev = self._baddr[i]
        else:
            free = self._bfree[k]
            prev = 0
            if free:
                e = (free & -free).bit_length() - 1  # the first free entry
                self._bfree[k] = free & ~(1 << e)
                self._bslot[i] = e
        if e == _NO_SLOT:
            self._overflow(self._bchunk[k])
            self._link(page, off, self._bshared[k], ON_SHARED)
            self._bshared[k] = address
            self._bshset[k] = 1
            return
        self._link(page, off, prev, 0)
        self._baddr[i] = address
        self._bset[i] = 1
        self._cache.put(self._bpair[i], address)

    def positions(self, hashes: Iterable[int], pace: Pacer = NO_PACING) -> array[int]:
        """The running batch's pair position of each of ``hashes`` (all in the batch), for
        ``find_at`` and ``set_at``: a compaction that looks up and updates its keys by
        position skips a search of the batch (and the entry cache) per step."""
        mask, pairs = self.mask, self._bpair
        out = array("I")
        hashes = iter(hashes)
        while part := list(islice(hashes, 256)):
            out.extend(
                [bisect_left(pairs, (h & mask) << TAG_BITS | h >> 40 & TAG_MASK) for h in part]
            )
            pace.pause()
        return out

    def find_at(self, i: int) -> tuple[int, int]:
        """``find`` of the running batch's ``i``-th pair (from ``positions``), for the
        compaction that runs the batch (the only writer of its entries)."""
        self.lookups += 1
        slot = self._bslot[i]
        return (self._baddr[i] if slot != _NO_SLOT else 0), self._bshared[self._bpchunk[i]]

    def set_at(self, i: int, address: int, page: bytearray, off: int) -> None:
        """``set`` of the running batch's ``i``-th pair (from ``positions``)."""
        self.updates += 1
        with self._lock:
            self._set_at(i, self._bpchunk[i], address, page, off)

    def begin_batch(self, hashes: Iterable[int], pace: Pacer = NO_PACING) -> None:
        """Read the chunks of ``hashes`` (a compaction's keys) in runs of whole sectors in file
        order, and hold what the compaction needs of them until ``end_batch``: each key's
        entry and chain, each chunk's free entries and shared chain (about 40 B a key). The
        compaction's lookups and updates of those keys then cost no I/O each (a
        read-modify-write of a sector per update, with O_DIRECT)."""
        mask = self.mask
        pairs = array("Q")
        chunks = array("Q")
        last = -1
        # sorted, then deduplicated into arrays: a set of a compaction's pairs and a list of
        # them beside it cost several times the arrays' memory while it ran
        for pair in _sorted_pairs(hashes, mask, pace):
            pace()
            if pair != last:
                pairs.append(pair)
                if not chunks or chunks[-1] != pair >> TAG_BITS:
                    chunks.append(pair >> TAG_BITS)
                last = pair
        n, m = len(pairs), len(chunks)
        slots = bytearray(b"\xff") * n
        addrs = array("Q", bytes(8 * n))
        pchunks = array("I", bytes(4 * n))
        frees = array("I", bytes(4 * m))
        shareds = array("Q", bytes(8 * m))
        begin = max(1, self.log_begin())
        i = k = 0
        for start, end, count in _runs(chunks, 8, CHUNK_BYTES):
            run = self._pread(end - start, start)
            self.reads += 1
            self.bytes_read += end - start
            if len(run) < end - start:  # past the end of a buffered file: empty chunks
                run += bytes(end - start - len(run))
            # a chunk's entries, and their tags (the top u16 of each), as slices of the run
            with memoryview(run) as view, view.cast("Q") as all_words, view.cast("H") as all_tags:
                for number in chunks[k : k + count]:
                    pace()
                    w = (HEADER_BYTES + (number << 8) - start) >> 3
                    words = all_words[w : w + ENTRIES_PER_CHUNK].tolist()
                    tags = all_tags[4 * w + 3 : 4 * (w + SHARED) : 4].tolist()
                    claims = False
                    held = 0  # the entries of the batch's tags: a tag's stays its own
                    while i < n and pairs[i] >> TAG_BITS == number:
                        pchunks[i] = k
                        tag = pairs[i] & TAG_MASK
                        e = tags.index(tag) if tag in tags else -1
                        if e >= 0 and words[e]:
                            slots[i] = e
                            addrs[i] = words[e] & ADDRESS_MASK
                            held |= 1 << e
                        else:
                            claims = True
                        i += 1
                    if claims:  # the chunk's free entries, for the pairs without one
                        frees[k] = _free_entries(words, begin) & ~held
                    shareds[k] = words[SHARED] & ADDRESS_MASK
                    k += 1
        with self._lock:
            self._bpair = pairs
            self._bslot = slots
            self._baddr = addrs
            self._bset = bytearray(n)
            self._bchunk = chunks
            self._bpchunk = pchunks
            self._bfree = frees
            self._bshared = shareds
            self._bshset = bytearray(m)

    def end_batch(self, pace: Pacer = NO_PACING) -> None:
        """Write the batch's changed entries (sector runs in file order) and let it go."""
        pairs, slots, addrs, changed = self._bpair, self._bslot, self._baddr, self._bset
        chunks, shareds, shared_set = self._bchunk, self._bshared, self._bshset
        # entry numbers (chunk * 32 + entry) and words, in chunk order (enough for the runs:
        # a chunk lies in one sector)
        numbers, words = array("Q"), array("Q")
        i, n = 0, len(pairs)
        for k, number in enumerate(chunks):
            pace()
            while i < n and pairs[i] >> TAG_BITS == number:
                if changed[i]:
                    numbers.append(number << 5 | slots[i])
                    words.append((pairs[i] & TAG_MASK) << TAG_SHIFT | addrs[i])
                i += 1
            if shared_set[k]:
                numbers.append(number << 5 | SHARED)
                words.append(shareds[k])
        self._write_entries(numbers, words, pace)
        with self._lock:  # the file has them now
            self._end_batch_state()

    def _end_batch_state(self) -> None:
        # A compaction's keys (``batch``): sorted (chunk, tag) pairs, each one's entry in its
        # chunk (or _NO_SLOT), chain and whether it changed; their sorted chunks, each one's
        # free entries, shared chain and whether it changed. They are the truth for those
        # entries until ``end_batch`` writes them.
        self._bpair = array("Q")
        self._bslot = bytearray()
        self._baddr = array("Q")
        self._bset = bytearray()
        self._bchunk = array("Q")
        self._bpchunk = array("I")  # by pair: its chunk's position
        self._bfree = array("I")
        self._bshared = array("Q")
        self._bshset = bytearray()

    def _write_entries(self, numbers: array[int], words: array[int], pace: Pacer) -> None:
        """Write ``words[i]`` to entry ``numbers[i]`` (chunk * 32 + entry; in chunk order) in
        runs of whole sectors in file order (each run read, patched and written back). The
        caller is the only writer."""
        pack_into = _U64.pack_into
        i = 0
        for start, end, count in _runs(numbers, 3, 8):
            run = bytearray(self._pread(end - start, start))
            run.extend(bytes(end - start - len(run)))
            for j in range(i, i + count):
                pace()
                pack_into(run, HEADER_BYTES + (numbers[j] << 3) - start, words[j])
            self._pwrite(run, start)
            self.bytes_written += end - start
            i += count

    def _write_chunks(self, chunks: Mapping[int, bytes | bytearray]) -> None:
        """Write ``chunks`` (number -> 256 bytes) in runs of whole sectors in file order (each
        run read, patched and written back). The caller is the only writer."""
        numbers = sorted(chunks)
        i = 0
        for start, end, count in _runs(numbers, 8, CHUNK_BYTES):
            run = bytearray(self._pread(end - start, start))
            run.extend(bytes(end - start - len(run)))
            for number in numbers[i : i + count]:
                off = HEADER_BYTES + number * CHUNK_BYTES - start
                run[off : off + CHUNK_BYTES] = chunks[number]
            self._pwrite(run, start)
            self.bytes_written += end - start
            i += count

    def chunk(self, number: int) -> bytes:
        """The 256 bytes of chunk ``number`` (with the running batch's entries)."""
        with self._lock:
            data = bytearray(self._file_chunk(number))
            k = self._batched(self._bchunk, number)
            if k >= 0:
                pairs = self._bpair
                i = bisect_left(pairs, number << TAG_BITS)
                while i < len(pairs) and pairs[i] >> TAG_BITS == number:
                    if self._bslot[i] != _NO_SLOT:
                        word = (pairs[i] & TAG_MASK) << TAG_SHIFT | self._baddr[i]
                        _U64.pack_into(data, 8 * self._bslot[i], word)
                    i += 1
                _U64.pack_into(data, 8 * SHARED, self._bshared[k])
        return bytes(data)

    # -- the file's life cycle ---------------------------------------------------------------

    def _growing_path(self) -> Path:
        return self.path.with_name(self.path.name + ".grow")

    def grow(self, factor: int, records: Iterable[tuple[int, int, bool]]) -> None:
        """Multiply the chunk count by ``factor`` (a power of two), rebuilding the index from
        ``records`` (as ``rebuild``'s: the cold log, read once in address order). The caller
        holds the cold log's write lock (no update, no batch); readers go on.

        A key's new chunk is its old one plus a multiple of the old count, so the chain of its
        new (chunk, tag) pair is a part of its old pair's: the records' links, set with the old
        count, still reach every record of the new pair, past those of the keys that went to
        the other new chunks (compared by key). Updates then link each chain from its new
        chunk, and chains shorten as the cold log is rewritten (hot-cold appends, cold-cold
        compaction). Each new chunk holds only its own pairs, so growth frees entries where
        chunks were full. The new file is written beside the old one and renamed over it."""
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"the cold index grows by a power of two, not {factor}")
        tmp = self._growing_path()
        grown = ColdIndex(tmp, self.n_chunks * factor, 0, self.direct)
        try:
            grown.rebuild(records)
            grown._write_header(IN_USE, 0, 0, 0)
        except BaseException:
            grown.close()
            tmp.unlink(missing_ok=True)
            raise
        grown.close()
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        with self._lock:  # readers pick their chunk under it
            self.close()
            self._set_geometry(self.n_chunks * factor)
            self._open(self.path)
        self.growths += 1
        self.bytes_read += grown.bytes_read
        self.bytes_written += grown.bytes_written
        log.info("%s: F2 cold index grown to %d chunks", self.path, self.n_chunks)

    def open_for(
        self,
        seq: int,
        begin: int,
        tail: int,
        records: Callable[[], Iterable[tuple[int, int, bool]]],
    ) -> None:
        """Make the file match manifest ``seq`` (cold log [begin, tail)), then mark it in use.

        ``records()`` yields (address, key hash, on the shared chain) of the cold log's records
        in address order; it is replayed when the file cannot be trusted. A rebuild may double
        the chunk count (``CrowdedChunkError``): the caller names the new count in a manifest."""
        self._growing_path().unlink(missing_ok=True)  # a growth that a crash interrupted
        reason = self._check_clean(seq, begin, tail)
        if reason is not None:
            log.info("%s: rebuilding the F2 cold index from the cold log (%s)", self.path, reason)
            while True:
                try:
                    self.rebuild(records())
                    break
                except CrowdedChunkError as crowded:
                    log.info("%s: %s; rebuilding with twice the chunks", self.path, crowded)
                    with self._lock:
                        self._set_geometry(self.n_chunks * 2)
        self._write_header(IN_USE, 0, 0, 0)

    def create(self) -> None:
        """Start an empty index (a new store)."""
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, HEADER_BYTES + self.chunk_bytes)  # sparse: zeros cost no disk
        self._clear_cache()
        self._write_header(IN_USE, 0, 0, 0)
        fsync_dir(self.path.parent)

    def rebuild(self, records: Iterable[tuple[int, int, bool]]) -> None:
        """Empty the index and set every entry from ``records`` (address, key hash, on the
        shared chain), in address order: the newest record of a chain wins. Raises
        ``CrowdedChunkError`` if a chunk has more tags than entries (only a format-1 cold log
        can: a format-2 one had them all in the chunk at once).

        Then a tag whose keys are only on the shared chain gets an entry of its own if its
        chunk has one free (after a growth most have): it points at the tag's newest shared
        record, whose links reach every older shared record, so its keys' lookups read their
        own record first. Keys that went shared before their tag had a live entry are older
        there than on the tag's chain, which is what the lookup's order needs."""
        fd = self._fd
        with self._lock:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, HEADER_BYTES + self.chunk_bytes)
            self._clear_cache()
        chunks: dict[int, bytearray] = {}
        written = False  # chunks kept in memory were written: read them back when met again
        mask = self.mask
        unpack_from, pack_into = _U64.unpack_from, _U64.pack_into
        rehome: dict[int, int] = {}  # (chunk, tag) -> its newest shared record
        for address, h, on_shared in records:
            number = h & mask
            chunk = chunks.get(number)
            if chunk is None:
                if len(chunks) >= _REBUILD_CHUNKS:
                    self._write_rebuilt(chunks)
                    written = True
                chunk = chunks[number] = (
                    bytearray(self._file_chunk(number)) if written else bytearray(_EMPTY)
                )
            if on_shared:
                pack_into(chunk, 8 * SHARED, address)
                if len(rehome) < _REHOME_MAX:
                    rehome[number << TAG_BITS | (h >> 40) & TAG_MASK] = address
                continue
            tag = (h >> 40) & TAG_MASK
            e = _search(chunk, tag)
            if e < 0 or not unpack_from(chunk, 8 * e)[0]:
                e = _claim(chunk, 1)
                if e < 0:
                    raise CrowdedChunkError(
                        f"chunk {number} of {self.n_chunks} has more than {SHARED} chains"
                    )
            pack_into(chunk, 8 * e, tag << TAG_SHIFT | address)
        for pair, address in sorted(rehome.items()):
            number, tag = pair >> TAG_BITS, pair & TAG_MASK
            chunk = chunks.get(number)
            if chunk is None:
                chunk = chunks[number] = bytearray(self._file_chunk(number))
            e = _search(chunk, tag)
            if e >= 0 and unpack_from(chunk, 8 * e)[0]:
                continue  # the tag's keys went on to a chain of its own later
            e = _claim(chunk, 1)
            if e >= 0:
                pack_into(chunk, 8 * e, tag << TAG_SHIFT | address)
        self._write_rebuilt(chunks)
        self.rebuilds += 1

    def _write_rebuilt(self, chunks: dict[int, bytearray]) -> None:
        with self._lock:
            self._write_chunks(chunks)
        chunks.clear()

    def _clear_cache(self) -> None:
        self._cache.clear()
        self._no_shared[:] = bytes(len(self._no_shared))  # in place: ``_unlocked`` holds it

    def _pwrite_buffered(self, data: bytes | bytearray, offset: int) -> None:
        os.pwrite(self._fd, data, offset)

    def close_clean(self, seq: int, begin: int, tail: int) -> None:
        """Write the checksums and a clean header naming manifest ``seq`` (cold log
        [begin, tail)); the next open then trusts the file without rebuilding it."""
        fd = self._fd
        sums = [xxh3_64_intdigest(self._block(i)) for i in range(self.n_blocks)]
        self._pwrite(struct.pack(f"<{len(sums)}Q", *sums), HEADER_BYTES + self.chunk_bytes)
        self.bytes_written += 8 * len(sums)
        os.fsync(fd)
        self._write_header(CLEAN, seq, begin, tail)

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _block(self, i: int) -> bytes:
        start = i * BLOCK_BYTES
        size = min(BLOCK_BYTES, self.chunk_bytes - start)
        data = self._pread(size, HEADER_BYTES + start)
        return data + bytes(size - len(data))

    def _write_header(self, state: int, seq: int, begin: int, tail: int) -> None:
        head = _HEADER.pack(MAGIC, VERSION, state, self.n_chunks, seq, begin, tail, self.n_blocks)
        self._pwrite(head + _U64.pack(xxh3_64_intdigest(head)), 0)
        os.fsync(self._fd)  # in use is durable before the first entry changes

    def _check_clean(self, seq: int, begin: int, tail: int) -> str | None:
        """None if the file is a clean index of manifest ``seq``, else why it is not (a
        corruption is logged as a warning with the file and offset)."""
        raw = self._pread(_HEADER.size + 8, 0)
        if len(raw) < _HEADER.size + 8:
            return "no header"
        head = raw[: _HEADER.size]
        if xxh3_64_intdigest(head) != _U64.unpack_from(raw, _HEADER.size)[0]:
            log.warning("%s: corrupt F2 cold index header at offset 0 (checksum)", self.path)
            return "corrupt header"
        magic, version, state, n_chunks, h_seq, h_begin, h_tail, blocks = _HEADER.unpack(head)
        if magic != MAGIC or version != VERSION:
            if magic == MAGIC and version == 1:
                return "format 1"  # rebuilt into this format: its chains hold format 2's
            log.warning("%s: not an F2 cold index of version %d at offset 0", self.path, VERSION)
            return "unknown format"
        if state != CLEAN:
            return "the store was not closed cleanly"
        if (n_chunks, h_seq, h_begin, h_tail, blocks) != (
            self.n_chunks,
            seq,
            begin,
            tail,
            self.n_blocks,
        ):
            return f"it matches manifest {h_seq}, recovery chose {seq}"
        sums_off = HEADER_BYTES + self.chunk_bytes
        raw_sums = self._pread(8 * blocks, sums_off)
        if len(raw_sums) != 8 * blocks:
            log.warning("%s: F2 cold index checksums truncated at offset %d", self.path, sums_off)
            return "truncated checksums"
        sums = struct.unpack(f"<{blocks}Q", raw_sums)
        for i in range(blocks):
            if xxh3_64_intdigest(self._block(i)) != sums[i]:
                off = HEADER_BYTES + i * BLOCK_BYTES
                log.warning(
                    "%s: F2 cold index block at offset %d does not match its checksum",
                    self.path,
                    off,
                )
                return f"corrupt block at offset {off}"
        return None

    def stats(self) -> dict[str, int]:
        return {
            "cold_index_chunks": self.n_chunks,
            "cold_index_lookups": self.lookups,
            "cold_index_device_reads": self.reads,
            "cold_index_direct": int(self._direct is not None),
            "cold_index_updates": self.updates,
            "cold_index_overflows": self.overflows,
            "cold_index_rebuilds": self.rebuilds,
            "cold_index_growths": self.growths,
            "cold_index_file_bytes": HEADER_BYTES + self.chunk_bytes + 8 * self.n_blocks,
            "cold_index_memory_bytes": self._cache.nbytes + len(self._no_shared),
            "cold_index_cache_hits": self.cache_hits,
        }
