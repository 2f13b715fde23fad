"""Pub/sub with redis-py's PubSub in RESP2 and RESP3, and the slow-subscriber limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("pubsub"))
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def proto(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _next(p: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=0.2)
        if m is not None:
            return dict(m)
    raise AssertionError("no message")


def test_subscribe_publish_patterns(srv: ServerProcess, proto: int) -> None:
    r = redis.Redis(port=srv.port, protocol=proto)
    p = r.pubsub()
    p.subscribe("news", "sport")
    assert _next(p) == {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1}
    assert _next(p)["data"] == 2
    p.psubscribe("n*")
    assert _next(p) == {"type": "psubscribe", "pattern": None, "channel": b"n*", "data": 3}
    assert r.publish("news", "hello") == 2
    assert _next(p) == {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"}
    assert _next(p) == {"type": "pmessage", "pattern": b"n*", "channel": b"news",
                        "data": b"hello"}
    assert r.publish("nobody", "x") == 1  # the pattern
    assert _next(p)["channel"] == b"nobody"
    assert r.publish("other", "x") == 0
    assert sorted(r.pubsub_channels()) == [b"news", b"sport"]
    assert r.pubsub_channels("s*") == [b"sport"]
    assert r.pubsub_numsub("news", "zzz") == [(b"news", 1), (b"zzz", 0)]
    assert r.pubsub_numpat() == 1
    p.unsubscribe("news")
    assert _next(p) == {"type": "unsubscribe", "pattern": None, "channel": b"news", "data": 2}
    p.punsubscribe()
    assert _next(p)["type"] == "punsubscribe"
    p.unsubscribe()
    assert _next(p) == {"type": "unsubscribe", "pattern": None, "channel": b"sport", "data": 0}
    assert r.pubsub_numpat() == 0 and r.pubsub_channels() == []
    p.close()
    r.close()


def test_subscriber_run_in_thread(srv: ServerProcess, proto: int) -> None:
    r = redis.Redis(port=srv.port, protocol=proto)
    got: list[bytes] = []
    p = r.pubsub()
    p.subscribe(**{"jobs": lambda m: got.append(m["data"])})
    t = p.run_in_thread(sleep_time=0.05)
    try:
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("jobs")[0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        for i in range(20):
            r.publish("jobs", str(i))
        while len(got) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [str(i).encode() for i in range(20)]
    finally:
        t.stop()
        t.join(5)
        r.close()


def _raw(port: int, data: bytes, until: bytes, timeout: float = 5.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf = b""
    while until not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


def test_resp2_subscribed_context_and_ping(srv: ServerProcess) -> None:
    out = _raw(
        srv.port,
        b"SUBSCRIBE a\r\nGET x\r\nPING\r\nPING hi\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\n",
        b"+PONG\r\n",
    )
    assert out == (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET"
        b" are allowed in this context\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        b"+PONG\r\n"
    )


def test_resp3_push_and_commands_while_subscribed(srv: ServerProcess) -> None:
    out = _raw(srv.port, b"HELLO 3\r\nSUBSCRIBE a b\r\nSET k v\r\nPUBLISH a m\r\n", b"m\r\n:1\r\n")
    assert (
        b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        in out
    )
    # Its own message comes after the replies before PUBLISH and before PUBLISH's count.
    assert out.endswith(b"+OK\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nm\r\n:1\r\n")


def test_slow_subscriber_is_disconnected(srv: ServerProcess) -> None:
    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"SUBSCRIBE firehose\r\n")
    r = redis.Redis(port=srv.port)
    deadline = time.monotonic() + 5
    while r.pubsub_numsub("firehose")[0][1] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    payload = b"x" * (1 << 20)
    delivered = 0
    for _ in range(80):  # 80 MiB never read: over the 32 MiB hard limit
        delivered += r.publish("firehose", payload)
        if r.pubsub_numsub("firehose")[0][1] == 0:
            break
    assert r.pubsub_numsub("firehose")[0][1] == 0, "the slow subscriber was not dropped"
    assert delivered < 80
    assert r.ping()
    slow.close()
    r.close()
    assert "pubsub output buffer over client-output-buffer-limit" in srv.log()


def test_reset_leaves_every_subscription(srv: ServerProcess) -> None:
    out = _raw(srv.port, b"SUBSCRIBE a\r\nPSUBSCRIBE p*\r\nRESET\r\nGET x\r\n", b"$-1\r\n")
    assert out.endswith(b"+RESET\r\n$-1\r\n")
    r = redis.Redis(port=srv.port)
    assert r.pubsub_numsub("a") == [(b"a", 0)] and r.pubsub_numpat() == 0
    r.close()
