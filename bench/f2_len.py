"""What ``len()`` costs the other threads: F2 beside a single-log FasterKV, in one run.

F2's ``len()`` (also DBSIZE, INFO keyspace, ``stats()``) settles the count of the blind upserts
since the last call, with device reads (docs/f2.md, "Design"); the single log's is O(1). Each
store is loaded with ``--keys`` keys (8-byte keys, 100-byte values, budget 10% of the data),
then gets ``--keys``/2 upserts of random keys (on F2, blind ones) and no ``len()``. Then a
writer (``--rate`` upserts per second) and a reader (a read every millisecond) run while the
main thread calls ``len()`` once, and then as long again without it. Prints how long ``len()``
took, the writer's longest gap between two upserts and the reader's longest read, with and
without the ``len()``, and the ratios.

    python bench/f2_len.py [--keys 300000] [--rate 3000] [--device file_direct|auto]
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
from f2 import open_store

from engine import make_keys

VALUE = b"v" * 100


def measure(kind: str, n: int, rate: float, device: str) -> dict[str, float]:
    keys = make_keys(n)
    with tempfile.TemporaryDirectory() as d:
        kv = open_store(kind, d, n, device)
        for k in keys:
            kv.upsert(k, VALUE)
        len(kv)
        rng = random.Random(1)
        for _ in range(n // 2):
            kv.upsert(keys[rng.randrange(n)], VALUE)
        kv.run_maintenance()
        with_len = _window(kv, keys, rate, lambda: len(kv))
        if with_len["count"] != n:
            sys.exit(f"{kind}: len() said {with_len['count']}, expected {n}")
        # the same window without len(): what the threads see anyway (compactions, cold reads)
        without = _window(kv, keys, rate, lambda: time.sleep(with_len["call_s"]))
        kv.close()
    return {
        "len_s": with_len["call_s"],
        "writer_max_ms": with_len["writer_max_ms"],
        "reader_max_ms": with_len["reader_max_ms"],
        "writer_max_ms_without": without["writer_max_ms"],
        "reader_max_ms_without": without["reader_max_ms"],
    }


def _window(kv: Any, keys: list[bytes], rate: float, call: Any) -> dict[str, float]:
    """A writer and a reader run while the main thread makes ``call``; their longest gaps."""
    n = len(keys)
    stop = threading.Event()
    writer_gaps: list[float] = []
    reader_gaps: list[float] = []

    def write() -> None:
        r = random.Random(2)
        start = last = time.perf_counter()
        i = 0
        while not stop.is_set():
            kv.upsert(keys[r.randrange(n)], VALUE)
            i += 1
            now = time.perf_counter()
            writer_gaps.append(now - last)
            ahead = start + i / rate - now
            if ahead > 0:
                time.sleep(ahead)
            last = time.perf_counter()

    def read() -> None:
        r = random.Random(3)
        while not stop.is_set():
            t = time.perf_counter()
            kv.read(keys[r.randrange(n)])
            reader_gaps.append(time.perf_counter() - t)
            time.sleep(0.001)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    count = call()
    call_s = time.perf_counter() - t0
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    return {
        "count": count or 0,
        "call_s": call_s,
        "writer_max_ms": max(writer_gaps) * 1000,
        "reader_max_ms": max(reader_gaps) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keys", type=int, default=300_000)
    ap.add_argument("--rate", type=float, default=3000.0, help="the writer's upserts per second")
    ap.add_argument("--device", choices=("auto", "file_direct"), default="file_direct")
    args = ap.parse_args()
    if args.device == "file_direct":
        from faster_backend.engine.devices import direct_io_status

        ok, why = direct_io_status(tempfile.gettempdir())
        if not ok:
            sys.exit(f"{why}; point TMPDIR at a disk filesystem, or run with --device auto")
    console = Console()
    res = {kind: measure(kind, args.keys, args.rate, args.device) for kind in ("single", "f2")}
    table = Table(
        title=f"len() beside a writer ({args.rate:g}/s) and a reader: {args.keys:,} keys, "
        f"device {args.device}"
    )
    for col in ("store", "len() s", "writer's longest gap ms (without len())",
                "reader's longest read ms (without len())"):
        table.add_column(col, justify="right")
    for kind, r in res.items():
        table.add_row(kind, f"{r['len_s']:.3f}",
                      f"{r['writer_max_ms']:.1f} ({r['writer_max_ms_without']:.1f})",
                      f"{r['reader_max_ms']:.1f} ({r['reader_max_ms_without']:.1f})")
    console.print(table)
    for kind, r in res.items():
        console.print(
            f"{kind}: with len() / without, the writer's longest gap "
            f"{r['writer_max_ms'] / r['writer_max_ms_without']:.1f}x, the reader's longest read "
            f"{r['reader_max_ms'] / r['reader_max_ms_without']:.1f}x"
        )
    s, f = res["single"], res["f2"]
    console.print(
        f"F2/single with len(): writer's longest gap "
        f"{f['writer_max_ms'] / s['writer_max_ms']:.1f}x, reader's longest read "
        f"{f['reader_max_ms'] / s['reader_max_ms']:.1f}x"
    )


if __name__ == "__main__":
    main()
