"""Storage devices and FasterLog side by side: FileDevice against IoUringDevice, and FasterLog
against the raw sequential write speed of the same device.

    .venv/bin/python bench/devices.py [--dir DIR] [--reads 40000] [--file-mb 64] [--rounds 3]

Kinds: FileDevice ("file"), IoUringDevice ("io_uring"), and DirectFileDevice ("file_direct",
O_DIRECT, where the filesystem allows it).

1. Random 4 KiB reads of a file held in the page cache (O_DIRECT reads go to the disk):
   blocking ``read`` one at a time, and ``read_async`` with 32 and 256 requests in flight
   (callbacks counted on the completion thread). Microseconds per read; ratio
   IoUringDevice / FileDevice (< 1: io_uring is faster).
2. Sequential page-size writes (64 KiB and 1 MiB pages): blocking ``write`` and ``write_async``
   with 8 pages in flight, then one ``flush``. MB/s; ratio io_uring / file (> 1: io_uring wins).
3. FasterLog ``enqueue`` + ``commit`` for 100 B and 1 KiB entries, committing every 1000 or
   every 100,000 entries, and ``enqueue_batch``: entries/s and MB/s of payload, beside the raw
   1 MiB sequential writes of the same device kind (ratio of bytes per second).

Each figure is the best of ``--rounds`` rounds. ``open_device("auto")`` uses the winner; the
numbers behind the current choice are in docs/devices.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from faster_backend.engine.devices import (
    DirectFileDevice,
    FileDevice,
    IoUringDevice,
    StorageDevice,
    direct_io_status,
    io_uring_status,
)
from faster_backend.engine.log import FasterLog

SEGMENT = 1 << 30
# (entry size, enqueue_batch?, commit every N entries)
LOG_CASES = [
    (100, False, 1000),
    (100, False, 100_000),
    (100, True, 1000),
    (1024, False, 1000),
    (1024, False, 100_000),
    (1024, True, 1000),
]
console = Console(width=150)


def make_device(kind: str, directory: Path) -> StorageDevice:
    if kind == "io_uring":
        return IoUringDevice(directory, segment_size=SEGMENT)
    if kind == "file_direct":
        return DirectFileDevice(directory, segment_size=SEGMENT)
    return FileDevice(directory, segment_size=SEGMENT)


def random_reads(dev: StorageDevice, size: int, count: int, in_flight: int) -> float:
    """Seconds per read."""
    rng = random.Random(1)
    addresses = [rng.randrange(size // 4096) * 4096 for _ in range(count)]
    if in_flight == 1:
        start = time.perf_counter()
        read = dev.read
        for address in addresses:
            read(address, 4096)
        return (time.perf_counter() - start) / count
    done = threading.Event()
    lock = threading.Lock()
    state = {"next": 0, "finished": 0}

    def issue() -> None:
        with lock:
            i = state["next"]
            if i >= count:
                return
            state["next"] = i + 1
        dev.read_async(addresses[i], 4096, on_read)

    def on_read(result: bytes | None, error: BaseException | None) -> None:
        if error is not None:
            raise error
        with lock:
            state["finished"] += 1
            finished = state["finished"]
        if finished == count:
            done.set()
        else:
            issue()

    start = time.perf_counter()
    for _ in range(in_flight):
        issue()
    done.wait()
    return (time.perf_counter() - start) / count


def sequential_writes(dev: StorageDevice, page: int, total: int, in_flight: int) -> float:
    """MB/s, including the final flush."""
    data = os.urandom(page)
    count = total // page
    start = time.perf_counter()
    if in_flight == 1:
        for i in range(count):
            dev.write(i * page, data)
    else:
        slots = threading.Semaphore(in_flight)
        finished = threading.Semaphore(0)

        def on_write(result: int | None, error: BaseException | None) -> None:
            if error is not None:
                raise error
            slots.release()
            finished.release()

        for i in range(count):
            slots.acquire()
            dev.write_async(i * page, data, on_write)
        for _ in range(count):
            finished.acquire()
    dev.flush()
    return total / (time.perf_counter() - start) / 1e6


def log_throughput(
    kind: str, root: Path, size: int, count: int, batch: bool, every: int
) -> tuple[float, float]:
    """(entries/s, MB/s of payload) of enqueue + commit every ``every`` entries."""
    directory = Path(tempfile.mkdtemp(dir=root))
    dev = make_device(kind, directory)
    log = FasterLog(dev, page_size=1 << 20, memory_size=16 << 20)
    entry = os.urandom(size)
    try:
        start = time.perf_counter()
        if batch:
            chunk = [entry] * every
            for _ in range(count // every):
                log.enqueue_batch(chunk)
                log.commit()
        else:
            enqueue = log.enqueue
            for i in range(count):
                enqueue(entry)
                if i % every == every - 1:
                    log.commit()
        log.commit()
        elapsed = time.perf_counter() - start
    finally:
        log.close()
        dev.close()
        shutil.rmtree(directory)
    return count / elapsed, count * size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files")
    parser.add_argument("--reads", type=int, default=40000)
    parser.add_argument("--file-mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=200000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-devices-", dir=args.dir))
    ok, why = io_uring_status()
    kinds = ["file", "io_uring"] if ok else ["file"]
    if not ok:
        console.print(f"[yellow]io_uring unavailable: {why}; FileDevice only[/]")
    direct_ok, direct_why = direct_io_status(root / "probe")
    if direct_ok:
        kinds.append("file_direct")
    else:
        console.print(f"[yellow]{direct_why}: no O_DIRECT column[/]")
    both = "io_uring" in kinds
    size = args.file_mb << 20
    try:
        reads: dict[tuple[str, int], float] = {}
        batching: dict[int, float] = {}
        writes: dict[tuple[str, int, int], float] = {}
        for kind in kinds:
            directory = root / kind
            dev = make_device(kind, directory)
            try:
                dev.write(0, os.urandom(size))  # now in the page cache
                for in_flight in (1, 32, 256):
                    if isinstance(dev, IoUringDevice):
                        calls, ops = dev.submit_calls, dev.submitted_ops
                    reads[kind, in_flight] = min(
                        random_reads(dev, size, args.reads, in_flight) for _ in range(args.rounds)
                    )
                    if isinstance(dev, IoUringDevice):
                        batch = (dev.submitted_ops - ops) / max(1, dev.submit_calls - calls)
                        batching[in_flight] = batch
            finally:
                dev.close()
            for page in (64 << 10, 1 << 20):
                for in_flight in (1, 8):
                    speeds = []
                    for _ in range(args.rounds):
                        shutil.rmtree(directory, ignore_errors=True)
                        fresh = make_device(kind, directory)
                        try:
                            speeds.append(sequential_writes(fresh, page, size, in_flight))
                        finally:
                            fresh.close()
                    writes[kind, page, in_flight] = max(speeds)
            shutil.rmtree(directory, ignore_errors=True)

        table = Table(
            title="Random 4 KiB reads, us per read, best of rounds (from the page cache;"
            " file_direct bypasses it and reads the disk)"
        )
        table.add_column("in flight")
        for kind in kinds:
            table.add_column(kind, justify="right")
        if both:
            table.add_column("io_uring / file", justify="right")
        for in_flight in (1, 32, 256):
            row = [str(in_flight)] + [f"{reads[k, in_flight] * 1e6:.2f}" for k in kinds]
            if both:
                row.append(f"{reads['io_uring', in_flight] / reads['file', in_flight]:.2f}x")
            table.add_row(*row)
        console.print(table)
        if batching:
            console.print(
                "io_uring operations per io_uring_submit call: "
                + ", ".join(f"{n} in flight: {b:.1f}" for n, b in batching.items())
            )

        table = Table(title=f"Sequential writes of {args.file_mb} MiB + flush (MB/s)")
        table.add_column("page")
        table.add_column("in flight")
        for kind in kinds:
            table.add_column(kind, justify="right")
        if both:
            table.add_column("io_uring / file", justify="right")
        for page in (64 << 10, 1 << 20):
            for in_flight in (1, 8):
                row = [f"{page >> 10} KiB", str(in_flight)]
                row += [f"{writes[k, page, in_flight]:.0f}" for k in kinds]
                if both:
                    ratio = writes["io_uring", page, in_flight] / writes["file", page, in_flight]
                    row.append(f"{ratio:.2f}x")
                table.add_row(*row)
        console.print(table)

        table = Table(title="FasterLog enqueue + commit (best of rounds)")
        columns = ("device", "entry", "API", "commit every", "entries/s", "MB/s", "raw MB/s")
        for column in (*columns, "log / raw"):
            table.add_column(column, justify="right")
        for kind in kinds:
            raw = max(writes[kind, 1 << 20, 1], writes[kind, 1 << 20, 8])
            for entry_size, batch, every in LOG_CASES:
                results = [
                    log_throughput(kind, root, entry_size, args.entries, batch, every)
                    for _ in range(args.rounds)
                ]
                per_s, mb_s = max(results)
                table.add_row(
                    kind,
                    f"{entry_size} B",
                    "enqueue_batch" if batch else "enqueue",
                    f"{every:,} entries",
                    f"{per_s:,.0f}",
                    f"{mb_s:.1f}",
                    f"{raw:.0f}",
                    f"{mb_s / raw:.3f}x",
                )
        console.print(table)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
