"""Writes under full durability: faster-backend ``--durability always`` vs redis-server
``appendfsync always``, side by side.

    .venv/bin/python bench/resp_always.py [--requests 20000] [--clients 50] [--pipelines 1 16]

Both servers acknowledge a write only once it is on disk: ours commits each store a batch of
commands changed (string log and object write-back) before the batch's replies; redis-server
fsyncs its AOF before it answers. Runs ``redis-benchmark -t set,lpush,sadd,hset,zadd`` against
each with bench/resp.py's comparison (alternating test by test, ``--repeat`` times, medians,
servers pinned to CPU 0 and the benchmark to CPU 1) and prints requests per second, p99 latency,
CPU per request and the ratios. No targets: fsync speed is the machine's.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = "set,lpush,sadd,hset,zadd"


def _load_resp_bench() -> ModuleType:
    """bench/resp.py (bench/ is not a package): its comparison is shared."""
    spec = importlib.util.spec_from_file_location("bench_resp", Path(__file__).with_name("resp.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=3, help="runs per server (medians)")
    ap.add_argument("--tests", default=TESTS, help="redis-benchmark -t list")
    args = ap.parse_args()
    resp = _load_resp_bench()
    return int(resp.compare(args, durability="always", appendfsync="always", targets={}))


if __name__ == "__main__":
    sys.exit(main())
