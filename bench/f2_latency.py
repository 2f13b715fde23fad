"""Users' latency while a compaction runs: F2 beside the single log, on bench/f2.py's setup.

Each store is loaded and warmed up with YCSB B (zipfian 0.99, 95% reads) as in bench/f2.py; then
its own compaction starts in a thread (about as many bytes each: F2 a hot-cold compaction of
``compaction_fraction`` of its hot log, the single log that fraction of F2's hot log size, the
budget, from its begin) while the main thread goes on with B and times each operation.
Prints, for the operations during the compaction and after it, ops/s and latency percentiles,
and the ratios of F2 to the single log. ``F2 unpaced`` is F2 with its compactions' pauses for
users' device reads turned off (engine/f2/pacing.py), the behaviour before them.

    python bench/f2_latency.py [--keys 1000000] [--ops 100000] [--warmup 300000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(__file__))
from f2 import VALUE, budget_for, open_store

from engine import make_keys, zipf_sampler


def percentile(sorted_ns: list[int], p: float) -> float:
    """The ``p`` percentile of ``sorted_ns``, in microseconds."""
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * p))] / 1000


def run(kind: str, n: int, ops: int, warmup: int, paced: bool) -> dict[str, Any]:
    from faster_backend.engine.f2 import pacing

    keys = make_keys(n)
    rng = random.Random(7)
    stream = zipf_sampler(n, 0.99, rng)(warmup + ops)
    ups = [rng.random() < 0.05 for _ in range(warmup + ops)]
    sleep = pacing._sleep
    if not paced:
        pacing._sleep = lambda _seconds: None
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as directory:
            kv = open_store(kind, directory, n, "file_direct")
            try:
                for k in keys:
                    kv.upsert(k, VALUE)
                for i, up in zip(stream[:warmup], ups[:warmup], strict=True):
                    if up:
                        kv.upsert(keys[i], VALUE)
                    else:
                        kv.read(keys[i])
                kv.run_maintenance()
                return _measure(kind, kv, keys, stream[warmup:], ups[warmup:])
            finally:
                kv.close()
    finally:
        pacing._sleep = sleep


def _measure(
    kind: str, kv: Any, keys: list[bytes], stream: list[int], ups: list[bool]
) -> dict[str, Any]:
    hlog = kv._log
    if kind == "f2":
        nbytes = int((hlog.tail_address - hlog.begin_address) * kv.compaction_fraction)

        def compact() -> None:
            kv.compact()

    else:
        # about as many bytes as F2's hot-cold compaction of its hot log (whose size
        # bench/f2.py sets to the budget) reads, from the single log's begin
        nbytes = int(budget_for(len(keys)) * 0.4)

        def compact() -> None:
            kv.compact(hlog.begin_address + nbytes)

    done = threading.Event()
    took: list[float] = []

    def background() -> None:
        t0 = time.perf_counter()
        try:
            compact()
        finally:
            took.append(time.perf_counter() - t0)
            done.set()

    during: list[int] = []
    after: list[int] = []
    clock = time.perf_counter_ns
    read, upsert = kv.read, kv.upsert
    thread = threading.Thread(target=background)
    t0 = time.perf_counter()
    thread.start()
    t_done = None
    for i, up in zip(stream, ups, strict=True):
        a = clock()
        if up:
            upsert(keys[i], VALUE)
        else:
            read(keys[i])
        b = clock()
        if done.is_set():
            if t_done is None:
                t_done = time.perf_counter()
            after.append(b - a)
        else:
            during.append(b - a)
    end = time.perf_counter()
    thread.join()
    during.sort()
    after.sort()
    return {
        "compacted_bytes": nbytes,
        "compaction_s": took[0],
        "during_ops": len(during),
        "during_ops_s": len(during) / ((t_done or end) - t0),
        "during_p50": percentile(during, 0.5),
        "during_p99": percentile(during, 0.99),
        "during_max": during[-1] / 1000 if during else float("nan"),
        "after_ops_s": len(after) / (end - t_done) if t_done and after else float("nan"),
        "after_p99": percentile(after, 0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--warmup", type=int, default=300_000)
    args = ap.parse_args()
    console = Console(width=130)
    rows: dict[str, dict[str, Any]] = {}
    for label, kind, paced in (
        ("single", "single", True),
        ("F2", "f2", True),
        ("F2 unpaced", "f2", False),
    ):
        console.print(f"[dim]{label}: load, warm-up, then a compaction beside YCSB B...[/dim]")
        rows[label] = run(kind, args.keys, args.ops, args.warmup, paced)
    table = Table(title=f"YCSB B during a compaction: {args.keys:,} keys, O_DIRECT files")
    for col in ("store", "compacted MB", "compaction s", "ops during", "ops/s during",
                "p50 us", "p99 us", "max us", "ops/s after", "p99 after us"):
        table.add_column(col, justify="right")
    for label, r in rows.items():
        table.add_row(
            label, f"{r['compacted_bytes'] / 1e6:.1f}", f"{r['compaction_s']:.2f}",
            f"{r['during_ops']:,}", f"{r['during_ops_s']:,.0f}", f"{r['during_p50']:.0f}",
            f"{r['during_p99']:.0f}", f"{r['during_max']:.0f}", f"{r['after_ops_s']:,.0f}",
            f"{r['after_p99']:.0f}",
        )
    console.print(table)
    single, f2, unpaced = rows["single"], rows["F2"], rows["F2 unpaced"]
    ops_ratio = f2["during_ops_s"] / single["during_ops_s"]
    console.print(
        f"During the compaction, F2/single: ops/s {ops_ratio:.2f}x,"
        f" p99 {f2['during_p99'] / single['during_p99']:.2f}x;"
        f" F2 paced/unpaced: ops/s {f2['during_ops_s'] / unpaced['during_ops_s']:.2f}x,"
        f" p99 {f2['during_p99'] / unpaced['during_p99']:.2f}x,"
        f" compaction time {f2['compaction_s'] / unpaced['compaction_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
