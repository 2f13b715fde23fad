"""Server-wide state shared by every connection: configuration, databases, clients, counters."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from faster_backend.config import Config
from faster_backend.integrations.resp.keyspace import Keyspace
from faster_backend.integrations.resp.objects import ObjectStore
from faster_backend.store import FasterKV

if TYPE_CHECKING:
    from faster_backend.integrations.resp.client import Client

log = logging.getLogger(__name__)


class ServerState:
    """Databases are created on first use: one FasterKV per database number.

    Database 0 lives in ``store.path`` (the data directory) and database n > 0 in its
    subdirectory ``db<n>``; each database has the configured memory budget of its own.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dbs: list[Keyspace | None] = [None] * config.server.databases
        self.clients: dict[int, Client] = {}
        self.next_client_id = 1
        self.start_time = time.time()
        self.run_id = os.urandom(20).hex()
        self.lastsave = int(self.start_time)
        self.connections_received = 0
        self.rejected_connections = 0
        self.commands_processed = 0
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.tcp_port = config.server.port
        self.config_epoch = 0  # bumped by CONFIG SET so connections re-read their limits
        self.request_shutdown: Callable[[], None] | None = None  # set by the server
        self.bgsave: threading.Thread | None = None  # the running BGSAVE, if any

    def db(self, index: int) -> Keyspace:
        ks = self.dbs[index]
        if ks is None:
            store = self.config.store
            path: str | None = None
            if store.path is not None:
                path = store.path if index == 0 else str(Path(store.path) / f"db{index}")
            kv = FasterKV.from_config(store, path=path)
            ks = self.dbs[index] = Keyspace(index, kv, ObjectStore(path, store))
            log.debug("opened database %d (%s)", index, path or "in memory")
        return ks

    def open_dbs(self) -> list[Keyspace]:
        return [ks for ks in self.dbs if ks is not None]

    def new_client_id(self) -> int:
        cid = self.next_client_id
        self.next_client_id += 1
        return cid

    def close(self) -> None:
        """Close every open store (children before database 0, whose directory holds theirs)."""
        if self.bgsave is not None:
            self.bgsave.join()
        for ks in reversed(self.open_dbs()):
            try:
                ks.objects.close()
                ks.kv.close()
            except Exception:  # pragma: no cover - closing must go on for the others
                log.exception("closing database %d failed", ks.index)
