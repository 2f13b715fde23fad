"""Blocking list pops against a real server: wake-up order, timeouts, MULTI, scripts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("blocking"))
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(srv: ServerProcess, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    c = redis.Redis(port=srv.port, protocol=request.param)
    c.flushall()
    yield c
    c.close()


def _wait_blocked(r: redis.Redis, n: int) -> None:
    """Wait until ``n`` clients are parked (they show up as connected and idle)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(1 for c in r.client_list() if c.get("cmd") in ("blpop", "brpop", "blmove",
                                                               "brpoplpush")) >= n:
            time.sleep(0.05)
            return
        time.sleep(0.02)
    raise AssertionError("clients did not block")


def test_immediate_and_timeout(r: redis.Redis) -> None:
    r.rpush("q2", "x")
    assert tuple(r.blpop(["q1", "q2"], 1)) == (b"q2", b"x")
    r.rpush("q2", "a", "b")
    assert tuple(r.brpop(["q1", "q2"], 1)) == (b"q2", b"b")
    t = time.monotonic()
    assert r.blpop(["nothing"], 0.3) is None
    assert time.monotonic() - t >= 0.25
    assert r.brpoplpush("nothing", "dst", 0.2) is None
    assert r.blmove("nothing", "dst", 0.2, "LEFT", "RIGHT") is None


def test_errors(r: redis.Redis) -> None:
    r.set("s", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.blpop(["s"], 1)
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        r.execute_command("BLPOP", "k", "-1")
    with pytest.raises(redis.ResponseError, match="timeout is not a float or out of range"):
        r.execute_command("BLPOP", "k", "abc")


def test_fifo_wakeup_order(srv: ServerProcess, r: redis.Redis) -> None:
    results: list[tuple[int, object]] = []
    lock = threading.Lock()

    def waiter(i: int) -> None:
        c = redis.Redis(port=srv.port)
        v = c.blpop(["fifo", "other"], 20)
        with lock:
            results.append((i, None if v is None else tuple(v)))
        c.close()

    threads = []
    for i in range(3):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        _wait_blocked(r, i + 1)  # block in a known order
    r.rpush("fifo", "a")
    r.rpush("fifo", "b", "c")
    for t in threads:
        t.join(20)
    assert sorted(results, key=lambda p: p[0]) == [
        (0, (b"fifo", b"a")), (1, (b"fifo", b"b")), (2, (b"fifo", b"c"))
    ]
    assert r.llen("fifo") == 0 and not r.exists("fifo")


def test_blocked_on_several_keys_served_by_any(srv: ServerProcess, r: redis.Redis) -> None:
    out: list[object] = []
    c = redis.Redis(port=srv.port)
    t = threading.Thread(target=lambda: out.append(tuple(c.brpop(["k1", "k2", "k3"], 20))))
    t.start()
    _wait_blocked(r, 1)
    r.lpush("k3", "v3")
    t.join(20)
    assert out == [(b"k3", b"v3")]
    c.close()


def test_blmove_wakes_and_pushes(srv: ServerProcess, r: redis.Redis) -> None:
    out: list[object] = []
    c = redis.Redis(port=srv.port)
    t = threading.Thread(target=lambda: out.append(c.blmove("src", "dst", 20, "RIGHT", "LEFT")))
    t.start()
    _wait_blocked(r, 1)
    r.rpush("src", "1", "2")
    t.join(20)
    assert out == [b"2"]
    assert r.lrange("dst", 0, -1) == [b"2"] and r.lrange("src", 0, -1) == [b"1"]
    c.close()


def test_pipelined_commands_wait_for_the_blocked_one(srv: ServerProcess, r: redis.Redis) -> None:
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$2\r\npq\r\n$1\r\n0\r\n*2\r\n$4\r\nECHO\r\n$5\r\nafter\r\n")
    _wait_blocked(r, 1)
    s.settimeout(0.3)
    with pytest.raises(TimeoutError):
        s.recv(100)
    r.rpush("pq", "v")
    s.settimeout(10)
    buf = b""
    while not buf.endswith(b"after\r\n"):
        buf += s.recv(100)
    assert buf == b"*2\r\n$2\r\npq\r\n$1\r\nv\r\n$5\r\nafter\r\n"
    s.close()


def test_disconnected_waiter_is_forgotten(srv: ServerProcess, r: redis.Redis) -> None:
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$2\r\ndq\r\n$1\r\n0\r\n")
    _wait_blocked(r, 1)
    s.close()
    time.sleep(0.2)
    r.rpush("dq", "kept")
    assert r.lrange("dq", 0, -1) == [b"kept"]


def test_no_blocking_inside_multi_or_scripts(r: redis.Redis) -> None:
    p = r.pipeline(transaction=True)
    p.blpop(["empty"], 0)
    p.brpoplpush("empty", "d", 0)
    p.rpush("full", "x")
    p.blpop(["full"], 0)
    got = p.execute()
    assert got[:3] == [None, None, 1] and tuple(got[3]) == (b"full", b"x")
    assert r.eval("return redis.call('blpop', 'empty', 0)", 0) is None
    r.rpush("full", "y")
    assert r.eval("return redis.call('brpop', KEYS[1], 0)", 1, "full") == [b"full", b"y"]


def test_push_in_multi_serves_after_exec(srv: ServerProcess, r: redis.Redis) -> None:
    out: list[object] = []
    c = redis.Redis(port=srv.port)
    t = threading.Thread(target=lambda: out.append(tuple(c.blpop(["mq"], 20))))
    t.start()
    _wait_blocked(r, 1)
    p = r.pipeline(transaction=True)
    p.rpush("mq", "a")
    p.llen("mq")
    assert p.execute() == [1, 1]  # served only after EXEC, as in Redis
    t.join(20)
    assert out == [(b"mq", b"a")]
    c.close()


def test_served_blmove_aborts_watchers_of_its_destination(srv: ServerProcess,
                                                          r: redis.Redis) -> None:
    out: list[object] = []
    c = redis.Redis(port=srv.port)
    t = threading.Thread(target=lambda: out.append(c.blmove("wsrc", "wdst", 20)))
    t.start()
    _wait_blocked(r, 1)
    watcher = redis.Redis(port=srv.port)
    with watcher.pipeline() as p:
        p.watch("wdst")
        r.rpush("wsrc", "v")  # the blocked client moves it into wdst at once
        t.join(20)
        p.multi()
        p.rpush("wdst", "mine")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert out == [b"v"] and r.lrange("wdst", 0, -1) == [b"v"]
    watcher.close()
    c.close()


def test_xread_block_is_woken_by_xadd(srv: ServerProcess, r: redis.Redis) -> None:
    out: list[object] = []
    c = redis.Redis(port=srv.port)
    r.xadd("xs", {"old": "1"}, id="1-1")
    t = threading.Thread(target=lambda: out.append(c.xread({"xs": "$"}, block=20000)))
    t.start()
    _wait_blocked_cmd(r, "xread")
    r.xadd("xs", {"new": "2"}, id="2-1")
    t.join(20)
    got: Any = out[0]
    streams = got if isinstance(got, dict) else {k: v for k, v in got}
    assert [tuple(e) for e in streams[b"xs"]] == [(b"2-1", {b"new": b"2"})]
    assert r.xread({"xs": "$"}, block=100) in (None, [], {})
    c.close()


def _wait_blocked_cmd(r: redis.Redis, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(cl.get("cmd") == name for cl in r.client_list()):
            time.sleep(0.05)
            return
        time.sleep(0.02)
    raise AssertionError("client did not block")
