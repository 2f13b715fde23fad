"""Damaged files and failing devices: FasterLog reports them and never returns wrong data."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import pytest

from faster_backend.engine.devices import Fault, FaultyDevice, FileDevice
from faster_backend.engine.log import FasterLog, LogCorruptionError, LogFailedError

from .conftest import MEMORY, PAGE, SEGMENT, payload


def make_log(directory: Path, count: int, commits: int = 1) -> list[int]:
    """A closed log of ``count`` committed entries (``commits`` commit records)."""
    log = FasterLog(directory, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    per = max(1, count // commits)
    addresses = []
    for i in range(count):
        addresses.append(log.enqueue(payload(i)))
        if (i + 1) % per == 0:
            log.commit()
    log.close()
    return addresses


def read_all(directory: Path) -> list[bytes]:
    with FasterLog(directory) as log:
        return [p for _, p in log.scan()]


def flip(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_flipped_bit_in_committed_data_names_file_and_offset(tmp_path: Path) -> None:
    addresses = make_log(tmp_path, 200)
    target = addresses[10] + 16 + 3  # inside the payload of entry 10, segment 0
    flip(tmp_path / "log.0", target)
    with FasterLog(tmp_path) as log, pytest.raises(LogCorruptionError) as info:
        list(log.scan())
    error = info.value
    assert error.path is not None and error.path.endswith("log.0")
    assert error.offset == addresses[10]
    assert "checksum" in str(error) and "log.0" in str(error)


def test_damage_in_the_tail_page_is_found_on_open(tmp_path: Path) -> None:
    addresses = make_log(tmp_path, 200)
    last = addresses[-1]
    segment, offset = divmod(last, SEGMENT)
    flip(tmp_path / f"log.{segment}", offset + 20)
    with pytest.raises(LogCorruptionError, match=f"log.{segment}"):
        FasterLog(tmp_path)


@pytest.mark.parametrize("seed", range(6))
def test_random_bit_flips_never_return_wrong_data(tmp_path: Path, seed: int) -> None:
    pristine = tmp_path / "pristine"
    make_log(pristine, 150, commits=3)
    expected = [payload(i) for i in range(150)]
    rng = random.Random(seed)
    files = sorted(p.name for p in pristine.iterdir() if p.name != "LOCK")
    for trial in range(12):
        work = tmp_path / f"t{trial}"
        shutil.copytree(pristine, work)
        name = rng.choice(files)
        path = work / name
        size = path.stat().st_size
        if size:
            flip(path, rng.randrange(size), rng.randrange(8))
        try:
            got = read_all(work)
        except LogCorruptionError:
            continue  # detected and reported
        # undetected flips may only hit bytes that carry no data (padding, stale space) or the
        # newest commit record, which falls back to an earlier commit: a prefix, never garbage
        assert got == expected[: len(got)], f"wrong data after flipping {name}"
        if not name.startswith("log.commit"):
            assert got == expected


def test_truncated_segment_file_is_detected(tmp_path: Path) -> None:
    make_log(tmp_path, 200)
    segment = tmp_path / "log.1"
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])
    with pytest.raises(LogCorruptionError):
        read_all(tmp_path)


def test_damaged_newest_commit_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = FasterLog(tmp_path, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    for i in range(50):
        log.enqueue(payload(i))
    log.commit()
    for i in range(50, 80):
        log.enqueue(payload(i))
    log.commit()
    log.close()
    commits = sorted(tmp_path.glob("log.commit.*"))
    assert len(commits) == 2
    newest = commits[-1]
    newest.write_bytes(newest.read_bytes()[:-5])  # torn
    with caplog.at_level(logging.WARNING):
        got = read_all(tmp_path)
    assert got == [payload(i) for i in range(50)]
    assert any(newest.name in r.getMessage() for r in caplog.records)


def test_every_commit_damaged_is_an_error(tmp_path: Path) -> None:
    make_log(tmp_path, 40, commits=2)
    for path in tmp_path.glob("log.commit.*"):
        flip(path, 0)
    with pytest.raises(LogCorruptionError, match="no valid commit record"):
        FasterLog(tmp_path)


def test_missing_commit_records_after_truncation_is_an_error(tmp_path: Path) -> None:
    log = FasterLog(tmp_path, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    addresses = [log.enqueue(payload(i)) for i in range(200)]
    log.truncate_until(addresses[150])
    log.close()
    for path in tmp_path.glob("log.commit.*"):
        path.unlink()
    with pytest.raises(LogCorruptionError, match="no commit record"):
        FasterLog(tmp_path)


def test_leftover_temporary_commit_file_is_ignored(tmp_path: Path) -> None:
    make_log(tmp_path, 40)
    (tmp_path / "log.commit.000000000099.tmp").write_bytes(b"half written")
    assert read_all(tmp_path) == [payload(i) for i in range(40)]
    assert not list(tmp_path.glob("*.tmp"))


# -- faults during commit ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("eio", ops=frozenset({"write"})),
        Fault("enospc"),
        Fault("short_write"),
        Fault("torn_write"),
        Fault("eio", ops=frozenset({"flush"})),
    ],
    ids=["eio-write", "enospc", "short-write", "torn-write", "eio-fsync"],
)
def test_fault_during_commit_loses_no_acknowledged_entry(tmp_path: Path, fault: Fault) -> None:
    device = FaultyDevice(FileDevice(tmp_path, segment_size=SEGMENT), seed=1)
    log = FasterLog(device, page_size=PAGE, memory_size=MEMORY)
    acknowledged = []
    for i in range(120):
        log.enqueue(payload(i))
        if i % 10 == 9:
            log.commit()
            acknowledged = [payload(k) for k in range(i + 1)]
    device.add_fault(fault)
    for i in range(120, 126):
        log.enqueue(payload(i))
    with pytest.raises(LogFailedError) as info:
        log.commit()
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(LogFailedError, match="reopen"):
        log.enqueue(b"more")
    log.close()
    device.close()
    got = read_all(tmp_path)
    assert got[: len(acknowledged)] == acknowledged
    assert got == [payload(i) for i in range(len(got))]


def test_failed_background_page_flush_surfaces_at_commit(tmp_path: Path) -> None:
    device = FaultyDevice(FileDevice(tmp_path, segment_size=SEGMENT), seed=2)
    log = FasterLog(device, page_size=PAGE, memory_size=MEMORY)
    for i in range(10):
        log.enqueue(payload(i))
    log.commit()
    device.add_fault(Fault("eio", address_range=(3 * PAGE, 4 * PAGE), ops=frozenset({"write"})))
    with pytest.raises(LogFailedError):  # at the next enqueue or at the commit
        for i in range(10, 60):  # fills pages 3 and beyond; page 3's flush fails
            log.enqueue(payload(i))
        log.commit()
    log.close()
    device.close()
    assert read_all(tmp_path) == [payload(i) for i in range(10)]


def test_read_fault_is_reported_not_hidden(tmp_path: Path) -> None:
    make_log(tmp_path, 100)
    device = FaultyDevice(FileDevice(tmp_path, segment_size=SEGMENT))
    log = FasterLog(device)
    try:
        device.add_fault(Fault("eio", ops=frozenset({"read"})))
        with pytest.raises(OSError, match="injected"):
            list(log.scan())
    finally:
        log.close()
        device.close()
