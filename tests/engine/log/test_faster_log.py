"""FasterLog behaviour: append, commit, recovery, iterators, truncation."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faster_backend.engine.devices import Fault, FaultyDevice, FileDevice, NullDevice
from faster_backend.engine.log import (
    EntryTooLargeError,
    FasterLog,
    LogClosedError,
)

from .conftest import MEMORY, PAGE, SEGMENT, LogOpener, payload


def entries(log: FasterLog, **kwargs: object) -> list[bytes]:
    return [p for _, p in log.scan(**kwargs)]  # type: ignore[arg-type]


def test_round_trip_across_pages_and_segments(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    expected = [payload(i) for i in range(400)]  # ~240 KiB: many pages and segments
    addresses = [log.enqueue(e) for e in expected]
    assert addresses == sorted(addresses) and len(set(addresses)) == 400
    assert entries(log) == []  # nothing is committed yet
    assert entries(log, uncommitted=True) == expected
    end = log.commit()
    assert end == log.tail_address == log.committed_until
    assert entries(log) == expected
    assert log.read_entry(addresses[123]) == expected[123]
    assert [p for _, p in log.scan(start=addresses[10], end=addresses[20])] == expected[10:20]
    assert len(list(tmp_path.glob("log.[0-9]*"))) > 2


def test_edge_sizes(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    biggest = b"\xab" * log.max_entry_size
    values = [b"", b"a", biggest, b"", bytes(7), bytes(8), bytes(9), biggest]
    for v in values:
        log.enqueue(v)
    with pytest.raises(EntryTooLargeError, match="does not fit"):
        log.enqueue(bytes(log.max_entry_size + 1))
    log.commit()
    assert entries(log) == values
    open_log.close(log)
    log = open_log(tmp_path)
    assert entries(log) == values


def test_enqueue_batch_and_memoryviews(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batch = [payload(i) for i in range(300)]
    addresses = log.enqueue_batch(batch)
    buf = bytearray(b"view-data")
    log.enqueue(memoryview(buf)[5:])
    log.commit()
    assert entries(log) == [*batch, b"data"]
    assert [a for a, _ in log.scan()][:300] == addresses


def test_recovery_keeps_committed_and_drops_the_rest(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    committed = [payload(i) for i in range(150)]
    for e in committed:
        log.enqueue(e)
    log.commit()
    for i in range(150, 170):
        log.enqueue(payload(i))  # never committed
    open_log.close(log, commit=False)
    log = open_log(tmp_path)
    assert entries(log) == committed
    assert entries(log, uncommitted=True) == committed
    # appending after recovery continues the log correctly
    log.enqueue(b"after")
    log.commit()
    open_log.close(log, commit=False)
    log = open_log(tmp_path)
    assert entries(log) == [*committed, b"after"]


def test_wait_for_commit_and_background_commit(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    address = log.enqueue(b"one")
    assert not log.wait_for_commit(address + 1, timeout=0.05)
    target = log.commit(wait=False)
    assert target == log.tail_address
    assert log.wait_for_commit(target, timeout=30)
    assert log.committed_until >= target > address
    log.enqueue(b"two")
    log.commit(wait=False)
    assert log.wait_for_commit(timeout=30)
    assert entries(log) == [b"one", b"two"]


def test_commit_interval_policy(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path, commit_interval=0.02)
    address = log.enqueue(b"periodic")
    assert log.wait_for_commit(address + 1, timeout=30)  # nobody called commit
    assert entries(log) == [b"periodic"]
    with pytest.raises(ValueError):
        FasterLog(tmp_path / "x", commit_interval=0)


def test_concurrent_enqueue_and_commit(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    errors: list[BaseException] = []
    acked: dict[int, list[bytes]] = {t: [] for t in range(4)}

    def writer(t: int) -> None:
        try:
            for i in range(150):
                value = f"{t}:{i}".encode() * (i % 30 + 1)
                address = log.enqueue(value)
                if i % 10 == 0:
                    log.commit()
                    assert log.committed_until > address
                acked[t].append(value)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    log.commit()
    got = entries(log)
    for t in range(4):
        mine = [e for e in got if e.startswith(f"{t}:".encode())]
        assert mine == acked[t]  # each writer's entries, in its order


def test_try_enqueue_returns_none_when_memory_is_full(tmp_path: Path) -> None:
    device = FaultyDevice(FileDevice(tmp_path, segment_size=SEGMENT))
    device.add_fault(Fault("delay", delay=1.0, ops=frozenset({"write"})))
    log = FasterLog(device, page_size=PAGE, memory_size=2 * PAGE)
    try:
        refused = 0
        for _ in range(200):
            if log.try_enqueue(bytes(1000)) is None:
                refused += 1
                break
        assert refused == 1  # two pages in memory, both waiting for slow flushes
        device.clear_faults()
        log.enqueue(bytes(1000))  # enqueue waits for a free page instead
        log.commit()
    finally:
        log.close()
        device.close()


def test_named_iterator_resumes_after_restart(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    values = [payload(i) for i in range(100)]
    fifth = [log.enqueue(v) for v in values][5]
    log.commit()
    reader = log.scan(name="reader")
    seen = [next(reader)[1] for _ in range(40)]  # 39 completed, the 40th in progress
    other = log.scan(name="other")
    for _ in range(10):
        next(other)
    log.commit()  # persists both positions
    next(reader)  # completes the 40th, not persisted before the crash
    open_log.close(log, commit=False)

    log = open_log(tmp_path)
    resumed = [p for _, p in log.scan(name="reader")]
    assert seen[:39] + resumed == values  # at-least-once: the 40th comes again
    assert [p for _, p in log.scan(name="other")] == values[9:]
    # an explicit start does not override a persisted position; a new name starts there
    assert [p for _, p in log.scan(name="fresh", start=fifth)] == values[5:]
    log.remove_iterator("other")
    log.commit()
    open_log.close(log)
    log = open_log(tmp_path)
    assert log.iterator_position("other") is None
    assert log.iterator_position("reader") is not None


def test_iterator_complete_until(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    addresses = [log.enqueue(payload(i)) for i in range(20)]
    log.commit()
    it = log.scan(name="manual")
    it.complete_until(addresses[15])
    log.commit()
    open_log.close(log)
    log = open_log(tmp_path)
    assert [p for _, p in log.scan(name="manual")] == [payload(i) for i in range(15, 20)]


def test_follow_iterator_sees_new_commits(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    got: list[bytes] = []

    def follow() -> None:
        for _, value in log.scan(follow=True):
            got.append(value)
            if len(got) == 30:
                return

    thread = threading.Thread(target=follow)
    thread.start()
    for i in range(30):
        log.enqueue(payload(i))
        if i % 7 == 0:
            log.commit()
    log.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert got == [payload(i) for i in range(30)]


def test_truncate_until_deletes_segments_after_commit(open_log: LogOpener, tmp_path: Path) -> None:
    log = open_log(tmp_path)
    addresses = [log.enqueue(payload(i)) for i in range(300)]
    log.commit()
    segments_before = sorted(tmp_path.glob("log.[0-9]*"))
    cut = addresses[200]
    log.truncate_until(cut)
    assert entries(log) == [payload(i) for i in range(200, 300)]
    assert sorted(tmp_path.glob("log.[0-9]*")) == segments_before  # not before the commit
    log.commit()
    remaining = sorted(int(p.name.split(".")[1]) for p in tmp_path.glob("log.[0-9]*"))
    assert remaining[0] == cut // SEGMENT
    assert len(remaining) < len(segments_before)
    with pytest.raises(ValueError):
        log.truncate_until(log.tail_address + 8)
    open_log.close(log)
    log = open_log(tmp_path)
    assert log.begin_address == cut
    assert entries(log) == [payload(i) for i in range(200, 300)]


def test_reopen_checks_configuration(tmp_path: Path) -> None:
    log = FasterLog(tmp_path, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    log.enqueue(b"x")
    # one opener at a time: another process is refused, and told who holds the directory
    probe = (
        "import sys\n"
        "from faster_backend.engine.data_dir import DataDirLockedError\n"
        "from faster_backend.engine.log import FasterLog\n"
        "try:\n"
        "    FasterLog(sys.argv[1])\n"
        "except DataDirLockedError as exc:\n"
        "    print(exc.holder_pid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == str(os.getpid()), out.stderr
    log.close()
    with pytest.raises(ValueError, match="page_size=4096"):
        FasterLog(tmp_path, page_size=2 * PAGE)
    with pytest.raises(ValueError, match="segment_size"):
        FasterLog(tmp_path, segment_size=2 * SEGMENT)
    with FasterLog(tmp_path) as again:  # the stored layout is used
        assert again.page_size == PAGE
        assert entries(again) == [b"x"]
    with pytest.raises(ValueError, match="NullDevice"):
        FasterLog(NullDevice())
    with pytest.raises(ValueError, match="2 pages"):
        FasterLog(tmp_path / "small", page_size=PAGE, memory_size=PAGE)


def test_closed_log_refuses_work(tmp_path: Path) -> None:
    log = FasterLog(tmp_path, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    log.enqueue(b"x")
    log.close()
    log.close()
    with pytest.raises(LogClosedError):
        log.enqueue(b"y")
    with pytest.raises(LogClosedError):
        log.scan()


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 3000)),
        st.tuples(st.just("batch"), st.lists(st.integers(0, 900), max_size=8)),
        st.tuples(st.just("commit"), st.just(0)),
        st.tuples(st.just("crash"), st.just(0)),
        st.tuples(st.just("truncate"), st.integers(0, 100)),
    ),
    max_size=30,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_steps)
def test_random_operations_match_a_list_model(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, object]]
) -> None:
    directory = tmp_path_factory.mktemp("log")
    log = FasterLog(directory, page_size=PAGE, memory_size=MEMORY, segment_size=SEGMENT)
    model: list[tuple[int, bytes]] = []  # everything enqueued (address, value)
    committed = 0  # entries of the model that are committed
    begin = 0  # entries of the model dropped by truncation
    durable_begin = 0  # truncation is persisted by the next commit
    try:
        for n, (op, arg) in enumerate(steps):
            if op == "enqueue":
                assert isinstance(arg, int)
                value = bytes([n % 256]) * arg
                model.append((log.enqueue(value), value))
            elif op == "batch":
                assert isinstance(arg, list)
                values = [bytes([n % 256, k % 256]) * s for k, s in enumerate(arg)]
                model.extend(zip(log.enqueue_batch(values), values, strict=True))
            elif op == "commit":
                log.commit()
                committed = len(model)
                durable_begin = begin
            elif op == "crash":
                log.close(commit=False)
                del model[committed:]
                begin = durable_begin
                log = FasterLog(directory)
            else:
                assert isinstance(arg, int)
                if committed > begin:
                    keep = begin + arg % (committed - begin)
                    log.truncate_until(model[keep][0])
                    begin = keep
            expected = model[begin:committed]
            assert list(log.scan()) == expected
    finally:
        log.close(commit=False)
