"""The fast lane (fastlane.py, _frames.c) answers exactly as the general path does.

Two servers run in this process, each with one connection on an in-memory transport: one with
the lane, one without. The same requests, cut into the same random chunks, must produce the same
bytes on both, and the same stores.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.config import Config
from faster_backend.integrations.resp import fastlane
from faster_backend.integrations.resp import server as server_module
from faster_backend.integrations.resp.server import Connection, RespServer

needs_lane = pytest.mark.skipif(fastlane.scan_run is None, reason="_frames is not built")


def test_the_lane_is_built_where_required() -> None:
    # scripts/test.sh sets this, so CI fails if the extension silently did not build.
    if os.environ.get("FASTER_BACKEND_REQUIRE_NATIVE") == "1":
        assert fastlane.scan_run is not None, "resp._frames did not build or import"
    elif os.environ.get("FASTER_BACKEND_PURE_PYTHON", "") not in ("", "0"):
        assert fastlane.scan_run is None


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class Recorder:
    """The transport half a connection uses: keeps what is written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def is_closing(self) -> bool:
        return self.closed

    def is_reading(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    abort = close


class Side:
    """One server and its connections, with the lane on or off."""

    def __init__(self, lane: bool, path: Path) -> None:
        self.lane = lane
        config = Config()
        config.store.path = str(path)
        config.store.memory_size = 1 << 20  # small: some keys are read from the device
        config.store.page_size = 1 << 14  # values over a page are refused by the store
        self.server = RespServer(config)
        self.conns: list[tuple[Connection, Recorder]] = []

    def connect(self) -> int:
        conn = Connection(self.server)
        rec = Recorder()
        with lane_enabled(self.lane):
            conn.connection_made(rec)  # type: ignore[arg-type]
        self.conns.append((conn, rec))
        return len(self.conns) - 1

    def send(self, which: int, chunk: bytes) -> None:
        with lane_enabled(self.lane):
            self.conns[which][0].data_received(chunk)
            self.server.flush()

    def output(self, which: int) -> bytes:
        return bytes(self.conns[which][1].data)

    async def close(self) -> None:
        for conn, _ in self.conns:
            conn.connection_lost(None)
        await self.server.shutdown()


class lane_enabled:
    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        self.saved = server_module._LANE
        server_module._LANE = self.on

    def __exit__(self, *exc: object) -> None:
        server_module._LANE = self.saved


def in_loop(body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` on an event loop (connections and the end-of-turn flush need one)."""
    asyncio.run(body())


KEYS = st.sampled_from([b"k0", b"k1", b"k2", b"K1", b"list", b"n"])
VALUES = st.sampled_from(
    [b"", b"v", b"0", b"12", b"x" * 300, b"z" * 20_000, b"y" * 70_000, b"\r\n*2\r\n"]
)

REQUEST = st.one_of(
    st.tuples(st.sampled_from([b"GET", b"get", b"Get"]), KEYS).map(lambda t: frame(*t)),
    st.tuples(st.sampled_from([b"SET", b"set", b"sEt"]), KEYS, VALUES).map(lambda t: frame(*t)),
    st.tuples(KEYS, VALUES).map(lambda t: frame(b"SET", t[0], t[1], b"EX", b"100")),
    st.tuples(st.sampled_from([b"INCR", b"incr"]), KEYS).map(lambda t: frame(*t)),
    st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3).map(
        lambda pairs: frame(b"MSET", *[x for pair in pairs for x in pair])
    ),
    st.just(frame(b"MSET", b"k0", b"v", b"k1")),  # an even count: wrong number of arguments
    st.tuples(KEYS).map(lambda t: frame(b"DEL", *t)),
    st.tuples(KEYS, VALUES).map(lambda t: frame(b"LPUSH", *t)),
    st.tuples(KEYS).map(lambda t: frame(b"GET", t[0], b"extra")),
    st.just(frame(b"MULTI")),
    st.just(frame(b"EXEC")),
    st.just(frame(b"HELLO", b"3")),
    st.just(frame(b"HELLO", b"2")),
    st.just(frame(b"SELECT", b"1")),
    st.just(b"GET k1\r\n"),  # inline
    st.just(b"*2\r\n$3\r\nGET\r\n$02\r\nk1\r\n"),  # a leading zero: a protocol error
    st.just(b"*2\r\n$3\r\nGET\r\n$2\r\nk1XX"),  # no CRLF after the bulk
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@needs_lane
@settings(max_examples=60, deadline=None)
@given(
    requests=st.lists(REQUEST, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=6),
)
def test_the_lane_answers_as_the_general_path(requests: list[bytes], cuts: list[int]) -> None:
    data = b"".join(requests) + frame(b"SELECT", b"0") + frame(b"MGET", b"k0", b"k1", b"K1")

    async def body() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            sides = [Side(False, Path(tmp) / "general"), Side(True, Path(tmp) / "lane")]
            try:
                for side in sides:
                    side.connect()
                    for chunk in chunks(data, cuts):
                        side.send(0, chunk)
                general, lane = sides
                assert lane.output(0) == general.output(0)
                kv_g = general.server.state.db(0).kv
                kv_l = lane.server.state.db(0).kv
                keys = sorted(kv_l.keys())
                assert keys == sorted(kv_g.keys())
                assert kv_l.read_many(keys) == kv_g.read_many(keys)
            finally:
                for side in sides:
                    await side.close()

    in_loop(body)


@needs_lane
def test_a_pipelined_run_is_answered_by_the_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[int, int]] = []
    scan = fastlane.scan_run
    assert scan is not None

    def spy(data: bytes, pos: int, max_len: int) -> tuple[int, int, int, list[Any]]:
        end, code, requests, items = scan(data, pos, max_len)
        runs.append((code, requests, len(items)))
        return end, code, requests, items

    monkeypatch.setattr(fastlane, "scan_run", spy)

    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            side.connect()
            sets = b"".join(frame(b"SET", b"k%d" % i, b"v%d" % i) for i in range(16))
            gets = b"".join(frame(b"GET", b"k%d" % i) for i in range(17))
            msets = frame(b"MSET", b"n1", b"1", b"n2", b"x") * 2
            incrs = frame(b"INCR", b"n1") * 2 + frame(b"INCR", b"n2")
            side.send(0, sets + gets + msets + incrs + frame(b"PING"))
            expected = b"+OK\r\n" * 16
            expected += b"".join(b"$%d\r\nv%d\r\n" % (len(b"v%d" % i), i) for i in range(16))
            expected += b"$-1\r\n+OK\r\n+OK\r\n:2\r\n:3\r\n"
            expected += b"-ERR value is not an integer or out of range\r\n+PONG\r\n"
            assert side.output(0) == expected
            assert runs == [(2, 16, 16), (1, 17, 17), (4, 2, 4), (3, 3, 3), (0, 0, 0)]
            stats = side.server.state.db(0).kv.stats()
            assert stats["read_hits"] == 16 and stats["read_misses"] == 1
            assert side.server.state.commands_processed == 39
        finally:
            await side.close()

    in_loop(body)


@needs_lane
@pytest.mark.parametrize(
    "write",
    [frame(b"SET", b"k", b"1"), frame(b"MSET", b"x", b"0", b"k", b"1"), frame(b"INCR", b"k")],
    ids=["set", "mset", "incr"],
)
def test_writes_through_the_lane_fail_a_watch(tmp_path: Path, write: bytes) -> None:
    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            watcher, writer = side.connect(), side.connect()
            side.send(watcher, frame(b"WATCH", b"k"))
            side.send(writer, write * 2)
            side.send(watcher, frame(b"MULTI") + frame(b"GET", b"k") + frame(b"EXEC"))
            assert side.output(watcher) == b"+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n"
        finally:
            await side.close()

    in_loop(body)


@needs_lane
def test_sets_through_the_lane_replace_a_list(tmp_path: Path) -> None:
    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            side.connect()
            side.send(0, frame(b"LPUSH", b"l", b"a") + frame(b"LPUSH", b"m", b"a"))
            side.send(0, frame(b"SET", b"l", b"2") + frame(b"MSET", b"m", b"3"))
            side.send(0, frame(b"GET", b"l") + frame(b"TYPE", b"m") + frame(b"GET", b"m"))
            assert side.output(0) == b":1\r\n:1\r\n+OK\r\n+OK\r\n$1\r\n2\r\n+string\r\n$1\r\n3\r\n"
        finally:
            await side.close()

    in_loop(body)


@needs_lane
def test_a_get_or_incr_of_a_list_in_a_run_is_wrongtype(tmp_path: Path) -> None:
    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            side.connect()
            side.send(0, frame(b"LPUSH", b"l", b"a") + frame(b"SET", b"s", b"v"))
            side.send(0, frame(b"GET", b"s") + frame(b"GET", b"l") + frame(b"GET", b"none"))
            side.send(0, frame(b"INCR", b"n") + frame(b"INCR", b"l") + frame(b"INCR", b"n"))
            wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            assert side.output(0) == (
                b":1\r\n+OK\r\n$1\r\nv\r\n" + wrongtype + b"$-1\r\n:1\r\n" + wrongtype + b":2\r\n"
            )
        finally:
            await side.close()

    in_loop(body)


@needs_lane
def test_resp3_misses_are_nulls(tmp_path: Path) -> None:
    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            side.connect()
            side.send(0, frame(b"HELLO", b"3"))
            hello = side.output(0)
            side.send(0, frame(b"SET", b"a", b"1") + frame(b"GET", b"a") + frame(b"GET", b"b"))
            assert side.output(0)[len(hello) :] == b"+OK\r\n$1\r\n1\r\n_\r\n"
        finally:
            await side.close()

    in_loop(body)


@needs_lane
def test_an_expired_key_in_a_run_is_a_miss(tmp_path: Path) -> None:
    async def body() -> None:
        side = Side(True, tmp_path)
        try:
            side.connect()
            side.send(0, frame(b"SET", b"a", b"1", b"PX", b"1") + frame(b"SET", b"b", b"2"))
            await asyncio.sleep(0.01)
            side.send(0, frame(b"GET", b"a") + frame(b"GET", b"b") + frame(b"GET", b"a"))
            assert side.output(0) == b"+OK\r\n+OK\r\n$-1\r\n$1\r\n2\r\n$-1\r\n"
        finally:
            await side.close()

    in_loop(body)


@needs_lane
def test_an_argument_over_proto_max_bulk_len_is_refused_as_without_the_lane(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        sides = [Side(False, tmp_path / "general"), Side(True, tmp_path / "lane")]
        try:
            for side in sides:
                side.connect()
                side.send(0, frame(b"CONFIG", b"SET", b"proto-max-bulk-len", b"100"))
                side.send(0, frame(b"SET", b"k", b"x" * 101) + frame(b"GET", b"k"))
            assert b"invalid bulk length" in sides[1].output(0)
            assert sides[1].output(0) == sides[0].output(0)
            assert sides[1].server.state.db(0).kv.read(b"k") is None
        finally:
            for side in sides:
                await side.close()

    in_loop(body)
