"""Per-connection state (sans-IO): protocol version, database, auth, MULTI queue, WATCHes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faster_backend.integrations.resp.keyspace import Keyspace
    from faster_backend.integrations.resp.state import ServerState
    from faster_backend.integrations.resp.table import CommandSpec
    from faster_backend.store import FasterKV


class Client:
    """One connection as the command handlers see it.

    ``kv`` and ``keyspace`` follow SELECT. A Lua script runs its ``redis.call`` against the
    calling client (see dispatch.call), so the same object serves scripts.
    """

    __slots__ = (
        "addr",
        "authenticated",
        "closing",
        "created",
        "db_index",
        "dirty",
        "id",
        "keyspace",
        "kill",
        "kv",
        "laddr",
        "last_cmd",
        "last_interaction",
        "lib_name",
        "lib_ver",
        "multi",
        "multi_failed",
        "name",
        "proto",
        "pubsub",
        "pushes",
        "state",
        "watched",
    )

    def __init__(
        self,
        state: ServerState,
        client_id: int,
        addr: str = "",
        laddr: str = "",
        kill: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.id = client_id
        self.addr = addr
        self.laddr = laddr
        self.kill = kill  # closes the connection (CLIENT KILL, timeouts)
        self.proto = 2
        self.authenticated = state.config.server.requirepass is None
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.multi: list[tuple[CommandSpec, list[bytes]]] | None = None
        self.multi_failed = False
        self.watched: dict[tuple[int, bytes], bool] = {}  # (db, key) -> existed at WATCH
        self.dirty = False
        self.closing = False  # close after the reply being written (QUIT)
        self.pubsub = 0  # channels + patterns subscribed to (commands/pubsub.py)
        # Messages PUBLISH sent to this client itself while a command ran: they follow that
        # command's reply (the EXEC / EVAL reply when published inside one), as in Redis 7.2.
        self.pushes: list[Any] | None = None
        self.created = time.time()
        self.last_interaction = time.monotonic()
        self.last_cmd: bytes | None = None  # the name as sent: decoded only for CLIENT LIST
        self.db_index = 0
        self.keyspace: Keyspace = state.db(0)
        self.kv: FasterKV = self.keyspace.kv

    def select(self, index: int) -> None:
        self.db_index = index
        self.keyspace = self.state.db(index)
        self.kv = self.keyspace.kv

    def unwatch(self) -> None:
        for db, key in self.watched:
            ks = self.state.dbs[db]
            if ks is None:
                continue
            clients = ks.watchers.get(key)
            if clients is not None:
                clients.discard(self)
                if not clients:
                    del ks.watchers[key]
        self.watched.clear()
        self.dirty = False

    def reset_state(self) -> None:
        """RESET: back to a fresh connection's state (auth too, when a password is set)."""
        self.unwatch()
        self.multi = None
        self.multi_failed = False
        self.proto = 2
        self.name = b""
        self.select(0)
        self.authenticated = self.state.config.server.requirepass is None

    def info(
        self, sub: int = 0, psub: int = 0, blocked: bool = False, omem: int = 0, fd: int = -1
    ) -> dict[str, Any]:
        """CLIENT LIST / CLIENT INFO fields in Redis 7.2's order; the caller supplies what the
        connection and pub/sub know (subscriptions, blocked, pending output, socket)."""
        now = time.monotonic()
        flags = "".join(
            f
            for f, on in (
                ("P", sub or psub),
                ("x", self.multi is not None),
                ("b", blocked),
                ("d", self.dirty),
                ("c", self.closing),
            )
            if on
        )
        return {
            "id": self.id,
            "addr": self.addr,
            "laddr": self.laddr,
            "fd": fd,
            "name": self.name.decode("utf-8", "replace"),
            "age": int(time.time() - self.created),
            "idle": int(now - self.last_interaction),
            "flags": flags or "N",
            "db": self.db_index,
            "sub": sub,
            "psub": psub,
            "ssub": 0,
            "multi": -1 if self.multi is None else len(self.multi),
            "qbuf": 0,
            "qbuf-free": 0,
            "argv-mem": 0,
            "multi-mem": 0,
            "rbs": 0,
            "rbp": 0,
            "obl": 0,
            "oll": 0,
            "omem": omem,
            "tot-mem": 0,
            "events": "r",
            "cmd": "NULL" if self.last_cmd is None else self.last_cmd.decode("latin-1").lower(),
            "user": "default",
            "redir": -1,
            "resp": self.proto,
            "lib-name": self.lib_name.decode("utf-8", "replace"),
            "lib-ver": self.lib_ver.decode("utf-8", "replace"),
        }

