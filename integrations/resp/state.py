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
        # CONFIG SET client-output-buffer-limit "replica ...": kept and printed back only
        # (there are no replicas)
        self.replica_output_limits = (256 << 20, 64 << 20, 60)
        # durability=always: the stores run without their own per-write commits and the server
        # calls ``sync()`` before the replies of every event-loop turn leave: one commit per
        # store that changed makes every write of the turn durable, strings and objects, for
        # all the connections served in it (a group commit).
        self.sync_writes = config.store.durability == "always" and config.store.path is not None

    def db(self, index: int) -> Keyspace:
        ks = self.dbs[index]
        if ks is None:
            store = self.config.store
            path: str | None = None
            if store.path is not None:
                path = store.path if index == 0 else str(Path(store.path) / f"db{index}")
            if self.sync_writes:  # committed per event-loop turn by sync()
                kv = FasterKV.from_config(store, path=path, durability="none")
            else:
                kv = FasterKV.from_config(store, path=path)
            objects = ObjectStore(path, store)
            objects.max_bytes = self.object_cache_size()
            ks = self.dbs[index] = Keyspace(index, kv, objects)
            log.debug("opened database %d (%s)", index, path or "in memory")
        return ks

    def open_dbs(self) -> list[Keyspace]:
        return [ks for ks in self.dbs if ks is not None]

    def object_cache_size(self) -> int:
        """Estimated bytes of live objects each database keeps in memory."""
        size = self.config.server.object_cache_size
        return self.config.store.memory_size if size is None else size

    def sync(self) -> None:
        """durability=always, at the end of an event-loop turn: write back the objects changed,
        commit their logs, and commit the string stores (a commit of a store that did not
        change since its last commit costs no I/O)."""
        for ks in self.dbs:
            if ks is not None:
                objs = ks.objects
                if objs.changed or objs.unsynced:
                    objs.sync()
                ks.kv.commit()

    def tick(self) -> None:
        """Once a second: incremental expiry; objects are accounted, written back (periodic
        and always) and evicted beyond the object cache size."""
        budget = self.object_cache_size()
        for ks in self.open_dbs():
            ks.kv.sweep_expired(256)
            ks.objects.max_bytes = budget
            ks.objects.sweep(256)

    def stores(self) -> list[FasterKV]:
        """Every open store: per database its object logs, then its string store."""
        out: list[FasterKV] = []
        for ks in self.open_dbs():
            out.extend(ks.objects.logs())
            out.append(ks.kv)
        return out

    def write_back(self) -> None:
        """Every changed live object of every database into its object log."""
        for ks in self.open_dbs():
            ks.objects.flush()

    def save(self) -> None:
        """SAVE: write back every object, then checkpoint every store, with no command in
        between, so the checkpoints together hold one point in the command sequence."""
        self.write_back()
        for kv in self.stores():
            kv.checkpoint()
        self.lastsave = int(time.time())

    def bgsave_start(self) -> threading.Thread:
        """BGSAVE: the same point as SAVE, but only the checkpoints' cuts (the moment each
        store's checkpoint is taken at; fast) happen before this returns; their writing goes
        on in threads while commands run."""
        self.write_back()
        stores = self.stores()
        # (not stats(): on F2 it settles the live count first, with device reads)
        cuts = [kv.checkpoint_version for kv in stores]
        failed: list[BaseException] = []

        def one(kv: FasterKV) -> None:
            try:
                kv.checkpoint()
            except BaseException as e:  # reported by the supervisor below
                failed.append(e)

        workers = [
            threading.Thread(target=one, args=(kv,), name="bgsave-store", daemon=True)
            for kv in stores
        ]
        for w in workers:
            w.start()
        # Hold the event loop (no command runs) until every store has taken its cut.
        for kv, cut, w in zip(stores, cuts, workers, strict=True):
            while w.is_alive() and kv.checkpoint_version == cut:
                time.sleep(0.0005)

        def supervise() -> None:
            for w in workers:
                w.join()
            if failed:
                log.error("BGSAVE failed", exc_info=failed[0])
            else:
                self.lastsave = int(time.time())
                log.info("BGSAVE done")

        sup = threading.Thread(target=supervise, name="bgsave", daemon=True)
        sup.start()
        return sup

    def new_client_id(self) -> int:
        cid = self.next_client_id
        self.next_client_id += 1
        return cid

    def close(self) -> None:
        """Write back every object, then close every open store (children before database 0,
        whose directory holds theirs); with a data directory each checkpoints as it closes, all
        at the same point (nothing runs in between)."""
        if self.bgsave is not None:
            self.bgsave.join()
        try:
            self.write_back()
        except Exception:  # pragma: no cover - the stores must still close
            log.exception("writing back the objects failed")
        for ks in reversed(self.open_dbs()):
            try:
                ks.objects.close()
                ks.kv.close()
            except Exception:  # pragma: no cover - closing must go on for the others
                log.exception("closing database %d failed", ks.index)
