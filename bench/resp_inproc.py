"""Microseconds of Python per RESP command, without sockets: the server's per-command cost.

    .venv/bin/python bench/resp_inproc.py [--pipeline 16] [--batches 5000] [--test T] [--profile]

Builds the RESP server (durability periodic on a temporary data directory, as bench/resp.py
runs it), opens one connection on an in-memory transport and feeds it the frames
redis-benchmark sends, ``--pipeline`` commands per chunk, each chunk followed by the server's
end-of-turn flush (as if each read were alone in its loop turn); prints microseconds per command for
each test, as CPU time of this thread (other processes on a busy machine move it far less than
wall time). That is the cost that bounds pipelined throughput: at -P 16 redis-server needs
about 1 us per command, system calls included. ``--profile`` runs under cProfile instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import tempfile
import time
from typing import Any

from faster_backend.config import Config
from faster_backend.integrations.resp.server import Connection, RespServer


def frame(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(out)


V = b"x" * 3  # redis-benchmark's default -d 3
TESTS: dict[str, bytes] = {
    "set": frame(b"SET", b"key:__rand_int__", V),
    "get": frame(b"GET", b"key:__rand_int__"),
    "incr": frame(b"INCR", b"counter:__rand_int__"),
    "mset": frame(b"MSET", *[b"key:__rand_int__", V] * 10),
    "lpush": frame(b"LPUSH", b"mylist", V),
    "lpop": frame(b"LPOP", b"mylist"),
    "sadd": frame(b"SADD", b"myset", b"element:__rand_int__"),
    "hset": frame(b"HSET", b"myhash", b"element:__rand_int__", V),
    "zadd": frame(b"ZADD", b"myzset", b"0", b"element:__rand_int__"),
    "lrange_100": frame(b"LRANGE", b"mylist", b"0", b"99"),
}


class Sink:
    """The transport half the connection uses: counts the bytes written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    abort = close


async def measure(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-resp-inproc-")
    config = Config()
    config.store.path = tmp
    config.store.durability = "periodic"
    server = RespServer(config)
    conn = Connection(server)
    conn.connection_made(Sink())  # type: ignore[arg-type]
    try:
        # LRANGE reads the list LPUSH filled (as redis-benchmark does); LPOP runs last.
        order = [t for t in TESTS if t != "lpop"] + ["lpop"]
        for test in order if args.test is None else [args.test]:
            chunk = TESTS[test] * args.pipeline
            n = args.batches
            received = conn.data_received
            flush = server.flush  # the end of the loop turn: replies are written there
            received(chunk)  # warm up
            flush()
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(n):
                    received(chunk)
                    flush()
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                continue
            best = float("inf")
            for _ in range(3):
                t0 = time.thread_time()
                for _ in range(n):
                    received(chunk)
                    flush()
                best = min(best, time.thread_time() - t0)
            print(f"{test:<11}{best / (n * args.pipeline) * 1e6:8.3f} us/command")
    finally:
        conn.connection_lost(None)
        await server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--batches", type=int, default=5000)
    ap.add_argument("--test", choices=sorted(TESTS), help="one test only")
    ap.add_argument("--profile", action="store_true", help="cProfile instead of timing")
    asyncio.run(measure(ap.parse_args()))


if __name__ == "__main__":
    main()
