"""A process that keeps writing to a store and checkpointing it (for the backup tests).

Operation i upserts ``k<i % KEYS>`` = ``i``, so any consistent state is "every operation up to
some n". It prints ``ready`` after its first checkpoint and runs until it is killed.

    python writer_child.py DIR
"""

from __future__ import annotations

import sys
import time

from faster_backend import FasterKV
from faster_backend.engine.faster_kv import CHECKPOINT_KINDS

KEYS = 300
OPTIONS = dict(
    memory_size="128KiB", page_size="4KiB", segment_size="16KiB", log_size_limit="96KiB",
    read_cache_size="16KiB",
)


def main(path: str) -> None:
    kv = FasterKV(path, durability="periodic", commit_interval_ms=20, **OPTIONS)
    i = 0
    n_checkpoints = 0
    last = time.monotonic()
    ready = False
    while True:
        kv.upsert(b"k%d" % (i % KEYS), b"%d" % i + b"." * (i % 50))
        i += 1
        if time.monotonic() - last > 0.05:
            kv.checkpoint(CHECKPOINT_KINDS[n_checkpoints % len(CHECKPOINT_KINDS)])
            n_checkpoints += 1
            last = time.monotonic()
            if not ready:
                print("ready", flush=True)
                ready = True


if __name__ == "__main__":
    main(sys.argv[1])
