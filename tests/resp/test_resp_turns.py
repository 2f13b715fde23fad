"""Replies leave at the end of an event-loop turn: one group commit per turn under ``always``,
and everything sent to one client keeps its order.

The server runs in this process on its own event loop (uvloop when installed), with real
sockets on a free loopback port: requests sent by several clients before the loop runs again
are all read in its next turn (loopback delivers a send before it returns), which makes that
turn deterministic.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from faster_backend.config import Config
from faster_backend.engine.f2 import counting
from faster_backend.integrations.resp.server import RespServer
from faster_backend.server import new_event_loop


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


Scenario = Callable[[RespServer, Callable[[], Awaitable[socket.socket]]], Awaitable[None]]


def run(tmp_path: Path, durability: str, scenario: Scenario, tiering: str = "single") -> None:
    config = Config()
    config.server.port = 0
    config.store.path = str(tmp_path / "data")
    config.store.durability = durability
    config.store.tiering = tiering

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = RespServer(config)
        await server.start()
        socks: list[socket.socket] = []

        async def connect() -> socket.socket:
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", server.port))
            socks.append(s)
            s.send(frame(b"PING"))  # accepted and served once: a connection of the server
            assert await recv(s, 7) == b"+PONG\r\n"
            return s

        try:
            await scenario(server, connect)
        finally:
            for s in socks:
                s.close()
            await server.shutdown()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def recv(s: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < n:
        chunk = await asyncio.wait_for(loop.sock_recv(s, n - len(data)), 10)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_one_commit_for_the_writes_of_several_connections(tmp_path: Path) -> None:
    async def scenario(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        clients = [await connect() for _ in range(3)]
        kv = server.state.db(0).kv
        before = kv.stats()["commits"]
        for i, s in enumerate(clients):  # the loop does not run in between
            s.send(frame(b"SET", b"k%d" % i, b"v") + frame(b"INCR", b"n"))
        replies = [await recv(s, 5 + 4) for s in clients]
        assert sorted(r[5:] for r in replies) == [b":1\r\n", b":2\r\n", b":3\r\n"]
        assert all(r.startswith(b"+OK\r\n") for r in replies)
        # Six writes from three connections, acknowledged after one commit.
        assert kv.stats()["commits"] == before + 1
        assert [kv.read(b"k%d" % i) for i in range(3)] == [b"v"] * 3

    run(tmp_path, "always", scenario)


def test_messages_and_replies_keep_their_order(tmp_path: Path) -> None:
    """In one turn a client subscribes (its reply is queued) and another publishes to it: the
    message must come after the subscription's reply, never before; and a client whose pop
    blocks after a reply gets that reply first."""

    async def scenario(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        sub, pub, popper = await connect(), await connect(), await connect()
        # One turn (the loop serves ready sockets in the order they became ready, sub first).
        sub.send(frame(b"SUBSCRIBE", b"ch"))
        popper.send(frame(b"SET", b"x", b"1") + frame(b"BLPOP", b"q", b"0"))
        pub.send(frame(b"PUBLISH", b"ch", b"m") + frame(b"RPUSH", b"q", b"a"))
        receivers, pushed = (await recv(pub, 8)).split(b"\r\n")[:2]
        assert pushed == b":1"
        confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n"
        if receivers == b":1":  # served after the SUBSCRIBE: the message follows its reply
            assert await recv(sub, len(confirm + message)) == confirm + message
        else:
            assert receivers == b":0"
            assert await recv(sub, len(confirm)) == confirm
        popped = b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"
        assert await recv(popper, 5 + len(popped)) == b"+OK\r\n" + popped

    run(tmp_path, "periodic", scenario)


def test_replies_reach_a_client_that_half_closes(tmp_path: Path) -> None:
    """Requests followed at once by the client's FIN (``nc -N``, ``redis-cli --pipe``). When
    they fill whole read buffers (256 KB in uvloop and asyncio) the loop reads the data and the
    end of the stream in one turn; every reply must still go out before the connection closes."""

    async def scenario(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        loop = asyncio.get_running_loop()
        for size in (256 << 10, 512 << 10, 300_000):
            s = await connect()
            head = frame(b"SET", b"k", b"v") + frame(b"GET", b"k")
            n = size - len(head) - len(frame(b"ECHO", b""))
            while len(frame(b"ECHO", b"x" * n)) > size - len(head):
                n -= 1  # the bulk length's digits
            request = head + frame(b"ECHO", b"x" * n)
            assert len(request) == size
            s.setblocking(True)
            s.sendall(request)  # fits the socket buffers: sent before the server reads
            s.shutdown(socket.SHUT_WR)
            s.setblocking(False)
            data = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(s, 1 << 16), 10):
                data += chunk
            assert data == b"+OK\r\n$1\r\nv\r\n" + b"$%d\r\n" % n + b"x" * n + b"\r\n"

    run(tmp_path, "periodic", scenario)


def test_f2_counts_settle_in_a_thread_while_other_clients_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F2's DBSIZE and INFO settle the live count (device reads, docs/f2.md) in a worker
    thread: the asking connection's later commands wait behind the reply, as behind a blocking
    command, while other connections are served; inside MULTI the settling is waited for."""
    settling, release = threading.Event(), threading.Event()
    settle = counting.settle_to_tail

    def slow(kv: Any) -> None:
        settling.set()
        assert release.wait(10), "the event loop was held up"
        settle(kv)

    monkeypatch.setattr(counting, "settle_to_tail", slow)

    async def unsettled(server: RespServer, a: socket.socket, prefix: bytes, n: int) -> None:
        for i in range(n):
            a.send(frame(b"SET", prefix + b"%d" % i, b"v"))
        assert await recv(a, 5 * n) == b"+OK\r\n" * n
        assert not server.state.db(0).kv.count_is_settled()  # blind upserts of new keys
        settling.clear()
        release.clear()

    async def scenario(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        loop = asyncio.get_running_loop()
        a, b = await connect(), await connect()
        # (b's SET of ``other`` comes before the reply is built: it is counted)
        for prefix, command, reply in (
            (b"a", frame(b"DBSIZE"), b":41\r\n"),
            (b"b", frame(b"INFO", b"keyspace"), b"$25\r\n# Keyspace\r\ndb0:keys=81\r\n\r\n"),
        ):
            await unsettled(server, a, prefix, 40)
            a.send(command + frame(b"PING"))
            assert await loop.run_in_executor(None, settling.wait, 10)
            b.send(frame(b"SET", b"other", b"1") + frame(b"GET", b"other"))
            assert await recv(b, 12) == b"+OK\r\n$1\r\n1\r\n"  # served meanwhile
            await asyncio.sleep(0.05)
            with pytest.raises(BlockingIOError):
                a.recv(100)  # nothing yet: PING waits behind the count
            release.set()
            assert await recv(a, len(reply) + 7) == reply + b"+PONG\r\n"
        await unsettled(server, a, b"c", 45)
        release.set()
        a.send(frame(b"MULTI") + frame(b"DBSIZE") + frame(b"EXEC"))
        want = b"+OK\r\n+QUEUED\r\n*1\r\n:126\r\n"
        assert await recv(a, len(want)) == want

    run(tmp_path, "periodic", scenario, tiering="f2")


def test_a_shutdown_during_an_f2_count_closes_the_store_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM while a DBSIZE settles in its worker thread: the store closes (its checkpoint
    first), the settling stops there, the waiting client is disconnected like a blocked one,
    and the data directory reopens with every key."""
    started, release, stopped = threading.Event(), threading.Event(), threading.Event()
    settle = counting.settle_to_tail

    def slow(kv: Any) -> None:
        started.set()
        assert release.wait(10)
        try:
            settle(kv)
        finally:
            stopped.set()

    monkeypatch.setattr(counting, "settle_to_tail", slow)

    async def scenario(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        loop = asyncio.get_running_loop()
        a = await connect()
        for i in range(50):
            a.send(frame(b"SET", b"k%d" % i, b"v"))
        assert await recv(a, 5 * 50) == b"+OK\r\n" * 50
        a.send(frame(b"DBSIZE"))
        assert await loop.run_in_executor(None, started.wait, 10)
        loop.call_later(0.2, release.set)  # the settling goes on once the store is closed
        await server.shutdown()
        assert await asyncio.wait_for(loop.sock_recv(a, 100), 10) == b""  # no reply, closed
        assert await loop.run_in_executor(None, stopped.wait, 10)
        await asyncio.sleep(0.05)  # the future's callback runs on this loop

    with caplog.at_level("ERROR"):
        run(tmp_path, "periodic", scenario, tiering="f2")
    assert caplog.text == ""  # a store closed under the settling is no error to report

    async def reopened(server: RespServer, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        a = await connect()
        a.send(frame(b"DBSIZE"))
        assert await recv(a, 5) == b":50\r\n"

    run(tmp_path, "periodic", reopened, tiering="f2")
