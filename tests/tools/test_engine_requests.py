"""Durability behaviour the tools rely on, found while building them (see docs/durability.md).

These exercise the engine through the public API only; a failure here is a request to the
engine's owner, described in the test's docstring.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from faster_backend import FasterKV
from faster_backend.tools.check import check_store

SCRIPT = """
import os, sys
from faster_backend import FasterKV
kv = FasterKV(sys.argv[1], memory_size="256KiB", page_size="4KiB", segment_size="32KiB",
              durability="always")
kv.upsert(sys.argv[2].encode(), b"acknowledged")
os._exit(0)  # a crash: no clean close, no checkpoint
"""


def crash_after_write(path: Path, key: str) -> None:
    subprocess.run([sys.executable, "-c", SCRIPT, str(path), key], check=True, timeout=60)


def test_commits_after_a_torn_commit_entry_survive_the_next_crash(tmp_path: Path) -> None:
    """A crash in the middle of a commit append leaves a torn entry at the end of ``commits``.
    Recovery ignores it, but the reopened store appends its next commits *after* the torn
    bytes, and every later recovery stops reading at the torn entry: writes acknowledged with
    durability="always" after the first crash are lost at the second one (unless a fold-over
    checkpoint rewrote the file meanwhile). Engine request: cut the commit log back to its
    last valid entry (truncate to the end of that entry) before appending after recovery."""
    store = tmp_path / "store"
    crash_after_write(store, "first")
    with (store / "commits").open("ab") as fh:
        fh.write(b"\x43\x56\x4b\x46\x10\x00")  # a torn entry: magic and half a length
    crash_after_write(store, "second")
    report = check_store(store)
    with FasterKV(store, memory_size="256KiB", page_size="4KiB", segment_size="32KiB") as kv:
        assert kv.read(b"first") == b"acknowledged"
        assert kv.read(b"second") == b"acknowledged", (
            f"acknowledged write lost; check said: {[str(p) for p in report.problems]}"
        )
