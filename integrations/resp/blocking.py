"""Blocking list pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH): waiters, wake-up order, timeouts.

A handler that would block returns a ``Block``. At the top level the server parks the
connection (its later pipelined commands wait too) and registers the block here; inside EXEC
or a Lua script nothing blocks and the caller replies ``Block.immediate`` instead, as Redis
does. A push to a key somebody waits on marks it ready; ready keys are served right after the
pushing command's batch, waiters of one key in the order they blocked (FIFO).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hiredis

from faster_backend.integrations.resp.deferred import Deferred
from faster_backend.integrations.resp.types import NULL_ARRAY, Raw, Replies

if TYPE_CHECKING:
    from faster_backend.integrations.resp.client import Client

Serve = Callable[["Client", bytes], Any]
"""Try to serve a waiter from one ready key: the reply, or None when the key cannot serve."""


class Block:
    """What a blocking command waits for: keys in order, timeout (0 = forever), how to serve."""

    __slots__ = ("immediate", "keys", "serve", "timeout")

    def __init__(self, keys: list[bytes], timeout: float, serve: Serve, immediate: Any) -> None:
        self.keys = keys
        self.timeout = timeout
        self.serve = serve
        self.immediate = immediate  # the reply when blocking is not allowed (MULTI, scripts)


def settle(reply: Any) -> Any:
    """The reply of a command run where it must not block (EXEC, scripts), as a value (a
    ``Deferred`` is waited for)."""
    t = reply.__class__
    if t is Block:
        return reply.immediate
    if t is Deferred:
        return reply.wait()
    if t is Replies:  # (P)SUBSCRIBE inside EXEC: the last of its replies
        return reply[-1]
    if t is Raw:  # pre-encoded (LRANGE): scripts need the value
        reader = hiredis.Reader()
        reader.feed(reply)
        return reader.gets()
    return reply


class Waiter:
    __slots__ = ("block", "client", "db", "done", "timer", "wake")

    def __init__(self, client: Client, block: Block, wake: Callable[[Any], None]) -> None:
        self.client = client
        self.block = block
        self.db = client.db_index
        self.wake = wake
        self.timer: asyncio.TimerHandle | None = None
        self.done = False


WAITING: dict[tuple[int, int, bytes], deque[Waiter]] = {}
"""(id(server state), db, key) -> waiters in blocking order. Empty when nobody blocks."""
_READY: dict[tuple[int, int, bytes], Client] = {}
_scheduled = False


def block(client: Client, blk: Block, wake: Callable[[Any], None]) -> Waiter:
    """Park ``client`` on ``blk``; ``wake(reply)`` is called once (served or timed out)."""
    w = Waiter(client, blk, wake)
    sid = id(client.state)
    for key in blk.keys:
        WAITING.setdefault((sid, w.db, key), deque()).append(w)
    if blk.timeout > 0:
        w.timer = asyncio.get_running_loop().call_later(blk.timeout, _timed_out, w)
    return w


def cancel(w: Waiter) -> None:
    """Forget ``w`` without a reply (its connection closed)."""
    if not w.done:
        w.done = True
        _remove(w)


def _remove(w: Waiter) -> None:
    if w.timer is not None:
        w.timer.cancel()
    sid = id(w.client.state)
    for key in w.block.keys:
        ident = (sid, w.db, key)
        q = WAITING.get(ident)
        if q is not None:
            with contextlib.suppress(ValueError):
                q.remove(w)
            if not q:
                del WAITING[ident]


def _timed_out(w: Waiter) -> None:
    if not w.done:
        w.done = True
        _remove(w)
        w.wake(NULL_ARRAY)


def signal(client: Client, key: bytes) -> None:
    """``key`` of ``client``'s database may now serve waiters (call only when WAITING)."""
    global _scheduled
    ident = (id(client.state), client.db_index, key)
    if ident in WAITING:
        _READY[ident] = client
        if not _scheduled:
            _scheduled = True
            asyncio.get_running_loop().call_soon(serve_ready)


def serve_ready() -> None:
    """Serve the waiters of every ready key, first blocked first served."""
    global _scheduled
    _scheduled = False
    while _READY:
        ident, _by = _READY.popitem()
        _sid, db, key = ident
        q = WAITING.get(ident)
        while q:
            w = q[0]
            c = w.client
            saved = c.db_index
            if saved != db:
                c.select(db)
            try:
                reply = w.block.serve(c, key)
            finally:
                if c.db_index != saved:
                    c.select(saved)
            if reply is None:
                break  # the key is empty (or no longer a list): the others keep waiting
            if c.keyspace.watchers:  # the pop changed the key: WATCHers must see it
                c.keyspace.touch(key)
            w.done = True
            _remove(w)
            w.wake(reply)
            q = WAITING.get(ident)
