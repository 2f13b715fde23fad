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
    # Channels of its own: the server may see this connection close after the next test starts.
    out = _raw(srv.port, b"HELLO 3\r\nSUBSCRIBE p q\r\nSET k v\r\nPUBLISH p m\r\n", b"$1\r\nm\r\n")
    assert (
        b">3\r\n$9\r\nsubscribe\r\n$1\r\np\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:2\r\n"
        in out
    )
    # Its own message follows PUBLISH's count (Redis 7.2; 7.0 sent it before the count).
    assert out.endswith(b"+OK\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\np\r\n$1\r\nm\r\n")


MESSAGE = b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\n%b\r\n"
PMESSAGE = b">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$1\r\n%b\r\n"


def test_resp3_publish_to_itself_inside_multi_and_scripts(srv: ServerProcess) -> None:
    """The messages a RESP3 client publishes to itself inside MULTI/EXEC or a script arrive
    right after the EXEC / EVAL reply (never inside it), channel before pattern (Redis 7.2)."""
    script = b"redis.call('publish', 'a', 's'); return 7"
    out = _raw(
        srv.port,
        b"HELLO 3\r\nSUBSCRIBE a\r\nPSUBSCRIBE a*\r\nMULTI\r\nPING\r\nPUBLISH a m\r\n"
        b"PUBLISH b x\r\nPUBLISH a n\r\nEXEC\r\n"
        + b"EVAL \"%b\" 0\r\n" % script
        + b"PING end\r\n",
        b"$3\r\nend\r\n",
    )
    tail = out[out.index(b"+QUEUED\r\n" * 4) + len(b"+QUEUED\r\n" * 4) :]
    assert tail == (
        b"*4\r\n+PONG\r\n:2\r\n:0\r\n:2\r\n"
        + MESSAGE % b"m" + PMESSAGE % b"m" + MESSAGE % b"n" + PMESSAGE % b"n"
        + b":7\r\n" + MESSAGE % b"s" + PMESSAGE % b"s"
        + b"$3\r\nend\r\n"
    )


def test_pubsub_output_limits_are_config_settable(srv: ServerProcess) -> None:
    r = redis.Redis(port=srv.port)
    default = "normal 1073741824 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    assert r.config_get("client-output-buffer-limit") == {"client-output-buffer-limit": default}
    try:
        assert r.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 0 slave 1 2 3")
        assert r.config_get("client-output-buffer-limit")["client-output-buffer-limit"] == (
            "normal 1073741824 0 0 slave 1 2 3 pubsub 1048576 524288 0"
        )
        for bad, why in (
            ("pubsub 1mb 1mb", "Wrong number of arguments in buffer limit configuration."),
            ("master 1 1 1", "Invalid client class specified in buffer limit configuration."),
            ("pubsub x 1 1", "Error in hard, soft or soft_seconds"),
            ("pubsub 1 1 -1", "Error in hard, soft or soft_seconds"),
        ):
            with pytest.raises(redis.ResponseError, match=why):
                r.config_set("client-output-buffer-limit", bad)
        # A subscriber that does not read is cut off at the new 1 MiB hard limit.
        slow = socket.create_connection(("127.0.0.1", srv.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"SUBSCRIBE small\r\n")
        deadline = time.monotonic() + 15
        while r.pubsub_numsub("small")[0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        for _ in range(80):  # 20 MiB never read (beyond what the kernel buffers)
            r.publish("small", b"x" * (256 << 10))
            if r.pubsub_numsub("small")[0][1] == 0:
                break
        assert r.pubsub_numsub("small")[0][1] == 0, "the limit set by CONFIG SET did not apply"
        slow.close()
    finally:
        r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60 slave 256mb 64mb 60")
    assert r.config_get("client-output-buffer-limit") == {"client-output-buffer-limit": default}
    r.close()


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


def _clients(r: redis.Redis, name: str) -> dict[str, str]:
    c = next(c for c in r.client_list() if c["name"] == name)
    return {k: str(v) for k, v in c.items()}


def test_client_list_shows_subscriptions_multi_and_blocking(srv: ServerProcess) -> None:
    r = redis.Redis(port=srv.port)
    sub = socket.create_connection(("127.0.0.1", srv.port))
    sub.sendall(b"CLIENT SETNAME subber\r\nSUBSCRIBE a b\r\nPSUBSCRIBE p*\r\n")
    multi = socket.create_connection(("127.0.0.1", srv.port))
    multi.sendall(b"CLIENT SETNAME multier\r\nMULTI\r\nPING\r\nGET x\r\n")
    blocked = socket.create_connection(("127.0.0.1", srv.port))
    blocked.sendall(b"CLIENT SETNAME blocker\r\nBLPOP nothing-here 0\r\n")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            s, m, b = _clients(r, "subber"), _clients(r, "multier"), _clients(r, "blocker")
            if s["psub"] == "1" and m["multi"] == "2" and b["flags"] == "b":
                break
            time.sleep(0.02)
        assert (s["flags"], s["sub"], s["psub"], s["multi"]) == ("P", "2", "1", "-1")
        assert (m["flags"], m["sub"], m["psub"], m["multi"]) == ("x", "0", "0", "2")
        assert (b["flags"], b["cmd"]) == ("b", "blpop")
        assert int(s["fd"]) > 0 and s["omem"] == "0"
        assert r.info("clients")["blocked_clients"] == 1
        pubsub_ids = [c["id"] for c in r.client_list(_type="pubsub")]
        assert pubsub_ids == [s["id"]]
        assert s["id"] not in [c["id"] for c in r.client_list(_type="normal")]
        own = {k: str(v) for k, v in r.client_info().items()}
        assert (own["flags"], own["sub"], own["psub"], own["multi"]) == ("N", "0", "0", "-1")
    finally:
        for c in (sub, multi, blocked):
            c.close()
        r.close()


def test_client_list_fields_are_redis_fields(srv: ServerProcess, tmp_path: Any) -> None:
    """The same field names, in the same order, as redis-server prints (7.2 added lib-*)."""
    from resp.typeharness import redis_server_process

    with redis_server_process(tmp_path) as port:
        if port is None:
            pytest.skip("redis-server is not installed")
        expected = list(redis.Redis(port=port).client_info())
    names = list(redis.Redis(port=srv.port).client_info())
    for extra in ("lib-name", "lib-ver"):  # Redis 7.2's, absent from Debian's 7.0
        if extra not in expected:
            expected.append(extra)
    assert names == expected
