"""Where F2's reads would be served on YCSB B under other caching policies: a model, no I/O.

bench/f2.py measures F2 beside the single log. This script asks what F2's memory could answer
at all, on the bench's own key stream and budget (zipfian 0.99, 5% updates, 124-byte records,
budget_for). It replays the stream against a model of F2's memory: a hot log ordered by writes,
whose newest part is in memory, whose mutable region takes updates in place, and whose oldest
fifth moves to the cold tier when it outgrows its size, and next to it a read cache. Each policy
reports the share of measured reads answered by the hot log's memory, by its part on the device,
by the read cache, and by the cold tier. Reads from the hot log's device part and from the cold
tier cost device reads. With the defaults the model lands within a point or two of the measured
run (docs/f2.md, "Steady state"). Then come the miss rates of an LRU cache (Che's approximation)
and of a perfect LFU cache of the same number of records.

Policies:
  second   F2 now: the read cache admits a record on its second read (a direct-mapped filter),
           FIFO eviction
  tinylfu  the read cache admits a record only if it was read more often than the record it
           evicts (exact counts, halved every 10 cache sizes of reads)
  copy     no read cache: a cold record read twice is copied to the hot log's tail
  wtinylfu a frequency-ordered read cache (W-TinyLFU, class WTinyLfu) over most of the budget,
           the hot log reduced to a write buffer in memory (no part on the device)

    python bench/f2_cache_model.py [--keys 1000000] [--warmup 2000000] [--ops 1000000]
"""

from __future__ import annotations

import argparse
import math
import random
from collections import OrderedDict

from f2 import budget_for

from engine import zipf_sampler

RECORD = 124  # header + 8-byte key + 100-byte value
MUTABLE = 0.6  # FasterKv's default mutable fraction of the in-memory log
COMPACTION = 0.2  # F2's hot-cold compaction fraction when docs/f2.md's figures were taken (0.4 now)


def replay(
    n: int, stream: list[int], updates: list[bool], warmup: int, policy: str,
    read_cache: float, entry_cache: float,
) -> dict[str, float]:
    budget = budget_for(n)
    hot_size = budget // RECORD  # bench/f2.py: hot_log_size = the budget
    ring = int(budget * read_cache * 7 / 8) // (RECORD + 8) if policy != "copy" else 0
    if policy == "wtinylfu":
        # the hot log is a write buffer, all in memory; the cache's frequency sketch costs
        # about 8 B a record (4 rows of 4-bit counters, 4 counters a record)
        hot_size = int(budget * (1 - read_cache - entry_cache)) // RECORD
        ring = int(budget * read_cache) // (RECORD + 16)
    hot_memory = int(budget * (1 - (read_cache if policy != "copy" else 0) - entry_cache))
    in_memory = hot_memory // RECORD
    mutable = int(in_memory * MUTABLE)
    newest = {}  # key -> position of its newest hot record
    tail = begin = 0

    def append(key: int) -> None:
        nonlocal tail, begin
        newest[key] = tail
        tail += 1
        if tail - begin > hot_size:
            begin += int((tail - begin) * COMPACTION)

    for key in range(n):  # the load
        append(key)
    cache: OrderedDict[int, None] = OrderedDict()  # oldest first
    lfu = WTinyLfu(ring if policy == "wtinylfu" else 0)
    seen: dict[int, int] = {}
    # the read cache's filter: 2 B a slot in 1/16 of it (without one, as big as the budget's)
    n_seen = max(1, int(budget * (read_cache or 1.0)) // 32)
    freq: dict[int, int] = {}
    counted = 0
    served = dict.fromkeys(("hot memory", "hot device", "read cache", "cold"), 0)
    for i, (key, update) in enumerate(zip(stream, updates, strict=True)):
        at = newest.get(key, -1)
        if update:
            if not (at >= begin and at >= tail - mutable):
                append(key)  # else updated in place
                cache.pop(key, None)
                lfu.forget(key)
            continue
        measured = i >= warmup
        if at >= begin:
            where = "hot memory" if at >= tail - in_memory else "hot device"
            served[where] += measured
            continue
        if policy == "wtinylfu":
            served[_wtinylfu_read(lfu, key)] += measured
            continue
        if policy == "tinylfu":
            freq[key] = freq.get(key, 0) + 1
            counted += 1
            if counted >= 10 * max(ring, 1):
                freq = {k: v >> 1 for k, v in freq.items() if v > 1}
                counted //= 2
        if key in cache:
            served["read cache"] += measured
            continue
        served["cold"] += measured
        if policy in ("second", "copy"):
            slot = hash((key, 17)) % n_seen
            if seen.get(slot) != key:
                seen[slot] = key
                continue
        if policy == "copy":
            append(key)
            continue
        if ring == 0:
            continue
        if len(cache) >= ring:
            victim = next(iter(cache))
            if policy == "tinylfu" and freq.get(key, 0) <= freq.get(victim, 0):
                continue
            cache.popitem(last=False)
        cache[key] = None
    reads = sum(served.values())
    return {k: v / reads for k, v in served.items()}


class WTinyLfu:
    """W-TinyLFU (Caffeine's policy): a 1% LRU window, then a segmented LRU main part (80%
    protected) that a record enters only if it was read more often than the main part's
    victim (exact counts, halved every 10 cache sizes of reads, standing in for the sketch)."""

    def __init__(self, records: int) -> None:
        self.window_cap = max(1, records // 100)
        self.main_cap = max(0, records - self.window_cap)
        self.protected_cap = self.main_cap * 4 // 5
        self.window: OrderedDict[int, None] = OrderedDict()
        self.probation: OrderedDict[int, None] = OrderedDict()
        self.protected: OrderedDict[int, None] = OrderedDict()
        self.freq: dict[int, int] = {}
        self.counted = 0

    def count(self, key: int) -> None:
        self.freq[key] = self.freq.get(key, 0) + 1
        self.counted += 1
        if self.counted >= 10 * (self.window_cap + self.main_cap):
            self.freq = {k: v >> 1 for k, v in self.freq.items() if v > 1}
            self.counted //= 2

    def hit(self, key: int) -> bool:
        if key in self.window:
            self.window.move_to_end(key)
        elif key in self.protected:
            self.protected.move_to_end(key)
        elif key in self.probation:
            del self.probation[key]
            self.protected[key] = None
            if len(self.protected) > self.protected_cap:
                demoted, _ = self.protected.popitem(last=False)
                self.probation[demoted] = None
        else:
            return False
        return True

    def admit(self, key: int) -> None:
        self.window[key] = None
        if len(self.window) <= self.window_cap:
            return
        candidate, _ = self.window.popitem(last=False)
        if len(self.probation) + len(self.protected) < self.main_cap:
            self.probation[candidate] = None
            return
        victims = self.probation or self.protected
        victim = next(iter(victims))
        if self.freq.get(candidate, 0) > self.freq.get(victim, 0):
            del victims[victim]
            self.probation[candidate] = None

    def forget(self, key: int) -> None:
        for part in (self.window, self.probation, self.protected):
            part.pop(key, None)


def _wtinylfu_read(lfu: WTinyLfu, key: int) -> str:
    """A read that missed the hot log: served by the cache, or a cold lookup it may admit."""
    lfu.count(key)
    if lfu.hit(key):
        return "read cache"
    lfu.admit(key)
    return "cold"


def lru_and_lfu_misses(n: int, records: int, theta: float = 0.99) -> tuple[float, float]:
    """Miss rates of an LRU (Che's approximation) and a perfect LFU cache of ``records``."""
    weights = [1.0 / (i + 1) ** theta for i in range(n)]
    total = sum(weights)
    p = [w / total for w in weights]
    lfu = 1.0 - sum(p[:records])
    # Che: the characteristic time T solves sum(1 - exp(-p T)) = records; bins of ranks keep
    # the bisection fast (p changes slowly within a bin).
    bins: list[tuple[float, int]] = []
    i = 0
    while i < n:
        j = min(n, max(i + 1, int(i * 1.01)))
        bins.append((sum(p[i:j]) / (j - i), j - i))
        i = j
    lo, hi = 1.0, 1e12
    for _ in range(100):
        t = math.sqrt(lo * hi)
        if sum(c * -math.expm1(-q * t) for q, c in bins) < records:
            lo = t
        else:
            hi = t
    hit = sum(c * q * -math.expm1(-q * lo) for q, c in bins)
    return 1.0 - hit, lfu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--warmup", type=int, default=2_000_000)
    ap.add_argument("--ops", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.keys
    rng = random.Random(7)  # bench/f2.py's stream
    stream = zipf_sampler(n, 0.99, rng)(args.warmup + args.ops)
    updates = [rng.random() < 0.05 for _ in range(args.warmup + args.ops)]
    print(f"YCSB B, {n:,} keys, {args.ops:,} reads and updates after {args.warmup:,};"
          " shares of the measured reads")
    for policy, read_cache, entry_cache in (
        ("second", 1 / 16, 3 / 8), ("second", 1 / 4, 3 / 8), ("second", 1 / 2, 1 / 4),
        ("tinylfu", 1 / 16, 3 / 8), ("tinylfu", 1 / 4, 3 / 8), ("tinylfu", 1 / 2, 1 / 4),
        ("copy", 0.0, 3 / 8),
        ("wtinylfu", 1 / 2, 3 / 8), ("wtinylfu", 1 / 2, 1 / 4),
    ):
        shares = replay(n, stream, updates, args.warmup, policy, read_cache, entry_cache)
        print(f"  {policy:8} read cache {read_cache:.3f}, entry cache {entry_cache:.3f}: "
              + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    budget = budget_for(n)
    index_bytes = 64 << max(4, (n // 6).bit_length())  # bench/f2.py's single log
    for label, records in (
        ("F2's hot log and read cache", int(budget * (1 - 3 / 8)) // RECORD),
        ("the single log's memory_size", max(1 << 20, budget - index_bytes) // RECORD),
    ):
        lru, lfu = lru_and_lfu_misses(n, records)
        print(f"  {label} ({records:,} records): LRU misses {lru:.1%}, perfect LFU {lfu:.1%}")


if __name__ == "__main__":
    main()
