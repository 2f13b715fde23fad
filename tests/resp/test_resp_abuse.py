"""Hostile and malformed input: Redis' error texts, a close, and everyone else still served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from resp.harness import ServerProcess, start_server


def exchange(port: int, payload: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """Send ``payload``; return what came back and whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(payload)
        data = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return data, False
            except ConnectionResetError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
        return data, False


def answers_quickly(port: int, payload: bytes, expect: bytes, wait: float = 5.0) -> bytes:
    """Send ``payload`` and read until ``expect`` has arrived (without waiting for a close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(payload)
        data = b""
        while expect not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
def bystander(server: ServerProcess) -> Iterator[redis.Redis]:
    """Another client that must keep being answered while the abuse goes on."""
    r = redis.Redis(port=server.port)
    r.set("bystander", "still here")
    yield r
    assert r.get("bystander") == b"still here"
    assert r.ping()
    r.close()


PROTOCOL_ERRORS = [
    (b'SET k "unbalanced\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"SET k 'x'y\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"*3000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$600000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$99999999999999999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n"),
    (b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b"*1\r\n+PING\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
    (b"*2\r\n$4\r\nECHO\r\n*1\r\n$1\r\na\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
    (b"*1\r\n%1\r\n+a\r\n+b\r\n", b"-ERR Protocol error: expected '$', got '%'\r\n"),
    (b"x" * 70_000, b"-ERR Protocol error: too big inline request\r\n"),
    (b"*" + b"1" * 70_000, b"-ERR Protocol error: too big mbulk count string\r\n"),
    (b"*1\r\n$" + b"1" * 70_000, b"-ERR Protocol error: too big bulk count string\r\n"),
]


@pytest.mark.parametrize(("payload", "reply"), PROTOCOL_ERRORS, ids=range(len(PROTOCOL_ERRORS)))
def test_protocol_errors_close(
    server: ServerProcess, bystander: redis.Redis, payload: bytes, reply: bytes
) -> None:
    data, closed = exchange(server.port, payload)
    assert data == reply
    assert closed


def test_commands_before_the_error_are_answered(server: ServerProcess) -> None:
    data, closed = exchange(server.port, b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n:5\r\n")
    assert data == b"+PONG\r\n+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
    assert closed


def test_protocol_error_in_a_later_chunk(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nECHO\r\n$3\r\nab")
        time.sleep(0.1)
        s.sendall(b"c\r\n*1\r\n:1\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data == b"$3\r\nabc\r\n-ERR Protocol error: expected '$', got ':'\r\n"


def test_inline_and_ignored_frames(server: ServerProcess) -> None:
    payload = b"\r\n*-10\r\n*0\r\nPING\r\nECHO \"a\\x41 b\"\r\n\nSET inline 'v 1'\r\nGET inline\n"
    data = answers_quickly(server.port, payload, b"$3\r\nv 1\r\n")
    assert data == b"+PONG\r\n$4\r\naA b\r\n+OK\r\n$3\r\nv 1\r\n"


def test_hello_4(server: ServerProcess) -> None:
    data = answers_quickly(server.port, b"HELLO 4\r\n", b"\r\n")
    assert data == b"-NOPROTO unsupported protocol version\r\n"


@pytest.mark.parametrize("first", [b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"Host: example\r\n"])
def test_cross_protocol_http_closes_silently(
    server: ServerProcess, bystander: redis.Redis, first: bytes
) -> None:
    data, closed = exchange(server.port, first)
    assert data == b"" and closed
    assert "SECURITY ATTACK" in server.log()


def test_huge_count_does_not_allocate(server: ServerProcess, bystander: redis.Redis) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"*1048577\r\n$3\r\nSET\r\n")
        for _ in range(20):  # others keep being answered while this one waits
            assert bystander.ping()
        info = bystander.info("memory")
        assert info["used_memory_rss"] < 1 << 30


def test_partial_frames_wait(server: ServerProcess, bystander: redis.Redis) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$9\r\nbysta")
        time.sleep(0.2)
        assert bystander.get("bystander") == b"still here"
        s.sendall(b"nder\r\n")
        assert s.recv(100) == b"$10\r\nstill here\r\n"


def test_maxclients(server: ServerProcess, bystander: redis.Redis) -> None:
    connected = bystander.info("clients")["connected_clients"]
    bystander.config_set("maxclients", connected + 1)
    socks: list[socket.socket] = []
    try:
        # Connections of earlier tests may still be closing: open until one is refused.
        for _ in range(20):
            data, closed = exchange(server.port, b"PING\r\n", wait=1.0) if socks else (b"", 0)
            if data == b"-ERR max number of clients reached\r\n":
                assert closed
                break
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"PING\r\n")
            assert s.recv(100) == b"+PONG\r\n"
            socks.append(s)
        else:
            raise AssertionError("maxclients was never enforced")
        assert bystander.ping()  # connected clients are not affected
    finally:
        for s in socks:
            s.close()
        bystander.config_set("maxclients", 10000)


def test_query_buffer_limit(server: ServerProcess, bystander: redis.Redis) -> None:
    bystander.config_set("client-query-buffer-limit", "1mb")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000000\r\n")
            closed = False
            try:
                for _ in range(40):
                    s.sendall(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if not closed:
                s.settimeout(5)
                try:
                    closed = s.recv(100) == b""
                except ConnectionResetError:
                    closed = True
            assert closed
    finally:
        bystander.config_set("client-query-buffer-limit", "1gb")
    assert "client-query-buffer-limit" in server.log()


def test_output_buffer_limit(server: ServerProcess, bystander: redis.Redis) -> None:
    bystander.set("big", b"v" * (600 << 10))
    bystander.config_set("client-output-buffer-limit", "1mb")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"MGET " + b"big " * 40 + b"\r\n")  # ~24 MB of replies, never read
            deadline = time.monotonic() + 20
            while "client-output-buffer-limit" not in server.log():
                assert time.monotonic() < deadline, "slow reader was not disconnected"
                time.sleep(0.1)
            assert bystander.ping()
    finally:
        bystander.config_set("client-output-buffer-limit", "1gb")
        bystander.delete("big")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"*", b"$", b"\r\n", b"*2\r\n", b"$3\r\n", b"-1", b"PING", b'"']),
        ),
        max_size=12,
    )
)
def test_random_garbage_never_crashes(
    server: ServerProcess, bystander: redis.Redis, parts: list[bytes]
) -> None:
    exchange(server.port, b"".join(parts), wait=0.2)
    assert bystander.ping()


def _limits_config(tmp: Path, **server: object) -> Path:
    lines = ["[server]"]
    for k, v in server.items():
        lines.append(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}")
    path = tmp / "limits.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("secured")
    cfg = _limits_config(tmp, timeout=1)
    srv = start_server(tmp, "--config", str(cfg), "--requirepass", "s3cret")
    yield srv
    assert srv.stop() == 0, srv.log()


def test_noauth(secured: ServerProcess) -> None:
    data = answers_quickly(secured.port, b"GET k\r\n", b"\r\n")
    assert data == b"-NOAUTH Authentication required.\r\n"
    data = answers_quickly(secured.port, b"AUTH wrong\r\n", b"\r\n")
    assert data == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    data = answers_quickly(secured.port, b"AUTH s3cret\r\nSET k v\r\nGET k\r\n", b"$1\r\nv\r\n")
    assert data == b"+OK\r\n+OK\r\n$1\r\nv\r\n"
    data = answers_quickly(secured.port, b"HELLO 3\r\n", b"\r\n")
    assert data.startswith(b"-NOAUTH HELLO must be called with the client already authenticated")


@pytest.mark.parametrize(
    ("payload", "reply"),
    [
        (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
        (b"*1\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n"),
    ],
)
def test_pre_auth_limits(secured: ServerProcess, payload: bytes, reply: bytes) -> None:
    data, closed = exchange(secured.port, payload)
    assert data == reply and closed


def test_redis_py_with_password(secured: ServerProcess) -> None:
    for protocol in (2, 3):
        r = redis.Redis(port=secured.port, password="s3cret", protocol=protocol)
        assert r.set("pw", "ok") and r.get("pw") == b"ok"
        r.close()
        bad = redis.Redis(
            port=secured.port, password="nope", protocol=protocol, retry=Retry(NoBackoff(), 0)
        )
        with pytest.raises(redis.AuthenticationError):
            bad.ping()
        bad.close()


def test_idle_timeout(secured: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", secured.port), timeout=10) as s:
        s.sendall(b"AUTH s3cret\r\n")
        assert s.recv(100) == b"+OK\r\n"
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed by the server after ~1-2 s of silence
        assert time.monotonic() - t0 < 8


def test_config_set_limits_apply_to_open_connections(
    server: ServerProcess, bystander: redis.Redis
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        bystander.config_set("proto-max-bulk-len", "1mb")
        try:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data == b"-ERR Protocol error: invalid bulk length\r\n"
        finally:
            bystander.config_set("proto-max-bulk-len", "512mb")
    assert bystander.config_get("proto-max-bulk-len") == {
        b"proto-max-bulk-len": str(512 << 20).encode()
    } or bystander.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(512 << 20)}


def test_config_set_requirepass(server: ServerProcess, bystander: redis.Redis) -> None:
    bystander.config_set("requirepass", "later")
    try:
        data = answers_quickly(server.port, b"GET bystander\r\n", b"\r\n")
        assert data == b"-NOAUTH Authentication required.\r\n"
        assert bystander.ping()  # already authenticated connections stay so
    finally:
        bystander.config_set("requirepass", "")
    data = answers_quickly(server.port, b"GET bystander\r\n", b"\r\n")
    assert data == b"$10\r\nstill here\r\n"
