"""MULTI / EXEC / DISCARD / WATCH / UNWATCH with Redis' semantics."""

from __future__ import annotations

from typing import Any

from faster_backend.integrations.resp.blocking import settle
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.dispatch import run
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import NULL_ARRAY, OK, RespError

EXECABORT = RespError("EXECABORT Transaction discarded because of previous errors.")


@command("multi", 1, "noscript loading stale fast no_multi allow_busy", group="transactions",
         since="1.2.0")
def multi(client: Client, argv: list[bytes]) -> Any:
    """Mark the start of a transaction block"""
    if client.multi is not None:
        raise RespError("ERR MULTI calls can not be nested")
    client.multi = []
    client.multi_failed = False
    return OK


@command("discard", 1, "noscript loading stale fast no_multi allow_busy", group="transactions",
         since="2.0.0")
def discard(client: Client, argv: list[bytes]) -> Any:
    """Discard all commands issued after MULTI"""
    if client.multi is None:
        raise RespError("ERR DISCARD without MULTI")
    client.multi = None
    client.multi_failed = False
    client.unwatch()
    return OK


def _watched_key_expired(client: Client) -> bool:
    state = client.state
    for (db, key), existed in client.watched.items():
        if existed and state.db(db).type_of(key) is None:
            return True
    return False


@command("exec", 1, "noscript loading stale skip_slowlog no_multi", group="transactions",
         since="1.2.0")
def exec_(client: Client, argv: list[bytes]) -> Any:
    """Execute all commands issued after MULTI"""
    queued = client.multi
    if queued is None:
        raise RespError("ERR EXEC without MULTI")
    client.multi = None
    if client.multi_failed:
        client.multi_failed = False
        client.unwatch()
        return EXECABORT
    aborted = client.dirty or _watched_key_expired(client)
    client.unwatch()
    if aborted:
        return NULL_ARRAY
    # Nothing blocks inside EXEC: BLPOP and friends answer at once, as in Redis.
    return [settle(run(client, spec, args)) for spec, args in queued]


@command("watch", -2, "noscript loading stale fast no_multi allow_busy", 1, -1, 1,
         group="transactions", since="2.2.0")
def watch(client: Client, argv: list[bytes]) -> Any:
    """Watch the given keys to determine execution of the MULTI/EXEC block"""
    if client.multi is not None:
        raise RespError("ERR WATCH inside MULTI is not allowed")
    ks = client.keyspace
    for key in argv[1:]:
        ident = (client.db_index, key)
        if ident in client.watched:
            continue
        client.watched[ident] = ks.type_of(key) is not None
        ks.watchers.setdefault(key, set()).add(client)
    return OK


@command("unwatch", 1, "noscript loading stale fast allow_busy", group="transactions",
         since="2.2.0")
def unwatch(client: Client, argv: list[bytes]) -> Any:
    """Forget about all watched keys"""
    client.unwatch()
    return OK
