"""RESP throughput: redis-benchmark against faster-backend and redis-server, side by side.

    .venv/bin/python bench/resp.py [--requests 200000] [--clients 50] [--pipelines 1 16]

Starts both servers on free loopback ports with the same durability: ours with a temporary data
directory and --durability periodic (a commit, i.e. log flush + fsync, every second), redis-server
with ``appendonly yes`` and ``appendfsync everysec`` (its AOF, fsynced every second),
pins each server to CPU 0 and redis-benchmark to CPU 1 when taskset exists, runs
``redis-benchmark -t <test> -c 50 -n 200000 -P <p> --csv`` for each of set, get, incr, mset,
lpush, lpop, sadd, hset, zadd and lrange_100, alternating between the servers test by test,
``--repeat`` times (medians reported), and prints requests per second and p99 latency with the
ratios. Targets: >= 0.8x at -P 1, >= 0.5x at -P 16.

It also prints the CPU time (user + system, all threads) each server spent per request, read
from /proc around each run, and redis' CPU per request over ours: on a shared, busy machine
that ratio moves far less than the rps ratio, since a server's CPU per request does not depend
on how much of the core it got. For LRANGE the CPU of the LPUSHes redis-benchmark sends first
to fill the list is taken out (at the LPUSH test's cost per request).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = "set,get,incr,mset,lpush,lpop,sadd,hset,zadd,lrange_100"
TARGETS = {1: 0.8, 16: 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


Result = tuple[float, float, float]  # requests per second, p99 ms, server CPU us per request
Results = dict[str, Result]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_test(
    port: int, pid: int, test: str, requests: int, clients: int, pipeline: int
) -> tuple[Result, float]:
    """One redis-benchmark test: its result and the server CPU seconds the whole run used."""
    cmd = pinned(1, [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", test,
        "-c", str(clients), "-n", str(requests), "-P", str(pipeline), "--csv",
    ])
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900).stdout
    cpu = cpu_seconds(pid) - before
    for row in csv.DictReader(io.StringIO(out)):
        if "needed to benchmark" in row["test"]:
            continue  # the LPUSH that fills the list for LRANGE is not the measured test
        return (float(row["rps"]), float(row["p99_latency_ms"]), cpu / requests * 1e6), cpu
    raise SystemExit(f"redis-benchmark printed no result for {test}: {out!r}")


def median(runs: list[Results]) -> Results:
    """Per test: the median of each measure."""
    return {
        test: (
            statistics.median(r[test][0] for r in runs),
            statistics.median(r[test][1] for r in runs),
            statistics.median(r[test][2] for r in runs),
        )
        for test in runs[0]
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=3, help="runs per server (medians)")
    ap.add_argument("--tests", default=TESTS, help="redis-benchmark -t list")
    args = ap.parse_args()
    return compare(args, durability="periodic", appendfsync="everysec", targets=TARGETS)


def compare(
    args: argparse.Namespace, *, durability: str, appendfsync: str, targets: dict[int, float]
) -> int:
    """Run args.tests against both servers at each pipeline depth and print the table; 1 when
    a target is missed or our server did not exit cleanly."""
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install redis-server redis-tools")
    tests = args.tests.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-resp-"))
    ours_port, redis_port = free_port(), free_port()
    ours = subprocess.Popen(
        pinned(0, [sys.executable, "-m", "faster_backend", "serve", "--port", str(ours_port),
                   "--data-dir", str(tmp / "ours"), "--durability", durability]),
        stdout=subprocess.DEVNULL, stderr=(tmp / "ours.log").open("wb"),
    )
    peer = subprocess.Popen(
        pinned(0, ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "yes", "--appendfsync", appendfsync,
                   "--dir", str(tmp)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    failed = False
    try:
        wait_port(ours_port, ours)
        wait_port(redis_port, peer)
        print(f"redis-benchmark -t {args.tests} -c {args.clients} -n {args.requests}"
              f" (ours --durability {durability}, redis appendfsync {appendfsync})")
        header = f"{'test':<11}{'-P':>4}{'ours rps':>12}{'redis rps':>12}{'ratio':>8}"
        header += f"{'ours p99':>10}{'redis p99':>11}{'cpu us/req':>16}{'cpu ratio':>10}"
        for p in args.pipelines:
            runs: dict[int, list[Results]] = {ours_port: [], redis_port: []}
            for _ in range(args.repeat):
                for port in (ours_port, redis_port):
                    runs[port].append({})
                # Test by test, alternating servers: both see about the same machine load.
                for test in tests:
                    for port, pid in ((ours_port, ours.pid), (redis_port, peer.pid)):
                        results = runs[port][-1]
                        (rps, p99, cpu_us), cpu = run_test(
                            port, pid, test, args.requests, args.clients, p
                        )
                        if test.startswith("lrange") and "LPUSH" in results:
                            # The run began by filling the list with as many LPUSHes: take
                            # their CPU out.
                            cpu_us = (cpu * 1e6 - results["LPUSH"][2] * args.requests) / (
                                args.requests
                            )
                        results[test.upper()] = (rps, p99, cpu_us)
            mine, theirs = median(runs[ours_port]), median(runs[redis_port])
            print(header)
            for test in tests:
                key = test.upper()
                (r1, l1, c1), (r2, l2, c2) = mine[key], theirs[key]
                ratio = r1 / r2
                target = targets.get(p)
                mark = "" if target is None else ("  ok" if ratio >= target else f"  < {target}x")
                failed |= target is not None and ratio < target
                print(f"{key:<11}{p:>4}{r1:>12,.0f}{r2:>12,.0f}{ratio:>7.2f}x{l1:>9.3f}ms"
                      f"{l2:>9.3f}ms{c1:>8.2f}/{c2:<7.2f}{c2 / c1:>9.2f}x{mark}")
    finally:
        for proc in (ours, peer):
            proc.send_signal(signal.SIGTERM)
        rc = ours.wait(60)
        peer.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        print(f"our server exited with {rc}")
        return 1
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
