"""Child process of the FasterLog crash test: appends numbered entries and commits forever.

Prints ``ack N`` after each commit that made entries 0..N durable; the parent kill -9s it.
Usage: ``crash_child.py DIR SEED file|io_uring``.
"""

from __future__ import annotations

import random
import sys

from faster_backend.engine.devices import IoUringDevice
from faster_backend.engine.log import FasterLog


def entry(i: int) -> bytes:
    return i.to_bytes(8, "little") + bytes([i % 251]) * ((i * 37) % 700)


def main() -> None:
    directory, seed, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    layout = {"page_size": 8192, "memory_size": 64 * 1024}
    if kind == "io_uring":
        device = IoUringDevice(directory, segment_size=64 * 1024)
        log = FasterLog(device, **layout)
    else:
        log = FasterLog(directory, segment_size=64 * 1024, **layout)
    following = sum(1 for _ in log.scan())
    reader = log.scan(name="reader")
    while True:
        batch = rng.randrange(1, 60)
        if rng.random() < 0.5:
            log.enqueue_batch([entry(following + k) for k in range(batch)])
        else:
            for k in range(batch):
                log.enqueue(entry(following + k))
        following += batch
        for _ in range(rng.randrange(0, 5)):  # a consumer that persists its position
            next(reader, None)
        log.commit(wait=rng.random() < 0.8)
        log.wait_for_commit()
        sys.stdout.write(f"ack {following - 1}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
