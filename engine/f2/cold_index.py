"""F2's cold index: a two-level hash index in a flat file of fixed-size chunks.

Level one is arithmetic: the low bits of a key's hash pick a chunk. Level two is the chunk, 256
bytes of 4 hash buckets of 8 u64 entries (FASTER's cold index geometry: 32 entries in 256
bytes), at a fixed place in the file. Hash bits 40-44 pick the entry: they are its tag, so a
lookup needs no tag search and a bucket never overflows. An entry holds the cold-log address
of the newest record of its chain (bits 0-47; 0 = empty); records on a chain are compared by
key. Only the one 8-byte entry a lookup needs is read (``pread``; with ``direct``, the store's
device being O_DIRECT, the file is O_DIRECT too and a lookup reads the entry's 4 KiB sector, so
no page cache keeps the index in memory behind the budget). So the index costs no process
memory beyond a bounded
entry cache: ``cache_bytes``, part of the store's memory budget, keeps the entries read or
written lately, so a lookup of a key read lately needs no ``pread`` for its entry: a
direct-mapped array of 8-byte words (the entry's number above the slot bits as a 16-bit tag,
the address below), written through by every update.

Because an entry's place depends on the key's hash alone, the index is a function of the cold
log: replaying the records of [cold begin, cold tail) in address order rebuilds it exactly (the
records' previous-address links were written by the same rule, or by a smaller index's, whose
chains hold the new entries' chains: ``grow``). So it needs no checkpoint of
its own. It is written in place while the store runs; at a clean close its checksums are
written and its header names the manifest it matches. Opening trusts it only if the header is
clean, names the manifest recovery chose and every block's checksum holds; otherwise (a crash,
corruption: logged with file and offset) it is rebuilt from the cold log, whose pages the
manifest has just verified. File layout::

    0       header (4096 B): magic "F2CIDX01" | version u32 | state u32 (0 in use, 1 clean) |
            n_chunks u64 | manifest seq u64 | cold begin u64 | cold tail u64 | blocks u64 |
            xxh3 of the preceding header bytes u64
    4096    n_chunks x 256 B of chunks (entry e of bucket b of chunk c at 4096 + 256c + 64b + 8e)
    after   blocks x u64: xxh3 of each 1 MiB block of the chunk region (valid when clean)
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from xxhash import xxh3_64_intdigest

from faster_backend.engine.checkpoint import _fsync_dir as fsync_dir
from faster_backend.engine.devices.direct_io import DIRECT_SECTOR_SIZE, DirectFile
from faster_backend.engine.record import INFO as _INFO
from faster_backend.engine.record import PREV_MASK, UNCOUNTED

log = logging.getLogger(__name__)

MAGIC = b"F2CIDX01"
VERSION = 1
CHUNK_BYTES = 256
BUCKETS_PER_CHUNK = 4
ENTRIES_PER_BUCKET = 8
HEADER_BYTES = 4096
BLOCK_BYTES = 1 << 20
ADDRESS_MASK = (1 << 48) - 1
IN_USE, CLEAN = 0, 1
_HEADER = struct.Struct("<8sIIQQQQQ")
_U64 = struct.Struct("<Q")
_EMPTY = bytes(CHUNK_BYTES)
_REBUILD_BATCH = 1 << 18  # entries gathered before they are written, during a rebuild
_RUN_BYTES = 1 << 20  # the most one read or write of a batch's sector run covers
_RUN_GAP = 4 * DIRECT_SECTOR_SIZE  # sectors in between that a run reads too, not skips


def _sector_runs(numbers: list[int]) -> Iterable[tuple[int, int, int]]:
    """Group sorted entry numbers into file runs of whole sectors: (start, end, how many of
    ``numbers`` it holds). Entries closer than ``_RUN_GAP`` share a run, up to ``_RUN_BYTES``."""
    sector = DIRECT_SECTOR_SIZE
    i = 0
    n = len(numbers)
    while i < n:
        first = HEADER_BYTES + (numbers[i] << 3)
        start = first - first % sector
        last = first
        j = i + 1
        while j < n:
            off = HEADER_BYTES + (numbers[j] << 3)
            if off - last >= _RUN_GAP or off + 8 - start > _RUN_BYTES:
                break
            last = off
            j += 1
        yield start, -(-(last + 8) // sector) * sector, j - i
        i = j


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
        self.cache_hits = 0
        self._set_geometry(n_chunks)
        self._open(path)
        # Readers and the writer touch single entries with pread/pwrite; the lock keeps a
        # reader from seeing half of an entry being written.
        self._lock = threading.Lock()
        # A compaction's entries (``batch``): sorted entry numbers, their addresses and which
        # changed; they are the truth for those entries until ``end_batch`` writes them.
        self._bnum = array("Q")
        self._baddr = array("Q")
        self._bset = bytearray()
        self.lookups = 0
        self.updates = 0
        self.rebuilds = 0
        self.growths = 0
        self.reads = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def _set_geometry(self, n_chunks: int) -> None:
        """Size everything that follows from the chunk count; the entry cache starts empty."""
        self.n_chunks = n_chunks
        self.mask = n_chunks - 1
        entries = n_chunks * BUCKETS_PER_CHUNK * ENTRIES_PER_BUCKET
        cache_bytes = self.cache_bytes
        slots = 1 << max(0, (cache_bytes // 8).bit_length() - 1) if cache_bytes >= 8 else 0
        slots = min(slots, entries)
        if slots and entries // slots >= 0xFFFF:
            slots = 0  # the tag would not fit: too small a cache to matter
        self._cache = array("Q", bytes(8 * slots))
        self._cmask = slots - 1
        self._cshift = slots.bit_length() - 1
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

    # -- entries -----------------------------------------------------------------------------

    def number(self, h: int) -> int:
        """The entry of a key with hash ``h``: its chunk (low bits) and tag (bits 40-44)."""
        return ((h & self.mask) << 5) | ((h >> 40) & 31)

    def find(self, h: int) -> int:
        """Address of the chain a key with hash ``h`` is on (0: no chain)."""
        self.lookups += 1
        number = self.number(h)
        cache = self._cache
        if cache:
            slot = number & self._cmask
            tag = (number >> self._cshift) + 1
            word = cache[slot]
            if word >> 48 == tag:
                self.cache_hits += 1
                return word & ADDRESS_MASK
        with self._lock:  # a fill under the lock: an update cannot slip in between
            number = self.number(h)  # (again: the index may have grown meanwhile)
            i = self._batched(number)
            if i >= 0:
                return self._baddr[i]
            data = self._pread(8, HEADER_BYTES + (number << 3))
            address = _U64.unpack(data)[0] & ADDRESS_MASK if len(data) == 8 else 0
            if cache:
                cache[slot] = tag << 48 | address
        self.reads += 1
        self.bytes_read += 8
        return address

    def _batched(self, number: int) -> int:
        """The position of entry ``number`` in the running batch, or -1."""
        bnum = self._bnum
        i = bisect_left(bnum, number)
        return i if i < len(bnum) and bnum[i] == number else -1

    def set(self, h: int, address: int, page: bytearray, off: int) -> None:
        """Point the chain of hash ``h`` at the record at ``address``, which lies at ``off`` in
        ``page``: its previous-address field is set to the chain's current head first, so a
        reader never follows a record whose link is not set yet. The caller serialises writers
        (the cold log's write lock). An entry of the running batch is written at its end."""
        self.updates += 1
        number = self.number(h)
        entry = HEADER_BYTES + (number << 3)
        cache = self._cache
        slot = number & self._cmask
        tag = (number >> self._cshift) + 1
        with self._lock:
            i = self._batched(number)
            word = cache[slot] if cache else 0
            if i >= 0:
                prev = self._baddr[i]
            elif word >> 48 == tag:
                prev = word & ADDRESS_MASK
            else:
                data = self._pread(8, entry)
                prev = _U64.unpack(data)[0] & ADDRESS_MASK if len(data) == 8 else 0
                self.reads += 1
                self.bytes_read += 8
            info = _INFO.unpack_from(page, off)[0]
            # cold records are always counted (engine/f2/counting.py): no uncounted bit
            _INFO.pack_into(page, off, (info & ~(PREV_MASK | UNCOUNTED)) | prev)
            if i >= 0:
                self._baddr[i] = address
                self._bset[i] = 1
            else:
                self._pwrite(_U64.pack(address), entry)
                self.bytes_written += 8
            if cache:
                cache[slot] = tag << 48 | address

    def begin_batch(self, hashes: Iterable[int]) -> None:
        """Read the entries of ``hashes`` (a compaction's keys) in runs of whole sectors in file
        order, and hold them until ``end_batch``: the compaction's lookups and updates of them
        then cost no I/O each (a read-modify-write of a sector per update, with O_DIRECT)."""
        numbers = sorted({self.number(h) for h in hashes})
        addrs = array("Q", bytes(8 * len(numbers)))
        unpack_from = _U64.unpack_from
        i = 0
        for start, end, count in _sector_runs(numbers):
            run = self._pread(end - start, start)
            self.reads += 1
            self.bytes_read += end - start
            for k in range(i, i + count):
                off = HEADER_BYTES + (numbers[k] << 3) - start
                addrs[k] = unpack_from(run, off)[0] & ADDRESS_MASK if off < len(run) else 0
            i += count
        with self._lock:
            self._bnum = array("Q", numbers)
            self._baddr = addrs
            self._bset = bytearray(len(numbers))

    def end_batch(self) -> None:
        """Write the batch's changed entries (sector runs in file order) and let it go."""
        bnum, baddr, bset = self._bnum, self._baddr, self._bset
        self._write_entries({bnum[k]: baddr[k] for k in range(len(bnum)) if bset[k]})
        with self._lock:  # the file has them now
            self._bnum = array("Q")
            self._baddr = array("Q")
            self._bset = bytearray()

    def _write_entries(self, entries: dict[int, int]) -> None:
        """Write ``entries`` (entry number -> address) in runs of whole sectors in file order
        (each run read, patched and written back). The caller is the only writer."""
        numbers = sorted(entries)
        pack_into = _U64.pack_into
        i = 0
        for start, end, count in _sector_runs(numbers):
            run = bytearray(self._pread(end - start, start))
            run.extend(bytes(end - start - len(run)))
            for number in numbers[i : i + count]:
                pack_into(run, HEADER_BYTES + (number << 3) - start, entries[number])
            self._pwrite(run, start)
            i += count
        self.bytes_written += 8 * len(entries)

    def chunk(self, number: int) -> bytes:
        """The 256 bytes of chunk ``number`` (with the running batch's entries)."""
        with self._lock:
            data = bytearray(self._pread(CHUNK_BYTES, HEADER_BYTES + number * CHUNK_BYTES))
            data.extend(_EMPTY[len(data) :])
            bnum = self._bnum
            i = bisect_left(bnum, number << 5)
            while i < len(bnum) and bnum[i] >> 5 == number:
                _U64.pack_into(data, (bnum[i] & 31) * 8, self._baddr[i])
                i += 1
        self.bytes_read += CHUNK_BYTES
        return bytes(data)

    # -- the file's life cycle ---------------------------------------------------------------

    def _growing_path(self) -> Path:
        return self.path.with_name(self.path.name + ".grow")

    def grow(self, factor: int) -> None:
        """Multiply the chunk count by ``factor`` (a power of two). The caller holds the cold
        log's write lock (no update, no batch); readers go on.

        Growing needs no cold log read. A key's new chunk is its old one plus a multiple of the
        old count, so its new entry's keys are a subset of its old entry's, whose chain holds
        all their records: every new entry starts as a copy of its old one (the chunk region
        ``factor`` times over). Updates then link each chain from its new entry, so chains
        shorten as the cold log is rewritten (hot-cold appends, cold-cold compaction). A
        rebuild from the cold log with the new count finds the same chains. The new file is
        written beside the old one and renamed over it."""
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"the cold index grows by a power of two, not {factor}")
        old_bytes = self.chunk_bytes
        tmp = self._growing_path()
        grown = ColdIndex(tmp, self.n_chunks * factor, 0, self.direct)
        try:
            os.ftruncate(grown._fd, 0)
            os.ftruncate(grown._fd, HEADER_BYTES + grown.chunk_bytes)
            for off in range(0, old_bytes, BLOCK_BYTES):
                block = self._pread(min(BLOCK_BYTES, old_bytes - off), HEADER_BYTES + off)
                if block.count(0) == len(block):
                    continue  # still a hole in the new file
                for copy in range(factor):
                    grown._pwrite(block, HEADER_BYTES + copy * old_bytes + off)
            grown._write_header(IN_USE, 0, 0, 0)
        except BaseException:
            grown.close()
            tmp.unlink(missing_ok=True)
            raise
        grown.close()
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        with self._lock:  # readers pick their entry under it
            self.close()
            self._set_geometry(self.n_chunks * factor)
            self._open(self.path)
        self.growths += 1
        self.bytes_read += old_bytes
        self.bytes_written += factor * old_bytes
        log.info("%s: F2 cold index grown to %d chunks", self.path, self.n_chunks)

    def open_for(
        self, seq: int, begin: int, tail: int, records: Callable[[], Iterable[tuple[int, int]]]
    ) -> None:
        """Make the file match manifest ``seq`` (cold log [begin, tail)), then mark it in use.

        ``records()`` yields (address, key hash) of the cold log's records in address order;
        it is replayed when the file cannot be trusted."""
        self._growing_path().unlink(missing_ok=True)  # a growth that a crash interrupted
        reason = self._check_clean(seq, begin, tail)
        if reason is not None:
            log.info("%s: rebuilding the F2 cold index from the cold log (%s)", self.path, reason)
            self.rebuild(records())
        self._write_header(IN_USE, 0, 0, 0)

    def create(self) -> None:
        """Start an empty index (a new store)."""
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, HEADER_BYTES + self.chunk_bytes)  # sparse: zeros cost no disk
        self._clear_cache()
        self._write_header(IN_USE, 0, 0, 0)
        fsync_dir(self.path.parent)

    def rebuild(self, records: Iterable[tuple[int, int]]) -> None:
        """Empty the index and set every entry from ``records`` (address order: the newest
        record of a chain wins)."""
        self.rebuilds += 1
        fd = self._fd
        with self._lock:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, HEADER_BYTES + self.chunk_bytes)
            self._clear_cache()
        batch: dict[int, int] = {}
        number = self.number
        for addr, h in records:
            batch[number(h)] = addr
            if len(batch) >= _REBUILD_BATCH:
                self._write_batch(batch)
        self._write_batch(batch)

    def _clear_cache(self) -> None:
        cache = self._cache
        if cache:
            self._cache = array("Q", bytes(8 * len(cache)))

    def _write_batch(self, batch: dict[int, int]) -> None:
        with self._lock:
            self._write_entries(batch)
        batch.clear()

    def _pwrite_buffered(self, data: bytes | bytearray, offset: int) -> None:
        os.pwrite(self._fd, data, offset)

    def close_clean(self, seq: int, begin: int, tail: int) -> None:
        """Write the checksums and a clean header naming manifest ``seq`` (cold log
        [begin, tail)); the next open then trusts the file without rebuilding it."""
        fd = self._fd
        sums = [
            xxh3_64_intdigest(self._block(i)) for i in range(self.n_blocks)
        ]
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
            log.warning("%s: not an F2 cold index of version %d at offset 0", self.path, VERSION)
            return "unknown format"
        if state != CLEAN:
            return "the store was not closed cleanly"
        if (n_chunks, h_seq, h_begin, h_tail, blocks) != (
            self.n_chunks, seq, begin, tail, self.n_blocks
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
            "cold_index_rebuilds": self.rebuilds,
            "cold_index_growths": self.growths,
            "cold_index_file_bytes": HEADER_BYTES + self.chunk_bytes + 8 * self.n_blocks,
            "cold_index_memory_bytes": 8 * len(self._cache),
            "cold_index_cache_hits": self.cache_hits,
        }
