"""Kill -9 loop: any number of crash/recover cycles of the SumStore-style child of the crash
test (tests/engine/crash_child.py: threads with sessions doing RMW increments and upserts,
durability="always", printing every acknowledged operation, checkpoints every 50 ms).

    .venv/bin/python bench/crash_loop.py [--cycles 100] [--threads 3] [--seed 1] [--dir DIR]
        [--max-run 0.6]

After each kill: ``check`` must not find the store unusable (exit 1 is allowed: the kill may
land in the middle of a commit append, or of retention deleting an old checkpoint); recovery
must hold every acknowledged operation; each session's state must be exactly the prefix of its
operations up to its recovered serial number (counter sums, upserts present, nothing after the
prefix); the key count must be exact; and after the verifying open and clean close, ``check``
must be clean. Prints one line per cycle and a summary; exits 1 at the first violation (the
data dir is kept).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "engine"))
from crash_child import (  # noqa: E402  (the child program shared with the pytest crash test)
    COUNTERS,
    counter_key,
    is_upsert,
    open_store,
    run_and_kill,
    upsert_key,
    upsert_value,
)

from faster_backend.tools.check import check_store  # noqa: E402


class Violation(Exception):
    pass


def verify(path: Path, threads: int, acks: dict[int, int]) -> dict[int, int]:
    kv = open_store(str(path), durability="none")
    try:
        serials = {int(sid[1:]): n for sid, n in kv.recover().items()}
        expected_keys = 0
        for t in range(threads):
            r = serials.get(t, 0)
            if r < acks.get(t, 0):
                raise Violation(f"session {t}: acknowledged {acks[t]} but recovered {r}")
            increments = [0] * COUNTERS
            for n in range(1, r + 1):
                if not is_upsert(n):
                    increments[n % COUNTERS] += 1
            for c in range(COUNTERS):
                got = int(kv.read(counter_key(t, c)) or 0)
                if got != increments[c]:
                    raise Violation(f"session {t} counter {c}: {got}, expected {increments[c]}")
                expected_keys += 1 if increments[c] else 0
            for n in range(3, r + 1, 3):
                if kv.read(upsert_key(t, n)) != upsert_value(n):
                    raise Violation(f"session {t}: upsert {n} (<= serial {r}) missing or wrong")
                expected_keys += 1
            for n in range(r + 1, r + 60):
                if is_upsert(n) and kv.read(upsert_key(t, n)) is not None:
                    raise Violation(f"session {t}: upsert {n} after serial {r} is present")
        if len(kv) != expected_keys:
            raise Violation(f"len() is {len(kv)}, expected {expected_keys}")
        return serials
    finally:
        kv.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-run", type=float, default=0.6, help="longest run before a kill (s)")
    ap.add_argument("--dir", help="data directory (default: a temporary one, removed on success)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    path = Path(args.dir or tempfile.mkdtemp(prefix="faster-crash-")) / "store"
    before_codes: Counter[int] = Counter()
    serials: dict[int, int] = {}
    t0 = time.perf_counter()
    try:
        for cycle in range(1, args.cycles + 1):
            acks = run_and_kill(path, args.threads, rng.uniform(0.05, args.max_run))
            before = check_store(path)
            before_codes[before.exit_code] += 1
            if before.exit_code == 2:
                raise Violation("check: unusable after a crash: "
                                + "; ".join(str(p) for p in before.problems))
            new = verify(path, args.threads, acks)
            for t, n in serials.items():
                if new.get(t, 0) < n:
                    raise Violation(f"session {t}: recovered prefix shrank from {n} to {new[t]}")
            serials = new
            after = check_store(path)
            if after.exit_code != 0:
                raise Violation("check after recovery: " + "; ".join(map(str, after.problems)))
            print(f"cycle {cycle:4d}: acknowledged {sum(acks.values()):7d}, recovered serials"
                  f" {sum(new.values()):7d}, check before recovery exit {before.exit_code}"
                  + "".join(f"\n    {p}" for p in before.problems), flush=True)
    except (Violation, AssertionError) as exc:  # AssertionError: the child failed to start or died
        print(f"FAILED at cycle {cycle}: {exc}\ndata directory kept: {path}", flush=True)
        return 1
    elapsed = time.perf_counter() - t0
    print(f"{args.cycles} kill -9 cycles in {elapsed:.0f} s: every acknowledged write present,"
          f" sums match the recovered serials; check before recovery: "
          + ", ".join(f"exit {k}: {v}" for k, v in sorted(before_codes.items())))
    if not args.dir:
        shutil.rmtree(path.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
