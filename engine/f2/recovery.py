"""F2 recovery: bring the cold log back to the manifest that fits the hot log.

The hot store has recovered first (FasterKv's own recovery: newest checkpoint plus commits, the
CPR prefix). Then the newest readable manifest whose hot-begin range holds the recovered hot
log's begin address is chosen, and the cold log is restored to [cold_begin, cold_tail) after
every page is checked against the manifest's checksums. The cold index follows from the cold
log (cold_index.py: trusted if it was closed cleanly at that manifest, else rebuilt).
"""

from __future__ import annotations

import logging

from xxhash import xxh3_64_intdigest

from faster_backend.engine.checkpoint import CorruptFileError
from faster_backend.engine.f2.manifest import Manifest, ManifestSlots
from faster_backend.engine.hybrid_log import HybridLog

log = logging.getLogger(__name__)


def choose_manifest(slots: ManifestSlots, hot_begin: int) -> Manifest:
    """The newest readable manifest that fits the hot log."""
    found, problems = slots.read()
    for path, m in found:
        if not m.fits(hot_begin):
            problems.append(
                f"{path}: made for a hot log beginning in [{m.hot_begin_low},"
                f" {m.hot_begin_high}], the recovered hot log begins at {hot_begin} (offset 0)"
            )
            continue
        if problems:
            log.warning("F2 recovery falls back to %s (seq %d): %s", path, m.seq, problems)
        return m
    raise CorruptFileError(
        slots.paths[0],
        0,
        "no usable F2 manifest (cold tier state) for the recovered hot log: "
        + "; ".join(problems or ["none found"]),
    )


def restore_cold_log(hlog: HybridLog, m: Manifest) -> None:
    """Verify the cold log's pages on the device against ``m`` and restore [begin, tail)."""
    device = hlog.device
    bits = hlog.page_bits
    sums = m.sums()
    begin, tail = m.cold_begin, m.cold_tail
    for page in range(begin >> bits, (tail >> bits) + 1):
        start = page << bits
        lo = max(start, begin) if page == begin >> bits else start
        end = min(start + hlog.page_size, tail)
        if end <= start:
            break
        if end == start + hlog.page_size:
            expected = sums.get(page)
            data = device.read(start, hlog.page_size)
        else:
            expected = m.cold_tail_sum
            data = device.read(start, end - start)
        if expected is None or xxh3_64_intdigest(data) != expected:
            seg = device.segment_size
            raise CorruptFileError(
                device.segment_path(lo // seg),
                lo % seg,
                f"cold log page {page} does not match the F2 manifest's checksum"
                if expected is not None
                else f"no checksum for cold log page {page} in the F2 manifest",
            )
    tail_page = tail >> bits
    buf = bytearray(hlog.page_size)
    start = tail_page << bits
    if tail > start:
        buf[: tail - start] = device.read(start, tail - start)
    hlog.restore(begin, tail, {tail_page: buf}, tail)
    hlog.page_sums = {p: s for p, s in sums.items() if p >= begin >> bits}
