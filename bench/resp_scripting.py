"""Lua scripting throughput: EVALSHA through redis-benchmark, faster-backend vs redis-server.

    .venv/bin/python bench/resp_scripting.py [--requests 100000] [--clients 50] [--pipelines 1 16]

Starts both servers on free loopback ports (pinned to CPU 0, redis-benchmark to CPU 1 when
taskset exists), loads the scripts with SCRIPT LOAD on each, then runs ``redis-benchmark ...
EVALSHA <sha> 1 <key> [args]`` against each, alternating, ``--repeat`` times, and prints the
median requests per second and p99 latency side by side with the ratios. Scripts: a no-op
(``return 1``: the cost of a script call itself), django-redis' ``incr`` (EXISTS + INCRBY) and
redis-py's Lock release (GET, compare, DEL) on a lock held by someone else (read only).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

SCRIPTS = {
    "noop": (b"return 1", ["k"], []),
    "django-incr": (
        b"local exists = redis.call('EXISTS', KEYS[1])\n"
        b"if (exists == 1) then\n"
        b"    return redis.call('INCRBY', KEYS[1], ARGV[1])\n"
        b"else return false end",
        ["counter"],
        ["1"],
    ),
    "lock-release": (
        b"local token = redis.call('get', KEYS[1])\n"
        b"if not token or token ~= ARGV[1] then\n"
        b"    return 0\n"
        b"end\n"
        b"redis.call('del', KEYS[1])\n"
        b"return 1",
        ["lock"],
        ["not-the-owner"],
    ),
}


def _load_resp_bench() -> ModuleType:
    """bench/resp.py (bench/ is not a package): its server helpers are shared."""
    spec = importlib.util.spec_from_file_location("bench_resp", Path(__file__).with_name("resp.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_resp = _load_resp_bench()
free_port = _resp.free_port
wait_port = _resp.wait_port
pinned = _resp.pinned


def command(port: int, *args: bytes) -> bytes:
    """Send one command, return the first reply line (enough for SET / SCRIPT LOAD)."""
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"\r\n") < (2 if data.startswith(b"$") else 1):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if data.startswith(b"-"):
        raise SystemExit(f"server error: {data!r}")
    return data.split(b"\r\n")[1] if data.startswith(b"$") else data.strip()


def run_benchmark(port: int, args: list[str], requests: int, clients: int, pipeline: int) -> tuple[
    float, float
]:
    cmd = pinned(1, [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
        "-n", str(requests), "-P", str(pipeline), "--csv", *args,
    ])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    return float(row["rps"]), float(row["p99_latency_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=3, help="runs per server (medians)")
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install redis-server redis-tools")

    tmp = Path(tempfile.mkdtemp(prefix="bench-scripting-"))
    ours_port, redis_port = free_port(), free_port()
    ours = subprocess.Popen(
        pinned(0, [sys.executable, "-m", "faster_backend", "serve", "--port", str(ours_port)]),
        stdout=subprocess.DEVNULL, stderr=(tmp / "ours.log").open("wb"),
    )
    peer = subprocess.Popen(
        pinned(0, ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(tmp)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(ours_port, ours)
        wait_port(redis_port, peer)
        shas: dict[str, str] = {}
        for port in (ours_port, redis_port):
            command(port, b"SET", b"counter", b"0")
            command(port, b"SET", b"lock", b"the-owner")
            for name, (body, _, _) in SCRIPTS.items():
                sha = command(port, b"SCRIPT", b"LOAD", body).decode()
                if shas.setdefault(name, sha) != sha:
                    raise SystemExit(f"{name}: the servers disagree on the SHA1")
        print(f"redis-benchmark EVALSHA -c {args.clients} -n {args.requests}")
        print(f"{'script':<14}{'-P':>4}{'ours rps':>12}{'redis rps':>12}{'ratio':>8}"
              f"{'ours p99':>10}{'redis p99':>11}")
        for p in args.pipelines:
            for name, (_, keys, argv) in SCRIPTS.items():
                bench_args = ["EVALSHA", shas[name], str(len(keys)), *keys, *argv]
                runs: dict[int, list[tuple[float, float]]] = {ours_port: [], redis_port: []}
                for _ in range(args.repeat):
                    for port in (ours_port, redis_port):
                        runs[port].append(
                            run_benchmark(port, bench_args, args.requests, args.clients, p)
                        )
                r1 = statistics.median(r for r, _ in runs[ours_port])
                l1 = statistics.median(lat for _, lat in runs[ours_port])
                r2 = statistics.median(r for r, _ in runs[redis_port])
                l2 = statistics.median(lat for _, lat in runs[redis_port])
                print(f"{name:<14}{p:>4}{r1:>12,.0f}{r2:>12,.0f}{r1 / r2:>7.2f}x"
                      f"{l1:>9.3f}ms{l2:>9.3f}ms")
    finally:
        for proc in (ours, peer):
            proc.send_signal(signal.SIGTERM)
        rc = ours.wait(30)
        peer.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        print(f"our server exited with {rc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
