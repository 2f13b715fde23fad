"""kill -9 a process that appends and commits; every acknowledged entry must survive intact."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from faster_backend.engine.devices import io_uring_status
from faster_backend.engine.log import FasterLog

from .crash_child import entry

CHILD = Path(__file__).with_name("crash_child.py")
IO_URING = io_uring_status()[0]
# 10 in the default suite; FASTER_LOG_CRASH_CYCLES=200 for a longer hunt
CYCLES = int(os.environ.get("FASTER_LOG_CRASH_CYCLES", "10"))


def run_child_until_killed(directory: Path, seed: int, run_for: float, kind: str) -> int:
    """Start the child, kill -9 it after ``run_for`` seconds of acknowledged work.

    Returns the highest acknowledged entry number (-1 if none).
    """
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(seed), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = [-1]
    first_ack = threading.Event()

    def read_acks() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked[0] = int(line.split()[1])
            first_ack.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    try:
        # wait for the child to be working (start-up is slow on a loaded machine), then let it
        # run a random while so that the kill lands anywhere in the enqueue/commit cycle
        if not first_ack.wait(60):
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"the child never acknowledged a commit: {err}")
        time.sleep(run_for)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.kill()  # SIGKILL
    finally:
        proc.wait()
        reader.join(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    return acked[0]


def test_kill_9_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("FASTER_LOG_CRASH_SEED", "1234")))
    highest_ack = -1
    for cycle in range(CYCLES):
        kind = "io_uring" if cycle % 2 and IO_URING else "file"  # same files, both devices
        acked = run_child_until_killed(tmp_path, cycle, rng.uniform(0.05, 0.6), kind)
        assert acked >= highest_ack
        highest_ack = acked
        with FasterLog(tmp_path) as log:
            count = 0
            for i, (_, value) in enumerate(log.scan()):
                assert value == entry(i), f"cycle {cycle}: entry {i} differs"
                count += 1
            position = log.iterator_position("reader")
            log.close(commit=False)
        assert count > highest_ack, f"cycle {cycle}: acknowledged {highest_ack}, found {count}"
        assert position is not None
