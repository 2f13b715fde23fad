"""YCSB-style workloads on the engine, beside a plain dict and Django's LocMemCache.

Workloads A (50% read / 50% update), B (95/5), C (read only), uniform and zipfian (theta 0.99),
8-byte keys and 100-byte values, one thread. Prints ops/s for each store and the ratios, the
index bytes per key and the process RSS growth per key of a load of N keys.

    python bench/engine.py [--keys 1000000] [--ops 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate

VALUE = b"v" * 100


def zipf_sampler(n: int, theta: float, rng: random.Random) -> Callable[[int], list[int]]:
    """Zipfian ranks over n items (YCSB's generator, scrambled so hot keys are spread out)."""
    weights = [1.0 / (i + 1) ** theta for i in range(n)]
    cum = list(accumulate(weights))
    total = cum[-1]
    perm = list(range(n))
    rng.shuffle(perm)

    def sample(k: int) -> list[int]:
        return [perm[bisect_left(cum, rng.random() * total)] for _ in range(k)]

    return sample


def make_keys(n: int) -> list[bytes]:
    return [i.to_bytes(8, "big") for i in range(n)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Adapter:
    name = ""

    def load(self, key: bytes, value: bytes) -> None: ...
    def read(self, key: bytes) -> object: ...
    def update(self, key: bytes, value: bytes) -> None: ...


def run_workload(
    get: Callable[[bytes], object],
    put: Callable[[bytes, bytes], None],
    keys: list[bytes],
    idx: list[int],
    ops: list[bool],
) -> float:
    t0 = time.perf_counter()
    for i, is_read in zip(idx, ops, strict=True):
        if is_read:
            get(keys[i])
        else:
            put(keys[i], VALUE)
    return len(idx) / (time.perf_counter() - t0)


def stores(
    n: int,
) -> dict[
    str, tuple[Callable[[bytes], object], Callable[[bytes, bytes], None], Callable[[], None]]
]:
    from faster_backend import FasterKV

    # Sized for the data set, as FASTER users size the index up front (about 4 keys per
    # bucket); growth is a rare event whose cost the memory probe's load shows separately.
    kv = FasterKV(memory_size="1GiB", index_size=1 << max(10, (n // 4).bit_length()))
    d: dict[bytes, bytes] = {}
    out = {
        "faster": (kv.read, kv.upsert, kv.close),
        "dict": (d.get, d.__setitem__, d.clear),
    }
    try:
        import django
        from django.conf import settings

        if not settings.configured:
            settings.configure(
                CACHES={
                    "default": {
                        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                        "OPTIONS": {"MAX_ENTRIES": n * 2},
                    }
                }
            )
            django.setup()
        from django.core.cache import caches

        lm = caches["default"]
        # Django cache keys are str: give LocMemCache its natural key type.
        skeys = {k: k.hex() for k in make_keys(n)}
        out["locmem"] = (
            lambda k: lm.get(skeys[k]),
            lambda k, v: lm.set(skeys[k], v),
            lm.clear,
        )
    except ImportError:
        pass
    return out


def memory_probe(n: int) -> None:
    """Child process: load n keys and report RSS growth and index bytes per key."""
    from faster_backend import FasterKV

    keys = make_keys(n)
    gc.collect()
    base = rss_bytes()
    kv = FasterKV(memory_size="1GiB", index_size=1 << 10)
    t0 = time.perf_counter()
    for k in keys:
        kv.upsert(k, VALUE)
    load_rate = n / (time.perf_counter() - t0)
    gc.collect()
    grown = rss_bytes() - base
    st = kv.stats()
    # The index at its default load factor: as many keys as a fixed table holds before it grows.
    buckets = 1 << 15
    at_load = int(buckets * kv.index_load_factor)
    probe = FasterKV(memory_size="1GiB", index_size=buckets)
    for k in keys[:at_load]:
        probe.upsert(k, VALUE)
    ix = probe.stats()
    assert ix["index_buckets"] == buckets
    print(
        f"{grown / n:.1f} {st['index_bytes'] / n:.1f} {st['index_buckets']}"
        f" {ix['index_bytes'] / at_load:.1f} {kv.index_load_factor} {load_rate:.0f}"
        f" {st['index_grows']}"
    )


def dict_memory_probe(n: int) -> None:
    keys = make_keys(n)
    gc.collect()
    base = rss_bytes()
    d = {}
    for k in keys:
        d[k] = bytes(bytearray(VALUE))  # a distinct object per key, as a cache holds
    gc.collect()
    print(f"{(rss_bytes() - base) / n:.1f} 0 0 0 0 0 0")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--probe", choices=["faster", "dict"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe == "faster":
        memory_probe(args.keys)
        return
    if args.probe == "dict":
        dict_memory_probe(args.keys)
        return

    n = args.keys
    keys = make_keys(n)
    rng = random.Random(42)
    print(
        f"{n:,} keys of 8 bytes, 100-byte values, {args.ops:,} operations per workload, one thread"
    )
    st = stores(n)
    results: dict[str, dict[str, float]] = {name: {} for name in st}
    for name, (_get, put, _) in st.items():
        t0 = time.perf_counter()
        for k in keys:
            put(k, VALUE)
        results[name]["load"] = n / (time.perf_counter() - t0)
    zipf = zipf_sampler(n, 0.99, rng)
    for dist in ("uniform", "zipfian"):
        idx = [rng.randrange(n) for _ in range(args.ops)] if dist == "uniform" else zipf(args.ops)
        for wl, read_frac in (("A", 0.5), ("B", 0.95), ("C", 1.0)):
            ops = [rng.random() < read_frac for _ in range(args.ops)]
            for name, (get, put, _) in st.items():
                results[name][f"{wl}-{dist}"] = run_workload(get, put, keys, idx, ops)
    for _, _, close in st.values():
        close()

    names = list(st)
    cols = list(results[names[0]])
    print(
        f"{'workload':<12}"
        + "".join(f"{n_:>14}" for n_ in names)
        + "".join(f"{'faster/' + n_:>16}" for n_ in names[1:])
    )
    for c in cols:
        row = f"{c:<12}" + "".join(f"{results[n_][c]:>14,.0f}" for n_ in names)
        row += "".join(f"{results['faster'][c] / results[n_][c]:>16.2f}x" for n_ in names[1:])
        print(row)

    def probe(kind: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, __file__, "--keys", str(n), "--probe", kind],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()

    f_rss, f_ix, buckets, ix_at_load, load_factor, grow_rate, grows = probe("faster")
    d_rss = probe("dict")[0]
    print(
        f"memory for {n:,} keys: FasterKV RSS {f_rss} B/key"
        f" (index {f_ix} B/key, {buckets} buckets); dict of bytes RSS {d_rss} B/key;"
        f" ratio {float(f_rss) / float(d_rss):.2f}x"
    )
    print(
        f"index at its default load factor ({load_factor} keys per bucket, just before it"
        f" doubles): {ix_at_load} B/key"
    )
    print(
        f"load from a 1024-bucket index that grows {grows} times on the way:"
        f" {float(grow_rate):,.0f} ops/s"
    )


if __name__ == "__main__":
    main()
