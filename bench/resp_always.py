"""Writes under full durability: faster-backend ``--durability always`` vs redis-server
``appendfsync always``, side by side.

    .venv/bin/python bench/resp_always.py [--requests 20000] [--clients 50] [--pipelines 1 16]

Both servers acknowledge a write only once it is on disk: ours commits each store that the
commands of an event-loop turn changed (string log and object write-back) before the turn's
replies, one group commit for all the connections served in the turn; redis-server fsyncs its
AOF before it answers. Runs ``redis-benchmark -t set,lpush,sadd,hset,zadd`` against
each with bench/resp.py's comparison (alternating test by test, ``--repeat`` times, medians,
servers pinned to CPU 0 and the benchmark to CPU 1) and prints requests per second, p99 latency,
CPU per request and the ratios. No targets: fsync speed is the machine's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # bench/ is not a package
import resp  # bench/resp.py: its comparison is shared

TESTS = "set,lpush,sadd,hset,zadd"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=3, help="runs per server (medians)")
    ap.add_argument("--tests", default=TESTS, help="redis-benchmark -t list")
    args = ap.parse_args()
    return int(resp.compare(args, durability="always", appendfsync="always", targets={}))


if __name__ == "__main__":
    sys.exit(main())
