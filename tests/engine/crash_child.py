"""The child of the crash test (and bench/crash_loop.py): a SumStore-style workload.

Each thread runs a session named ``s<t>`` that continues from its recovered serial number.
Operation n of a session is an RMW increment of counter ``c:<t>:<n % 4>`` unless n is a multiple
of 3, in which case it upserts ``u:<t>:<n>`` = n. Every acknowledged operation is printed as
``ack <t> <n>``; meanwhile the main thread takes checkpoints and the store compacts itself. The
parent kill -9s this process at a random moment and verifies the recovered state.

    python crash_child.py DATA_DIR THREADS [single|f2]

With ``f2`` the store is F2's hot/cold tiers, sized so that hot-cold and cold-cold compactions
run (each commits the hot store and writes a manifest) while the threads work.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from faster_backend import FasterKV

COUNTERS = 4


def counter_key(t: int, n: int) -> bytes:
    return b"c:%d:%d" % (t, n % COUNTERS)


def upsert_key(t: int, n: int) -> bytes:
    return b"u:%d:%d" % (t, n)


def upsert_value(n: int) -> bytes:
    return b"%d" % n + b"." * (n % 400)


def is_upsert(n: int) -> bool:
    return n % 3 == 0


def open_store(path: str, durability: str = "always", tiering: str = "single") -> FasterKV:
    if tiering == "f2":
        return FasterKV(
            path,
            memory_size="192KiB",
            page_size="16KiB",
            segment_size="64KiB",
            index_size=64,
            durability=durability,
            tiering="f2",
            hot_log_size="96KiB",
            cold_log_size="64KiB",
            cold_index_chunks=16,
            read_cache_size="16KiB",
        )
    return FasterKV(
        path,
        memory_size="96KiB",
        page_size="16KiB",
        segment_size="64KiB",
        index_size=64,
        read_cache_size="16KiB",
        log_size_limit="192KiB",
        durability=durability,
    )


def run_and_kill(
    path: Path | str, threads: int, run_for: float, tiering: str = "single"
) -> dict[int, int]:
    """Start this program as a child on ``path``, let it work ``run_for`` seconds after it is
    ready, kill -9 it, and return the last acknowledged serial number of each thread."""
    proc = subprocess.Popen(
        [sys.executable, __file__, str(path), str(threads), tiering],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acks: dict[int, int] = {}
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == "ready\n":
                ready.set()
            elif line.startswith("ack "):
                _, t, n = line.split()
                acks[int(t)] = max(acks.get(int(t), 0), int(n))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    if not ready.wait(60):
        proc.kill()
        raise AssertionError(f"child did not start: {proc.stderr.read() if proc.stderr else ''}")
    time.sleep(run_for)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    th.join(10)
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"child died by itself: {proc.stderr.read() if proc.stderr else ''}")
    return dict(acks)


def incr(old: bytes | None) -> bytes:
    return b"1" if old is None else b"%d" % (int(old) + 1)


def main() -> None:
    path, threads = sys.argv[1], int(sys.argv[2])
    kv = open_store(path, tiering=sys.argv[3] if len(sys.argv) > 3 else "single")
    out_lock = threading.Lock()
    out = sys.stdout

    def worker(t: int) -> None:
        s = kv.session(f"s{t}")
        while True:
            n = s.serial + 1
            if is_upsert(n):
                s.upsert(upsert_key(t, n), upsert_value(n))
            else:
                s.rmw(counter_key(t, n), incr)
            with out_lock:
                out.write(f"ack {t} {n}\n")
                out.flush()

    for t in range(threads):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    with out_lock:
        out.write("ready\n")
        out.flush()
    kinds = ["fold-over", "snapshot", "incremental", "incremental"]
    i = 0
    while True:
        time.sleep(0.05)
        kv.checkpoint(kinds[i % len(kinds)])
        i += 1


if __name__ == "__main__":
    main()
