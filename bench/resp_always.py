"""Writes under full durability: faster-backend ``--durability always`` vs redis-server
``appendfsync always``, side by side.

    .venv/bin/python bench/resp_always.py [--requests 20000] [--clients 50] [--pipelines 1 16]

Both servers acknowledge a write only once it is on disk: ours commits the string store per
write (grouped) and writes back and commits the objects a batch of commands changed before the
batch's replies; redis-server fsyncs its AOF before it answers. Runs ``redis-benchmark -t
set,lpush,sadd,hset,zadd`` against each (alternating, ``--repeat`` times, medians) with the
servers pinned to CPU 0 and the benchmark to CPU 1 (bench/resp.py's helpers), and prints
requests per second, p99 latency and the ratios. No targets: fsync speed is the machine's.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

TESTS = "set,lpush,sadd,hset,zadd"


def _load_resp_bench() -> ModuleType:
    """bench/resp.py (bench/ is not a package): its server and benchmark helpers are shared."""
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
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install redis-server redis-tools")
    resp = _load_resp_bench()
    resp.TESTS = args.tests

    tmp = Path(tempfile.mkdtemp(prefix="bench-always-"))
    ours_port, redis_port = resp.free_port(), resp.free_port()
    ours = subprocess.Popen(
        resp.pinned(0, [sys.executable, "-m", "faster_backend", "serve", "--port", str(ours_port),
                        "--data-dir", str(tmp / "ours"), "--durability", "always"]),
        stdout=subprocess.DEVNULL, stderr=(tmp / "ours.log").open("wb"),
    )
    peer = subprocess.Popen(
        resp.pinned(0, ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                        "--dir", str(tmp)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        resp.wait_port(ours_port, ours)
        resp.wait_port(redis_port, peer)
        print(f"durable writes: redis-benchmark -t {args.tests} -c {args.clients}"
              f" -n {args.requests}")
        header = f"{'test':<11}{'-P':>4}{'ours rps':>12}{'redis rps':>12}{'ratio':>8}"
        header += f"{'ours p99':>10}{'redis p99':>11}"
        for p in args.pipelines:
            runs: dict[int, list[dict[str, tuple[float, float]]]] = {ours_port: [], redis_port: []}
            for _ in range(args.repeat):
                for port in (ours_port, redis_port):
                    runs[port].append(resp.run_benchmark(port, args.requests, args.clients, p))
            mine, theirs = resp.median(runs[ours_port]), resp.median(runs[redis_port])
            print(header)
            for test in args.tests.split(","):
                key = test.upper()
                (r1, l1), (r2, l2) = mine[key], theirs[key]
                print(f"{key:<11}{p:>4}{r1:>12,.0f}{r2:>12,.0f}{r1 / r2:>7.2f}x{l1:>9.3f}ms"
                      f"{l2:>9.3f}ms")
    finally:
        for proc in (ours, peer):
            proc.send_signal(signal.SIGTERM)
        rc = ours.wait(60)
        peer.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        print(f"our server exited with {rc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
