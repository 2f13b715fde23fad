"""Checkpoints, commits and recovery: round trips, CPR serials, durability modes, corruption."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faster_backend import FasterKV
from faster_backend.engine.checkpoint import CorruptFileError
from faster_backend.engine.devices import Fault, FaultyDevice, FileDevice
from faster_backend.engine.faster_kv import FasterKv
from faster_backend.engine.hybrid_log import FlushError

SMALL = {"memory_size": "128KiB", "page_size": "16KiB", "segment_size": "64KiB", "index_size": 16}


def open_small(path: Path, **kw: object) -> FasterKV:
    return FasterKV(path, **{**SMALL, **kw})  # type: ignore[arg-type]


def fill(kv: FasterKV, n: int, tag: bytes = b"v") -> dict[bytes, bytes]:
    model = {}
    for i in range(n):
        key, value = b"k%05d" % i, tag + b"%d" % i * 5
        kv.upsert(key, value)
        model[key] = value
    for i in range(0, n, 7):
        kv.delete(b"k%05d" % i)
        model.pop(b"k%05d" % i)
    return model


def assert_state(kv: FasterKV, model: dict[bytes, bytes], n: int) -> None:
    for i in range(n):
        key = b"k%05d" % i
        assert kv.read(key) == model.get(key), key
    assert len(kv) == len(model) == len(set(kv.keys()))


@pytest.mark.parametrize("kind", ["fold-over", "snapshot"])
def test_checkpoint_then_reopen(tmp_path: Path, kind: str) -> None:
    kv = open_small(tmp_path, checkpoint_kind=kind)
    model = fill(kv, 3000)
    kv.close()  # takes a checkpoint of the configured kind
    kv = open_small(tmp_path)
    assert kv.recovery is not None and kv.recovery.checkpoint is not None
    assert_state(kv, model, 3000)
    kv.close()


def test_snapshot_checkpoint_keeps_in_place_updates_possible(tmp_path: Path) -> None:
    kv = open_small(tmp_path, memory_size="1MiB")
    kv.upsert(b"counter", b"0000")
    kv.checkpoint("snapshot")
    before = kv.stats()["in_place_updates"]
    kv.upsert(b"counter", b"0001")
    assert kv.stats()["in_place_updates"] == before + 1  # still mutable after a snapshot
    kv.checkpoint("fold-over")
    kv.upsert(b"counter", b"0002")
    assert kv.stats()["in_place_updates"] == before + 1  # fold-over made it read-only
    kv.close()


def crash_after(tmp_path: Path, body: str, durability: str) -> None:
    """Run ``body`` against an open store in a child and end it without closing (a crash)."""
    code = (
        textwrap.dedent(
            f"""
        import os
        from faster_backend import FasterKV
        kv = FasterKV({str(tmp_path)!r}, memory_size="128KiB", page_size="16KiB",
                      segment_size="64KiB", index_size=16, durability={durability!r})
        """
        )
        + textwrap.dedent(body)
        + "\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_commit_survives_a_crash_and_uncommitted_writes_do_not(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        for i in range(2000):
            kv.upsert(b"k%05d" % i, b"v%d" % i)
        kv.commit()
        kv.upsert(b"late", b"not committed")
        """,
        "none",
    )
    kv = open_small(tmp_path)
    assert kv.recovery.checkpoint is None  # no checkpoint: the whole log was replayed
    assert kv.recovery.replayed_records == 2000
    assert kv.read(b"k01999") == b"v1999"
    assert kv.read(b"late") is None
    assert len(kv) == 2000
    kv.close()


def test_always_durability_loses_nothing_acknowledged(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        for i in range(300):
            kv.upsert(b"k%d" % i, b"v%d" % i)
            kv.rmw(b"n", lambda old: b"%d" % (int(old or 0) + 1))
        kv.delete(b"k5")
        """,
        "always",
    )
    kv = open_small(tmp_path)
    assert kv.read(b"n") == b"300"
    assert kv.read(b"k299") == b"v299"
    assert kv.read(b"k5") is None
    assert len(kv) == 300
    kv.close()


def test_periodic_durability_commits_in_the_background(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        import time
        for i in range(500):
            kv.upsert(b"k%d" % i, b"v%d" % i)
        deadline = time.time() + 30
        while kv.stats()["committed_address"] < kv.stats()["log_tail_address"]:
            assert time.time() < deadline
            time.sleep(0.01)
        """,
        "periodic",
    )
    kv = open_small(tmp_path)
    assert all(kv.read(b"k%d" % i) == b"v%d" % i for i in range(500))
    kv.close()


def test_sessions_recover_their_serial_numbers_and_continue(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        a = kv.session("alpha")
        b = kv.session("beta")
        for i in range(50):
            a.upsert(b"a%d" % i, b"x")
        for i in range(20):
            b.rmw(b"count", lambda old: b"%d" % (int(old or 0) + 1))
        kv.commit()
        a.upsert(b"a-uncommitted", b"x")
        """,
        "none",
    )
    kv = open_small(tmp_path)
    assert kv.recover() == {"alpha": 50, "beta": 20}
    assert kv.read(b"a49") == b"x" and kv.read(b"a-uncommitted") is None
    s = kv.session("alpha")
    assert s.serial == 50
    s.upsert(b"a50", b"y")
    assert s.serial == 51
    kv.close()
    kv = open_small(tmp_path)
    assert kv.recover()["alpha"] == 51
    assert kv.recover()["beta"] == 20  # a session not continued keeps its serial
    kv.close()


def test_retention_keeps_the_last_n_checkpoints(tmp_path: Path) -> None:
    kv = open_small(tmp_path, checkpoint_retention=3)
    for round_ in range(6):
        kv.upsert(b"r", b"%d" % round_)
        kv.checkpoint()
    kv.close()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(names) == 3
    assert [int(n) for n in names] == [5, 6, 7]  # 6 explicit + the one at close


def test_compaction_deletes_files_only_after_a_durable_point(tmp_path: Path) -> None:
    kv = open_small(tmp_path, durability="periodic", commit_interval_ms=60_000)
    for r in range(4):
        fill(kv, 1500, b"%d" % r)
    kv.commit()
    kv.compact(kv.stats()["log_head_address"])
    # compaction committed its new begin before deleting anything: a crash now is safe
    segments = sorted(int(p.suffix[1:]) for p in (tmp_path / "log").glob("hlog.[0-9]*"))
    begin = kv.stats()["log_begin_address"]
    assert segments[0] == begin // (64 * 1024)
    assert kv.stats()["committed_address"] == kv.stats()["log_tail_address"]
    kv.close()


def test_a_second_process_cannot_open_the_directory(tmp_path: Path) -> None:
    kv = open_small(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", f"from faster_backend import FasterKV; FasterKV({str(tmp_path)!r})"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert f"locked by process {os.getpid()}" in out.stderr
    kv.close()


# -- corruption ---------------------------------------------------------------------------------


def flip_bits(path: Path, rng: random.Random, n: int = 3, start: int = 0) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(n):
        i = rng.randrange(start, len(data))
        data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def two_checkpoints(tmp_path: Path) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """A store with checkpoint 1 (state A) and, at close, checkpoint 2 (state B)."""
    kv = open_small(tmp_path)
    a = fill(kv, 1500, b"a")
    kv.checkpoint()
    b = fill(kv, 1500, b"b")
    kv.close()
    return a, b


@pytest.mark.parametrize("victim", ["info", "index"])
@pytest.mark.parametrize("damage", ["bits", "truncate"])
def test_a_corrupt_newest_checkpoint_falls_back(
    tmp_path: Path, victim: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, b = two_checkpoints(tmp_path)
    newest = sorted((tmp_path / "checkpoints").iterdir())[-1] / victim
    if damage == "bits":
        flip_bits(newest, random.Random(1))
    else:
        newest.write_bytes(newest.read_bytes()[: len(newest.read_bytes()) // 2])
    kv = open_small(tmp_path)
    assert kv.recovery.skipped_checkpoints and str(newest) in kv.recovery.skipped_checkpoints[0]
    assert str(newest) in caplog.text  # the warning names the file
    # the older checkpoint plus the commit point of the newest one: state B exactly
    assert_state(kv, b, 1500)
    kv.close()


def test_a_corrupt_snapshot_is_detected(tmp_path: Path) -> None:
    kv = open_small(tmp_path, memory_size="1MiB", checkpoint_kind="snapshot")
    fill(kv, 500)
    kv.close()
    snap = sorted((tmp_path / "checkpoints").iterdir())[-1] / "snapshot"
    flip_bits(snap, random.Random(2), start=32)
    with pytest.raises(CorruptFileError, match="checkpoint"):
        open_small(tmp_path)  # the only checkpoint is corrupt and no commit covers it


@pytest.mark.parametrize("damage", ["bits", "truncate"])
def test_a_corrupt_log_page_is_reported_with_file_and_offset(tmp_path: Path, damage: str) -> None:
    two_checkpoints(tmp_path)
    segment = tmp_path / "log" / "hlog.1"
    if damage == "bits":
        flip_bits(segment, random.Random(3))
    else:
        segment.write_bytes(segment.read_bytes()[:1000])
    with pytest.raises(CorruptFileError) as err:
        open_small(tmp_path)
    assert "hlog.1" in str(err.value) and "offset" in str(err.value)
    # nothing was touched: the lock is free and the files are as they were
    with pytest.raises(CorruptFileError):
        open_small(tmp_path)


def test_a_torn_commit_log_tail_is_ignored(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        for i in range(100):
            kv.upsert(b"k%05d" % i, b"v%d" % i)
        kv.commit()
        for i in range(100, 200):
            kv.upsert(b"k%05d" % i, b"v%d" % i)
        kv.commit()
        """,
        "none",
    )
    commits = tmp_path / "commits"
    data = commits.read_bytes()
    commits.write_bytes(data[:-5])  # tear the last entry
    kv = open_small(tmp_path)
    assert kv.recovery.torn_commit and "commits" in kv.recovery.torn_commit
    assert kv.read(b"k00099") == b"v99"
    assert kv.read(b"k00150") is None  # the torn commit is not trusted
    assert len(kv) == 100
    kv.close()


def test_corruption_never_yields_wrong_values(tmp_path: Path) -> None:
    """Random damage to random files: recovery either fails clearly or returns true values."""
    rng = random.Random(11)
    for trial in range(12):
        d = tmp_path / f"t{trial}"
        _, b = two_checkpoints(d)
        files = [p for p in d.rglob("*") if p.is_file() and p.name != "LOCK" and p.stat().st_size]
        victim = rng.choice(files)
        flip_bits(victim, rng, n=rng.randrange(1, 20))
        try:
            kv = open_small(d)
        except CorruptFileError as exc:
            assert str(victim.name) in str(exc) or "checkpoint" in str(exc), (victim, exc)
            continue
        for key, value in b.items():
            got = kv.read(key)
            assert got == value, (victim, key, got)
        kv.close()


# -- faults during commit and checkpoint -------------------------------------------------------


def test_write_faults_during_commit_surface_and_lose_nothing_acknowledged(tmp_path: Path) -> None:
    from faster_backend.engine.data_dir import DataDir

    DataDir(tmp_path).release()
    inner = FileDevice(tmp_path / "log", name="hlog", segment_size=64 * 1024)
    dev = FaultyDevice(inner)
    kv = FasterKv(
        memory_size=128 * 1024, page_size=16 * 1024, device=dev, state_dir=tmp_path, index_size=16
    )
    for i in range(1000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    kv.commit()
    dev.add_fault(Fault("eio", ops=frozenset({"write"})))
    kv.upsert(b"late", b"x")
    with pytest.raises((FlushError, OSError)):
        kv.commit()
    dev.clear_faults()
    kv._closed = True  # simulate the crash that follows: no checkpoint at close
    dev.close()
    kv2 = open_small(tmp_path)
    assert all(kv2.read(b"k%d" % i) == b"v%d" % i for i in range(1000))
    assert kv2.read(b"late") is None
    kv2.close()


@pytest.mark.parametrize("kind", ["fold-over", "snapshot"])
def test_write_faults_during_checkpoint_keep_the_previous_state(tmp_path: Path, kind: str) -> None:
    from faster_backend.engine.data_dir import DataDir

    DataDir(tmp_path).release()
    inner = FileDevice(tmp_path / "log", name="hlog", segment_size=64 * 1024)
    dev = FaultyDevice(inner)
    kv = FasterKv(
        memory_size=128 * 1024, page_size=16 * 1024, device=dev, state_dir=tmp_path, index_size=16
    )
    for i in range(1000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    kv.checkpoint(kind)
    for i in range(1000, 2000):
        kv.upsert(b"k%d" % i, b"v%d" % i)
    dev.add_fault(Fault("eio", ops=frozenset({"write", "flush"})))
    with pytest.raises((FlushError, OSError)):
        kv.checkpoint("fold-over")
    assert len(list((tmp_path / "checkpoints").glob("tmp-*"))) <= 1  # never a half checkpoint
    dev.clear_faults()
    kv._closed = True  # the process dies here
    dev.close()
    kv2 = open_small(tmp_path)
    assert kv2.recovery.checkpoint == 1
    assert all(kv2.read(b"k%d" % i) == b"v%d" % i for i in range(1000))
    assert len(kv2) == 1000
    kv2.close()


def test_incremental_snapshots_write_only_changed_pages_and_recover(tmp_path: Path) -> None:
    crash_after(
        tmp_path,
        """
        big = 1 << 20
        kv.close()
        kv = FasterKV(kv.data_dir.path, memory_size="4MiB", page_size="16KiB",
                      segment_size="64KiB", index_size=64)
        for i in range(4000):
            kv.upsert(b"k%05d" % i, b"%08d" % i)
        kv.checkpoint("incremental")  # the first one is a full snapshot
        kv.upsert(b"k00007", b"changed!")  # in place: one dirty page
        kv.checkpoint("incremental")
        for i in range(4000, 4100):
            kv.upsert(b"k%05d" % i, b"%08d" % i)  # appended pages
        kv.delete(b"k00008")
        kv.checkpoint("incremental")
        """,
        "none",
    )
    ckpts = sorted((tmp_path / "checkpoints").iterdir())
    kinds = [(p / "snapshot").exists() for p in ckpts]
    assert kinds[0] and not any(kinds[1:])  # one full snapshot, then deltas
    full = (ckpts[-3] / "snapshot").stat().st_size if len(ckpts) >= 3 else 0
    deltas = [(p / "delta").stat().st_size for p in ckpts if (p / "delta").exists()]
    assert deltas and max(deltas) < full / 2  # deltas hold only changed pages
    kv = FasterKV(tmp_path, memory_size="4MiB", page_size="16KiB", segment_size="64KiB")
    assert kv.recovery.checkpoint == int(ckpts[-1].name)
    assert kv.read(b"k00007") == b"changed!"
    assert kv.read(b"k00008") is None
    assert kv.read(b"k04099") == b"%08d" % 4099
    assert kv.read(b"k01234") == b"%08d" % 1234
    assert len(kv) == 4099
    kv.close()


def test_retention_keeps_the_bases_of_incremental_checkpoints(tmp_path: Path) -> None:
    kv = FasterKV(
        tmp_path,
        memory_size="4MiB",
        page_size="64KiB",
        segment_size="256KiB",
        checkpoint_retention=1,
    )
    kv.upsert(b"a", b"1")
    base = kv.checkpoint("snapshot")
    for i in range(3):
        kv.upsert(b"a", b"%d" % i)
        kv.checkpoint("incremental")
    names = [int(p.name) for p in (tmp_path / "checkpoints").iterdir()]
    assert base in names and len(names) == 4  # the newest needs its whole chain
    kv._closed = True
    kv.device.close()
    kv.data_dir.release()  # type: ignore[union-attr]
    newest = tmp_path / "checkpoints" / f"{max(names):016d}" / "delta"
    flip_bits(newest, random.Random(5), start=40)
    kv = FasterKV(tmp_path, memory_size="4MiB", page_size="64KiB", segment_size="256KiB")
    assert kv.recovery.skipped_checkpoints  # the corrupt delta was skipped
    assert kv.read(b"a") == b"1"  # the previous incremental holds a = 1 (loop value 1)
    kv.close()


@pytest.mark.parametrize("durability", ["none", "always"])
def test_a_crash_right_after_clear_recovers_an_empty_store(tmp_path: Path, durability: str) -> None:
    """clear() deletes the old log's segments: the empty state must be durable first, or the
    checkpoint taken before it points at files that are gone and the store cannot open."""
    crash_after(
        tmp_path,
        """
        for i in range(2000):
            kv.upsert(b"k%05d" % i, b"v" * 50)
        kv.checkpoint()
        for i in range(100):
            kv.upsert(b"late%d" % i, b"x")
        kv.clear()
        """,
        durability,
    )
    kv = open_small(tmp_path)
    assert len(kv) == 0 and list(kv.keys()) == []
    assert kv.read(b"k00001") is None and kv.read(b"late1") is None
    kv.upsert(b"after", b"clear")
    kv.close()
    kv = open_small(tmp_path)
    assert kv.read(b"after") == b"clear" and len(kv) == 1
    kv.close()
