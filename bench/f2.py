"""F2 (hot/cold tiers) beside a single-log FasterKV, both larger than memory, in one run.

YCSB A (50% read / 50% update) and B (95/5), zipfian (theta 0.99), 8-byte keys and 100-byte
values, memory budget 10% of the data, one thread. The budget covers everything F2 keeps in memory
except its hot index (hot keys only); the single log's index holds every key and takes its share
of the budget first (its pages get the rest, at least 1 MiB). Each store runs in its own child
process so that RSS per key is its own. After the load, ``--warmup`` operations of the workload
(default: as many as are measured) fill both stores' caches; then ``--ops`` are measured. Prints
ops/s, RSS, store memory and index bytes per key, device reads and bytes written per operation
(write amplification), and the F2/single ratios.

    python bench/f2.py [--keys 1000000] [--ops 300000] [--warmup N] [--workloads A,B]
                       [--malloc tuned] [--f2-memory 0.5] [--device file_direct|auto]

Both stores' files are O_DIRECT by default (``file_direct``; F2's cold index follows its
device), so that the budget bounds what is in memory: with buffered files (``--device auto``)
the kernel's page cache keeps the whole data set beyond the budget (outside the process's RSS),
a device read is a copy, and the run measures CPU per operation instead. ``--f2-memory`` gives
F2 that fraction of the budget (the single log keeps all of it), to see what F2's throughput is
at a given memory ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(__file__))
from engine import make_keys, rss_bytes, zipf_sampler

VALUE = b"v" * 100
# device reads of every file: the log's (single; F2's hot log), F2's cold log and cold index
_DEVICE_READS = ("device_reads", "cold_disk_reads", "cold_index_device_reads")
RECORD = 16 + 8 + 100  # header + key + value, as laid out in the log


def budget_for(n: int) -> int:
    """10% of the data of ``n`` keys (at least 4 MiB)."""
    return max(4 << 20, n * RECORD // 10)


def open_store(
    kind: str, directory: str | os.PathLike[str], n: int, device: str, f2_memory: float = 1.0
) -> Any:
    """The bench's single log or F2 store for ``n`` keys, with a budget of 10% of the data."""
    from faster_backend import FasterKV

    budget = budget_for(n)
    if kind == "f2":
        # everything in the budget but the hot index, which holds hot keys only
        f2_budget = max(4 << 20, int(budget * f2_memory))
        return FasterKV(
            directory,
            tiering="f2",
            device=device,
            memory_size=f2_budget,
            index_size=1 << 10,
            hot_log_size=f2_budget,
            cold_log_size=3 * n * RECORD,
            cold_index_chunks=1 << max(4, (n // 8).bit_length() - 1),  # ~8 keys a chunk
        )
    # the same budget for the log's pages and read cache as far as the index leaves room:
    # the single log's index holds every key in memory (sized up front: no growth)
    index_size = 1 << max(4, (n // 6).bit_length())
    return FasterKV(
        directory,
        device=device,
        memory_size=max(1 << 20, budget - index_size * 64),
        index_size=index_size,
        log_size_limit=3 * n * RECORD,
    )


def child(
    kind: str,
    workload: str,
    n: int,
    ops: int,
    warmup: int,
    directory: str,
    f2_memory: float = 1.0,
    device: str = "file_direct",
) -> dict[str, float]:
    import gc
    import random

    # Imported before ``base``: the package's code (about 10 MB) is not memory per key.
    import faster_backend.engine.f2  # noqa: F401

    keys = make_keys(n)
    rng = random.Random(7)
    sample = zipf_sampler(n, 0.99, rng)
    stream = sample(warmup + ops)
    ups = [rng.random() < (0.5 if workload == "A" else 0.05) for _ in range(warmup + ops)]
    gc.collect()
    base = rss_bytes()
    kv: Any = open_store(kind, directory, n, device, f2_memory)
    upsert = kv.upsert
    read = kv.read
    t0 = time.perf_counter()
    for k in keys:
        upsert(k, VALUE)
    load_s = time.perf_counter() - t0
    for i, up in zip(stream[:warmup], ups[:warmup], strict=True):
        if up:
            upsert(keys[i], VALUE)
        else:
            read(keys[i])
    kv.run_maintenance()  # both start settled
    len(kv)  # F2: the count too (stats() reads the counters first)
    st0 = kv.stats()
    t0 = time.perf_counter()
    for i, up in zip(stream[warmup:], ups[warmup:], strict=True):
        if up:
            upsert(keys[i], VALUE)
        else:
            read(keys[i])
    run_s = time.perf_counter() - t0
    st = kv.stats()
    gc.collect()
    rss_store = rss_bytes() - base  # the workload's lists were allocated before ``base``
    index = st["index_bytes"]  # F2: the hot index (its cold index is a file, no memory)
    out = {
        "load_ops_s": n / load_s,
        "ops_s": ops / run_s,
        "rss_per_key": rss_store / n,
        "index_per_key": index / n,
        "memory_bytes_per_key": st["memory_bytes"] / n,
        "written_per_op": (st["device_bytes_written"] - st0["device_bytes_written"]) / ops,
        "read_per_op": (st["device_bytes_read"] - st0["device_bytes_read"]) / ops,
        "reads_per_op": sum(st.get(k, 0) - st0.get(k, 0) for k in _DEVICE_READS) / ops,
        "budget": budget_for(n),
        "cold_lookups_per_read": st.get("cold_index_lookups_per_read", 0.0),
    }
    kv.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--ops", type=int, default=300_000)
    ap.add_argument("--warmup", type=int, default=None,
                    help="operations run before the measured ones (default: --ops)")
    ap.add_argument("--workloads", default="A,B")
    ap.add_argument(
        "--malloc",
        choices=("default", "tuned"),
        default="default",
        help="tuned: both children run with a static glibc mmap threshold (128 KiB) and at most"
        " 2 malloc arenas (RSS then follows the live data instead of freed page buffers)",
    )
    ap.add_argument("--f2-memory", type=float, default=1.0,
                    help="F2's share of the budget (the single log gets all of it)")
    ap.add_argument("--device", choices=("auto", "file_direct"), default="file_direct",
                    help="file_direct (default): O_DIRECT files, no page cache behind the budget;"
                    " auto: buffered files (the page cache holds the data: a CPU comparison)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    warmup = args.ops if args.warmup is None else args.warmup
    if args.child:
        kind, workload, directory, _ = args.child
        result = child(kind, workload, args.keys, args.ops, warmup, directory, args.f2_memory,
                       args.device)
        print(json.dumps(result))
        return
    console = Console()
    if args.device == "file_direct":
        from faster_backend.engine.devices import direct_io_status

        ok, why = direct_io_status(tempfile.gettempdir())
        if not ok:
            sys.exit(f"{why}; point TMPDIR at a disk filesystem, or run with --device auto")
    table = Table(
        title=f"F2 vs single log: {args.keys:,} keys, {args.ops:,} ops after {warmup:,},"
        f" budget 10% (F2: {args.f2_memory:g} of it), {args.malloc} malloc, device {args.device}"
    )
    for col in ("workload", "store", "ops/s", "load ops/s", "RSS B/key", "memory B/key",
                "index B/key", "reads/op", "written B/op"):
        table.add_column(col, justify="right")
    ratios = []
    for workload in args.workloads.split(","):
        res = {}
        for kind in ("single", "f2"):
            with tempfile.TemporaryDirectory() as d:
                cmd = [sys.executable, __file__, "--keys", str(args.keys), "--ops", str(args.ops),
                       "--warmup", str(warmup), "--f2-memory", str(args.f2_memory),
                       "--device", args.device,
                       "--child", kind, workload, d, "-"]
                env = dict(os.environ)
                if args.malloc == "tuned":
                    env.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_ARENA_MAX="2")
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
            r = res[kind]
            table.add_row(workload, kind, f"{r['ops_s']:,.0f}", f"{r['load_ops_s']:,.0f}",
                          f"{r['rss_per_key']:.1f}", f"{r['memory_bytes_per_key']:.1f}",
                          f"{r['index_per_key']:.1f}", f"{r['reads_per_op']:.2f}",
                          f"{r['written_per_op']:.1f}")
        s, f = res["single"], res["f2"]
        ratios.append((workload, f["ops_s"] / s["ops_s"], f["rss_per_key"] / s["rss_per_key"],
                       f["memory_bytes_per_key"] / s["memory_bytes_per_key"],
                       f["index_per_key"] / s["index_per_key"],
                       f["written_per_op"] / max(s["written_per_op"], 1e-9),
                       f["cold_lookups_per_read"],
                       f["reads_per_op"] / max(s["reads_per_op"], 1e-9)))
    console.print(table)
    for w, thr, rss, mem, idx, wa, cl, rd in ratios:
        console.print(
            f"YCSB {w}: F2/single throughput {thr:.2f}x (target >= 1.5x), RSS per key "
            f"{rss:.2f}x (target <= 0.5x), store memory per key {mem:.2f}x, index per key "
            f"{idx:.2f}x, device reads per op {rd:.2f}x, bytes written per op "
            f"{wa:.2f}x; F2 cold-index lookups per read {cl:.2f}"
        )


if __name__ == "__main__":
    main()
