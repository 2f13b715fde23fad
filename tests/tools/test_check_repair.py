"""check and repair on clean and corrupted data directories (real files, real bit flips)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from faster_backend import FasterKV
from faster_backend.cli import main
from faster_backend.tools.check import check_store
from faster_backend.tools.layout import ToolError
from faster_backend.tools.repair import repair_store

from .conftest import OPS, recovered_prefix
from .store_builder import COMMITS_AT, OPTIONS, SNAPSHOT_AT

CK1 = "checkpoints/0000000000000001"
CK2 = "checkpoints/0000000000000002"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns otherwise


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x40]))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_clean_store_summary(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, "check", str(store))
    assert code == 0, out
    assert "result: clean" in out
    assert "store is not in use" in out
    assert f"records in the log: {len(OPS)} (100 deletions)" in out
    assert "live keys: 2000" in out  # 2100 keys written, 100 deleted
    assert "geometry (recorded): page size 4096, segment size 32768" in out
    assert "fold-over" in out and "snapshot" in out
    report = check_store(store)
    assert report.exit_code == 0 and not report.problems
    assert report.durable is not None and report.durable.point.live == 2000
    assert report.log_bytes_on_disk == sum(p.stat().st_size for p in (store / "log").iterdir())
    assert recovered_prefix(store) == len(OPS)


def test_exit_codes_from_the_installed_command(store: Path) -> None:
    cmd = [sys.executable, "-m", "faster_backend", "check", "--quiet", str(store)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    flip(store / "commits", (store / "commits").stat().st_size - 3)
    assert subprocess.run(cmd, capture_output=True).returncode == 1
    flip(store / "log" / "hlog.0", 5000)
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2
    assert "hlog.0 at offset 4096" in done.stdout.replace("\n", " ")


def _truncate(rel: str, keep: int) -> Callable[[Path], None]:
    def go(store: Path) -> None:
        path = store / rel
        os.truncate(path, keep if keep >= 0 else path.stat().st_size + keep)

    return go


def _flip(rel: str, offset: int) -> Callable[[Path], None]:
    def go(store: Path) -> None:
        path = store / rel
        flip(path, offset if offset >= 0 else path.stat().st_size + offset)

    return go


def _commit_entry_offset(store: Path, index: int) -> int:
    from faster_backend.tools.layout import scan_commits

    scan = scan_commits(store / "commits")
    return scan.ends[index - 1] + 10 if index else 10


# (name, corruption, check's exit code, the prefix recovered after repair, or None when the
# exact prefix depends on where the corrupted page falls)
CASES: list[tuple[str, Callable[[Path], None], int, int | None]] = [
    ("info flipped", _flip(f"{CK2}/info", 40), 1, len(OPS)),
    ("info truncated", _truncate(f"{CK2}/info", 30), 1, len(OPS)),
    ("index flipped", _flip(f"{CK2}/index", 4000), 1, len(OPS)),
    ("index truncated", _truncate(f"{CK2}/index", -100), 1, len(OPS)),
    ("snapshot flipped", _flip(f"{CK2}/snapshot", 100), 1, len(OPS)),
    ("snapshot truncated", _truncate(f"{CK2}/snapshot", 50), 1, len(OPS)),
    ("older checkpoint info flipped", _flip(f"{CK1}/info", 40), 1, len(OPS)),
    ("commit tail flipped", _flip("commits", -3), 1, COMMITS_AT[-2]),
    ("commit tail torn", _truncate("commits", -20), 1, COMMITS_AT[-2]),
    ("log segment tail truncated", _truncate("log/hlog.2", 20000), 2, None),
    ("log segment flipped above the snapshot", _flip("log/hlog.2", 26000), 2, None),
]


@pytest.mark.parametrize(("name", "corrupt", "code", "prefix"), CASES, ids=[c[0] for c in CASES])
def test_corruption_is_reported_and_repaired(
    store: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    corrupt: Callable[[Path], None],
    code: int,
    prefix: int | None,
) -> None:
    corrupt(store)
    got, out = run_cli(capsys, "check", str(store))
    assert got == code, out
    assert ("UNUSABLE" in out) == (code == 2)
    got, out = run_cli(capsys, "repair", str(store))
    assert got == 0, out
    if code == 2:
        assert "lost: log addresses" in out
    got, out = run_cli(capsys, "check", str(store))
    assert got == 0, out
    recovered = recovered_prefix(store)
    if prefix is not None:
        assert recovered == prefix
    else:
        assert SNAPSHOT_AT <= recovered < len(OPS)
        assert recovered in (SNAPSHOT_AT, *COMMITS_AT)
    assert check_store(store).exit_code == 0  # the store still checks clean after reopening


def test_first_commit_entry_corrupt_falls_back_to_the_snapshot(store: Path) -> None:
    flip(store / "commits", _commit_entry_offset(store, 0))
    report = check_store(store)
    assert report.exit_code == 1
    assert report.durable is not None and report.durable.source == "checkpoint 2"
    repair_store(store)
    assert check_store(store).exit_code == 0
    assert recovered_prefix(store) == SNAPSHOT_AT


def test_repair_reports_what_was_lost(store: Path) -> None:
    flip(store / "log" / "hlog.2", 26000)
    report = repair_store(store)
    loss = report.loss
    assert loss is not None and loss.bytes > 0 and loss.unreadable_pages
    assert report.after is not None and report.after.exit_code == 0
    kept = recovered_prefix(store)
    # every readable lost record belongs to an operation after the kept prefix
    lost_ops = {k for k, _ in OPS[kept:]}
    assert set(loss.keys) <= lost_ops
    assert loss.records > 0
    assert report.log_bytes_cut > 0


def test_corruption_below_every_point_needs_force(store: Path) -> None:
    flip(store / "log" / "hlog.0", 100)
    assert check_store(store).exit_code == 2
    with pytest.raises(ToolError, match="--force"):
        repair_store(store)
    assert check_store(store).exit_code == 2  # refusing changed nothing
    report = repair_store(store, force=True)
    assert report.everything_lost
    assert check_store(store).exit_code == 0
    with FasterKV(store, **OPTIONS) as kv:  # type: ignore[arg-type]
        assert len(kv) == 0 and kv.read(b"k1") is None
        kv.upsert(b"new", b"1")
    with FasterKV(store, **OPTIONS) as kv:  # type: ignore[arg-type]
        assert kv.read(b"new") == b"1"


def test_nothing_recoverable_is_unusable(store: Path) -> None:
    flip(store / CK1 / "info", 40)
    flip(store / CK2 / "index", 40)
    (store / "commits").unlink()
    report = check_store(store)
    assert report.exit_code == 2
    assert any("nothing is recoverable" in p.message for p in report.problems)


def test_repair_refuses_a_store_in_use_and_check_reports_the_holder(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FasterKV(store, **OPTIONS) as kv:  # type: ignore[arg-type]
        kv.upsert(b"x", b"y")
        code, out = run_cli(capsys, "repair", str(store))
        assert code == 2
        assert f"locked by process {os.getpid()}" in out
        code, out = run_cli(capsys, "check", str(store))
        assert code == 0, out
        assert f"store is in use by process {os.getpid()}" in out


def test_stale_tmp_checkpoint_is_a_note_and_repair_removes_it(store: Path) -> None:
    (store / "checkpoints" / "tmp-0000000000000009").mkdir()
    report = check_store(store)
    assert report.exit_code == 0 and any("interrupted checkpoint" in n for n in report.notes)
    repaired = repair_store(store)
    assert repaired.removed_stale
    assert not list((store / "checkpoints").glob("tmp-*"))


def test_explicit_geometry_that_does_not_match_is_caught(store: Path) -> None:
    report = check_store(store, page_size=8192, segment_size=32768)
    assert report.exit_code == 2  # every page read with the wrong size fails its checksum


INCREMENTAL_SCRIPT = """
import os, sys
from faster_backend import FasterKV
kv = FasterKV(sys.argv[1], memory_size="256KiB", page_size="4KiB", segment_size="32KiB",
              checkpoint_retention=3)
for phase, kind in enumerate(("fold-over", "snapshot", "incremental")):
    for i in range(300):
        kv.upsert(b"k%d" % i, b"%d" % phase)
    kv.checkpoint(kind)
os._exit(0)
"""


def test_corrupt_base_of_an_incremental_checkpoint(tmp_path: Path) -> None:
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-c", INCREMENTAL_SCRIPT, str(store)], check=True)
    assert check_store(store).exit_code == 0
    flip(store / CK2 / "snapshot", 60)
    report = check_store(store)
    assert report.exit_code == 1
    bad = {c.seq for c in report.checkpoints if not c.valid}
    assert bad == {2, 3}  # the incremental one cannot be applied without its base
    first = next(c for c in report.checkpoints if c.seq == 1)
    assert first.info is not None and report.durable is not None
    assert report.durable.point.tail == first.info.point.tail  # back to the fold-over
    repair_store(store)
    assert check_store(store).exit_code == 0
    with FasterKV(store, **OPTIONS) as kv:  # type: ignore[arg-type]
        assert {kv.read(b"k%d" % i) for i in range(300)} == {b"0"}


def test_salvage_keeps_the_log_below_the_first_bad_page(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip(store / "log" / "hlog.1", 5000)  # page 9, inside the fold-over checkpoint's log
    assert check_store(store).exit_code == 2
    code, out = run_cli(capsys, "repair", "--salvage", str(store))
    assert code == 0, out
    assert "salvaged: wrote a commit point at address 36864" in out
    assert check_store(store).exit_code == 0
    kept = recovered_prefix(store)  # exactly the operations whose records precede page 9
    assert 0 < kept < 1500
    report = check_store(store)
    assert report.durable is not None and report.durable.point.tail == 36864
    assert report.records == kept


def test_corrupt_begin_marker_is_unusable_until_repaired(store: Path) -> None:
    begin = store / "log" / "hlog.begin"
    begin.write_bytes(b"FBDEVBEG" + bytes(20))  # right size, version 0
    report = check_store(store)
    assert report.exit_code == 2 and any("hlog.begin" in str(p) for p in report.problems)
    with pytest.raises(Exception, match=r"hlog\.begin: bad magic or version"):
        FasterKV(store, **OPTIONS)  # type: ignore[arg-type]
    repaired = repair_store(store)
    assert repaired.rewrote_begin == 0
    assert check_store(store).exit_code == 0
    assert recovered_prefix(store) == len(OPS)


def test_corrupt_delta_falls_back_to_its_base(tmp_path: Path) -> None:
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-c", INCREMENTAL_SCRIPT, str(store)], check=True)
    delta = store / "checkpoints" / "0000000000000003" / "delta"
    flip(delta, delta.stat().st_size // 2)
    report = check_store(store)
    assert report.exit_code == 1
    assert [str(p.path) for p in report.problems] == [str(delta)]
    assert report.durable is not None and report.durable.source == "checkpoint 2"
    repair_store(store)
    assert check_store(store).exit_code == 0
    with FasterKV(store, **OPTIONS) as kv:  # type: ignore[arg-type]
        assert {kv.read(b"k%d" % i) for i in range(300)} == {b"1"}


def test_geometry_is_inferred_when_the_store_has_no_geometry_file(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (store / "geometry").unlink()
    code, out = run_cli(capsys, "check", str(store))
    assert code == 0, out
    assert "geometry (inferred): page size 4096, segment size 32768" in out


def test_the_tools_refuse_an_f2_store_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f2 = tmp_path / "f2"
    with FasterKV(f2, tiering="f2", memory_size="4MiB") as kv:
        kv.upsert(b"k", b"v")
    for argv in (["check", str(f2)], ["repair", str(f2)], ["backup", str(f2), str(tmp_path / "b")]):
        code, out = run_cli(capsys, *argv)
        assert code != 0, argv
        assert "is an F2 store (tiering='f2')" in out, out
    assert not (tmp_path / "b").exists()
