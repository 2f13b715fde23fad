"""backup and restore while another process keeps writing and checkpointing the store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from faster_backend import FasterKV
from faster_backend.cli import main
from faster_backend.tools.backup import backup_store, restore_store
from faster_backend.tools.check import check_store
from faster_backend.tools.layout import ToolError

from .writer_child import KEYS, OPTIONS

CHILD = str(Path(__file__).parent / "writer_child.py")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    path = tmp_path / "live"
    proc = subprocess.Popen(
        [sys.executable, CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "ready\n", proc.stderr.read() if proc.stderr else line
        yield path, proc
    finally:
        proc.kill()
        proc.wait(30)


def assert_consistent(path: Path) -> int:
    """The store holds exactly the writer's operations 0..n-1 for some n; returns n."""
    with FasterKV(path, **OPTIONS) as kv:  # type: ignore[arg-type]
        values = {j: kv.read(b"k%d" % j) for j in range(KEYS)}
        assert len(kv) == sum(v is not None for v in values.values())
    seen = {j: int(v.split(b".")[0]) for j, v in values.items() if v is not None}
    n = max(seen.values()) + 1
    for j in range(KEYS):
        expected = max((i for i in range(j, n, KEYS)), default=None)
        assert seen.get(j) == expected, (j, seen.get(j), expected, n)
        if expected is not None:
            assert values[j] == b"%d" % expected + b"." * (expected % 50)
    return n


def test_backup_and_restore_while_the_store_is_written(
    writer: tuple[Path, subprocess.Popen[str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live, proc = writer
    sizes: list[int] = []
    for round_ in range(3):
        dest = tmp_path / f"backup{round_}"
        assert main(["backup", str(live), str(dest)]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "the copy checks clean" in out
        target = tmp_path / f"restored{round_}"
        assert main(["restore", str(dest), str(target)]) == 0, capsys.readouterr()
        assert check_store(target).exit_code == 0
        sizes.append(assert_consistent(target))
        assert proc.poll() is None  # the writer kept running throughout
    assert sizes[-1] > sizes[0]  # later backups hold later checkpoints
    report = check_store(live)  # check while the writer works: read-only, sees the lock
    assert report.locked_by == proc.pid
    assert report.exit_code in (0, 1)  # a commit append may be caught half written


def test_backup_of_a_store_in_use_by_api(writer: tuple[Path, subprocess.Popen[str]],
                                         tmp_path: Path) -> None:
    live, _ = writer
    report = backup_store(live, tmp_path / "b")
    assert report.check.exit_code == 0
    assert report.seq >= 1 and report.bytes_copied > 0
    assert not (tmp_path / "b" / "LOCK").exists()


def test_restore_refuses_non_empty_or_locked_targets(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with FasterKV(src, **OPTIONS) as kv:  # type: ignore[arg-type]
        for j in range(KEYS):
            kv.upsert(b"k%d" % j, b"%d" % j + b"." * (j % 50))
    backup = tmp_path / "backup"
    backup_store(src, backup)
    with pytest.raises(ToolError, match="not empty"):
        backup_store(src, backup)
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("x")
    with pytest.raises(ToolError, match="--force"):
        restore_store(backup, target)
    assert (target / "precious").read_text() == "x"
    with FasterKV(tmp_path / "busy", **OPTIONS) as kv:  # type: ignore[arg-type]
        with pytest.raises(ToolError, match=f"in use by process {os.getpid()}"):
            restore_store(backup, tmp_path / "busy", force=True)
        kv.upsert(b"still", b"mine")
    restore_store(backup, target, force=True)
    assert not (target / "precious").exists()
    assert assert_consistent(target) == KEYS


def test_restore_refuses_a_corrupt_backup(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with FasterKV(src, **OPTIONS) as kv:  # type: ignore[arg-type]
        kv.upsert(b"k1", b"1")
    backup = tmp_path / "backup"
    backup_store(src, backup)
    info = next((backup / "checkpoints").glob("*/info"))
    info.write_bytes(info.read_bytes()[:-1] + b"\0")
    with pytest.raises(ToolError, match="not a clean backup"):
        restore_store(backup, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_backup_detects_segments_removed_by_compaction(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with FasterKV(src, durability="periodic", commit_interval_ms=3_600_000,
                  **OPTIONS) as kv:  # type: ignore[arg-type]
        for i in range(6000):
            kv.upsert(b"k%d" % (i % KEYS), b"%d" % i + b"." * (i % 50))
            if i % KEYS == KEYS - 1:
                kv.commit()  # read-only now: the next round appends instead of updating
            if i == 2999:
                kv.checkpoint("fold-over")
        kv.compact(kv.stats()["log_head_address"])
        assert kv.stats()["log_begin_address"] > 64  # the old log is gone (logically)
        # The engine may keep the segments the retained checkpoint needs (then the backup holds
        # its state) or delete them (then the backup must say so, and leave nothing behind).
        try:
            backup_store(src, tmp_path / "b1", attempts=2)
        except ToolError as exc:
            assert "compaction" in str(exc)
            assert not any((tmp_path / "b1").iterdir())
        else:
            restore_store(tmp_path / "b1", tmp_path / "r1")
            assert assert_consistent(tmp_path / "r1") == 3000
        kv.checkpoint("snapshot")  # a checkpoint after the compaction can be backed up
        report = backup_store(src, tmp_path / "b2")
        assert report.check.exit_code == 0
    restore_store(tmp_path / "b2", tmp_path / "restored")
    assert assert_consistent(tmp_path / "restored") == 6000


def test_a_restored_store_opens_without_sizes(tmp_path: Path) -> None:
    """The backup carries the geometry file: the copy opens with default arguments although
    the source used small pages and segments (defaults would misread its log)."""
    src = tmp_path / "src"
    with FasterKV(src, **OPTIONS) as kv:  # type: ignore[arg-type]
        for j in range(KEYS):
            kv.upsert(b"k%d" % j, b"%d" % j)
    backup_store(src, tmp_path / "backup")
    restore_store(tmp_path / "backup", tmp_path / "restored")
    with FasterKV(tmp_path / "restored") as kv:
        assert [kv.read(b"k%d" % j) for j in range(KEYS)] == [b"%d" % j for j in range(KEYS)]
