"""Django cache backends side by side: median and p99 microseconds per call.

    .venv/bin/python bench/django_cache.py [--ops 20000] [--remote-ops 5000] [--rounds 3]

Backends, in one run: FasterCache embedded (a data directory), Django's LocMemCache,
diskcache's DjangoCache, Django's RedisCache against a redis-server started here on a free
loopback port (when the binary exists), and FasterCache over RESP against `faster-backend serve`
started the same way (when it runs). Operations: get (hit), get (miss), set, get_many(10),
incr. Each call is timed on its own (time.perf_counter_ns around it, garbage collector off during
a batch), minus the measured cost of timing an empty call; samples of all rounds are pooled.
Ratios are against LocMemCache's median.

Targets (issue 5): embedded FasterCache get and set <= 0.6x LocMemCache, and better than
diskcache on every operation.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

OPS = ["get hit", "get miss", "set", "get_many(10)", "incr"]
VALUE = {"id": 12345, "name": "Ada Lovelace", "tags": ["admin", "staff"], "score": 97.5}
NKEYS = 1000
TARGET = 0.6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(url: str, proc: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def server(cmd: list[str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_ping(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backends(stack: ExitStack, tmp: Path) -> dict[str, dict[str, Any]]:
    conf: dict[str, dict[str, Any]] = {
        "FasterCache embedded": {
            "BACKEND": "faster_backend.integrations.django.FasterCache",
            "LOCATION": str(tmp / "faster"),
            "OPTIONS": {"MAX_ENTRIES": 1_000_000, "memory_size": "256MiB"},
        },
        "LocMemCache": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "bench",
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        },
        "diskcache DjangoCache": {
            "BACKEND": "diskcache.DjangoCache",
            "LOCATION": str(tmp / "diskcache"),
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        },
    }
    if shutil.which("redis-server"):
        port = free_port()
        url = stack.enter_context(
            server(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no"], port)
        )
        conf["RedisCache (redis-server)"] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
        }
    else:
        print("redis-server not found: RedisCache skipped (apt-get install redis-server)")
    port = free_port()
    try:
        url = stack.enter_context(
            server([sys.executable, "-m", "faster_backend", "serve", "--bind", "127.0.0.1",
                    "--port", str(port)], port)
        )
    except Exception as exc:  # the bench still runs the in-process backends
        print(f"faster-backend serve did not start ({exc}): its row is skipped")
    else:
        conf["FasterCache -> faster-backend serve"] = {
            "BACKEND": "faster_backend.integrations.django.FasterCache",
            "LOCATION": url,
        }
    return conf


def timed(fn: Callable[[int], Any], n: int) -> list[int]:
    perf = time.perf_counter_ns
    samples = [0] * n
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            t0 = perf()
            fn(i)
            samples[i] = perf() - t0
    finally:
        gc.enable()
    return samples


def timer_overhead() -> int:
    """Median cost of timing an empty call: subtracted from every sample, for every backend."""
    samples = sorted(timed(lambda i: None, 50_000))
    return samples[len(samples) // 2]


def measure(cache: Any, n: int, overhead: int) -> dict[str, list[int]]:
    keys = [f"user:{i}" for i in range(NKEYS)]
    missing = [f"nobody:{i}" for i in range(NKEYS)]
    for k in keys:
        cache.set(k, VALUE, 3600)
    cache.set("counter", 0, None)
    groups = [keys[i : i + 10] for i in range(0, NKEYS, 10)]
    ops: dict[str, Callable[[int], Any]] = {
        "get hit": lambda i: cache.get(keys[i % NKEYS]),
        "get miss": lambda i: cache.get(missing[i % NKEYS]),
        "set": lambda i: cache.set(keys[i % NKEYS], VALUE, 3600),
        "get_many(10)": lambda i: cache.get_many(groups[i % len(groups)]),
        "incr": lambda i: cache.incr("counter"),
    }
    out: dict[str, list[int]] = {}
    for name, fn in ops.items():
        timed(fn, min(n, 2000))  # warm up
        out[name] = [max(0, t - overhead) for t in timed(fn, n)]
    assert cache.get(keys[0]) == VALUE
    return out


def quantile(sorted_samples: list[int], q: float) -> float:
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))] / 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--ops", type=int, default=20_000, help="calls per operation per round")
    ap.add_argument("--remote-ops", type=int, default=5_000, help="the same over the network")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import django
    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-django-cache-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        from faster_backend.integrations.django import registry

        stack.callback(registry.close_all)  # before the directory goes: closing writes to it
        conf = backends(stack, tmp)
        settings.configure(CACHES={"default": conf["LocMemCache"], **conf})
        django.setup()
        from django.core.cache import caches

        samples: dict[str, dict[str, list[int]]] = {name: {op: [] for op in OPS} for name in conf}
        overhead = timer_overhead()
        print(f"timer overhead {overhead} ns per call, subtracted from every sample")
        for _ in range(args.rounds):
            for name in conf:
                cache = caches[name]
                cache.clear()
                n = args.remote_ops if conf[name]["LOCATION"].startswith("redis://") else args.ops
                for op, values in measure(cache, n, overhead).items():
                    samples[name][op].extend(values)
                cache.clear()
        report(samples, conf)
    return 0


def report(samples: dict[str, dict[str, list[int]]], conf: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    stats = {
        name: {op: sorted(v) for op, v in per.items()} for name, per in samples.items()
    }
    base = {op: quantile(stats["LocMemCache"][op], 0.5) for op in OPS}
    table = Table(
        title="Django cache backends: median / p99 us per call (ratio = median vs LocMemCache)"
    )
    table.add_column("backend")
    for op in OPS:
        table.add_column(op, justify="right")
    for name, per in stats.items():
        cells = []
        for op in OPS:
            med, p99 = quantile(per[op], 0.5), quantile(per[op], 0.99)
            cells.append(f"{med:.2f} / {p99:.2f}\n{med / base[op]:.2f}x")
        table.add_row(name, *cells)
    console = Console(width=160)
    console.print(table)
    ours = stats["FasterCache embedded"]
    for op in ("get hit", "set"):
        ratio = quantile(ours[op], 0.5) / base[op]
        verdict = "[green]met" if ratio <= TARGET else "[red]NOT met"
        console.print(f"target {op} <= {TARGET}x LocMemCache: {ratio:.2f}x {verdict}")
    dc = stats["diskcache DjangoCache"]
    worse = [op for op in OPS if quantile(ours[op], 0.5) >= quantile(dc[op], 0.5)]
    console.print(
        "better than diskcache on every operation: "
        + ("[green]yes" if not worse else f"[red]no ({', '.join(worse)})")
    )


if __name__ == "__main__":
    sys.exit(main())
