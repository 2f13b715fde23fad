"""``DirectFile``: O_DIRECT reads and writes at any offset and length against a bytearray model."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.engine.devices.direct_io import DIRECT_SECTOR_SIZE, DirectFile, span

from .conftest import _DIRECT_OK, _DIRECT_WHY

pytestmark = pytest.mark.skipif(not _DIRECT_OK, reason=_DIRECT_WHY)

SIZE = 5 * DIRECT_SECTOR_SIZE + 123

ops = st.lists(
    st.tuples(
        st.booleans(),
        st.integers(0, SIZE - 1),
        st.integers(0, 2 * DIRECT_SECTOR_SIZE + 7),
        st.integers(0, 255),
    ),
    max_size=30,
)


def test_span_covers_the_request_in_whole_sectors() -> None:
    assert span(0, 8) == (0, DIRECT_SECTOR_SIZE)
    assert span(DIRECT_SECTOR_SIZE - 1, 2) == (0, 2 * DIRECT_SECTOR_SIZE)
    sector = DIRECT_SECTOR_SIZE
    assert span(sector, sector) == (sector, 2 * sector)


def test_the_file_is_opened_with_o_direct(tmp_path: Path) -> None:
    f = DirectFile(tmp_path / "f")
    try:
        assert fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        f.close()


@settings(max_examples=60, deadline=None)
@given(ops=ops)
def test_unaligned_writes_and_reads_match_a_bytearray(tmp_path_factory: pytest.TempPathFactory,
                                                     ops: list[tuple[bool, int, int, int]]) -> None:
    path = tmp_path_factory.mktemp("direct") / "f"
    f = DirectFile(path)
    model = bytearray()
    try:
        for write, offset, length, fill in ops:
            if write:
                data = bytes((fill + i) % 256 for i in range(length))
                f.pwrite(data, offset)
                if length and len(model) < offset + length:  # as os.pwrite: b"" extends nothing
                    model.extend(bytes(offset + length - len(model)))
                model[offset : offset + length] = data
            else:
                want = bytes(model[offset : offset + length])
                want += bytes(length - len(want))  # zeros beyond the end
                assert f.pread(length, offset) == want
        # every byte written is there, read back in one go and through the buffered path
        assert f.pread(len(model), 0) == bytes(model)
    finally:
        f.close()
    assert path.read_bytes()[: len(model)] == bytes(model)


def test_reads_past_the_end_are_zeros_after_a_full_sector_was_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\xff" * DIRECT_SECTOR_SIZE + b"0123456789")  # ends inside a sector
    f = DirectFile(path)
    try:
        assert f.pread(DIRECT_SECTOR_SIZE, 0) == b"\xff" * DIRECT_SECTOR_SIZE
        # the sector buffer held 0xff bytes: the part past the end must not show them
        assert f.pread(20, DIRECT_SECTOR_SIZE + 5) == b"56789" + bytes(15)
    finally:
        f.close()
