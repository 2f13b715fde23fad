"""Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, SAVE/BGSAVE/LASTSAVE, SHUTDOWN."""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

from faster_backend import __version__
from faster_backend.engine.sizes import parse_size
from faster_backend.integrations.resp import blocking
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._util import SYNTAX
from faster_backend.integrations.resp.commands.connection import REDIS_VERSION
from faster_backend.integrations.resp.commands.keys import glob_matcher
from faster_backend.integrations.resp.deferred import after_counts
from faster_backend.integrations.resp.dispatch import CLOSE
from faster_backend.integrations.resp.state import ServerState
from faster_backend.integrations.resp.table import all_commands, command, subcommand
from faster_backend.integrations.resp.types import OK, RespError, SimpleString

log = logging.getLogger(__name__)


# -- CONFIG ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A CONFIG parameter: Redis' name, our ServerConfig field, its kind, settable at runtime."""

    name: str
    field: str | None
    kind: str  # int, size, bool, str, optstr, const
    mutable: bool
    const: str = ""
    section: str = "server"  # the Config section holding ``field``


PARAMS = {
    p.name: p
    for p in (
        Param("bind", "bind", "str", False),
        Param("port", "port", "int", False),
        Param("requirepass", "requirepass", "optstr", True),
        Param("protected-mode", "protected_mode", "bool", True),
        Param("maxclients", "maxclients", "int", True),
        Param("timeout", "timeout", "int", True),
        Param("databases", "databases", "int", False),
        Param("proto-max-bulk-len", "proto_max_bulk_len", "size", True),
        Param("client-query-buffer-limit", "client_query_buffer_limit", "size", True),
        Param("client-output-buffer-limit", None, "obl", True),
        Param("object-cache-size", "object_cache_size", "size", True),
        Param("metrics-port", "metrics_port", "optint", False),
        Param("durability", "durability", "str", False, section="store"),
        Param("dir", "path", "optstr", False, section="store"),
        # Redis settings clients probe (redis-benchmark asks for these two): the truth here.
        Param("save", None, "const", False, ""),
        Param("appendonly", None, "const", False, "no"),
    )
}


# client-output-buffer-limit: "<class> <hard> <soft> <soft seconds>" groups, as in Redis. There
# are no replicas here, so the replica class is only kept (and printed back).
_OBL_FIELDS = {
    "normal": ("client_output_buffer_limit", None, None),
    "pubsub": (
        "pubsub_output_hard_limit",
        "pubsub_output_soft_limit",
        "pubsub_output_soft_seconds",
    ),
}


def _obl_get(state: ServerState) -> str:
    s = state.config.server
    replica = state.replica_output_limits
    return (
        f"normal {s.client_output_buffer_limit} 0 0"
        f" slave {replica[0]} {replica[1]} {replica[2]}"
        f" pubsub {s.pubsub_output_hard_limit} {s.pubsub_output_soft_limit}"
        f" {s.pubsub_output_soft_seconds}"
    )


def _obl_parse(raw: bytes) -> list[tuple[str, int, int, int]]:
    """Redis' checks and texts; a single size is the normal class' hard limit (shorthand)."""
    words = raw.decode("utf-8", "replace").split()
    if len(words) == 1:
        try:
            return [("normal", _memory(words[0]), 0, 0)]
        except ValueError:
            pass  # not a size: Redis' error below
    if not words or len(words) % 4:
        raise ValueError("Wrong number of arguments in buffer limit configuration.")
    out = []
    for i in range(0, len(words), 4):
        name = words[i].lower()
        cls = {"slave": "replica"}.get(name, name)
        if cls not in ("normal", "replica", "pubsub"):
            raise ValueError("Invalid client class specified in buffer limit configuration.")
        try:
            hard, soft = _memory(words[i + 1]), _memory(words[i + 2])
            secs = int(words[i + 3])
        except ValueError:
            raise ValueError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            ) from None
        if secs < 0:
            raise ValueError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        if cls == "normal" and (soft or secs):
            raise ValueError("soft limits are not supported for the normal class here")
        out.append((cls, hard, soft, secs))
    return out


def _memory(word: str) -> int:
    """Redis' memtoull: bytes, or k/kb/m/mb/g/gb (k = 1000, kb = 1024)."""
    w = word.lower()
    for suffix, mult in (("kb", 1024), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1000),
                         ("m", 1000**2), ("g", 1000**3), ("b", 1)):
        if w.endswith(suffix):
            w, factor = w[: -len(suffix)], mult
            break
    else:
        factor = 1
    if not w.isdigit():
        raise ValueError("argument must be a memory value")
    return int(w) * factor


def _obl_set(state: ServerState, groups: list[tuple[str, int, int, int]]) -> None:
    s = state.config.server
    for cls, hard, soft, secs in groups:
        if cls == "replica":
            state.replica_output_limits = (hard, soft, secs)
            continue
        hard_f, soft_f, secs_f = _OBL_FIELDS[cls]
        setattr(s, hard_f, hard)
        if soft_f is not None and secs_f is not None:
            setattr(s, soft_f, soft)
            setattr(s, secs_f, secs)


def get_param(state: ServerState, p: Param) -> str:
    if p.kind == "obl":
        return _obl_get(state)
    if p.field == "object_cache_size":  # unset: the store's memory_size
        return str(state.object_cache_size())
    if p.field is None:
        return p.const
    v = getattr(getattr(state.config, p.section), p.field)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _parse_param(p: Param, raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    if p.kind == "obl":
        return _obl_parse(raw)
    if p.kind == "bool":
        if text.lower() not in ("yes", "no"):
            raise ValueError("argument must be 'yes' or 'no'")
        return text.lower() == "yes"
    if p.kind == "int":
        if not text.lstrip("-").isdigit():
            raise ValueError("argument couldn't be parsed into an integer")
        v = int(text)
        if v < 0:
            raise ValueError("argument must be non-negative")
        return v
    if p.kind == "size":
        try:
            return parse_size(text.lower().replace("mb", "mib").replace("gb", "gib")
                              .replace("kb", "kib"), name=p.name)
        except ValueError:
            raise ValueError("argument must be a memory value") from None
    if p.kind == "optstr":
        return text or None
    return text


@command("config", -2, "", group="server", container=True, since="2.0.0")
def config_(client: Client, argv: list[bytes]) -> Any:
    """A container for server configuration commands"""
    raise AssertionError("container")  # pragma: no cover


@subcommand("config", "get", -3, "admin noscript loading stale")
def config_get(client: Client, argv: list[bytes]) -> dict[str, str]:
    """Get the values of configuration parameters"""
    out: dict[str, str] = {}
    for pattern in argv[2:]:
        match = glob_matcher(pattern.lower())
        for name, p in PARAMS.items():
            if match(name.encode()):
                out[name] = get_param(client.state, p)
    return out


@subcommand("config", "set", -4, "admin noscript loading stale")
def config_set(client: Client, argv: list[bytes]) -> Any:
    """Set configuration parameters to the given values"""
    if len(argv) % 2:
        raise RespError("ERR wrong number of arguments for 'config|set' command")
    changes: list[tuple[Param, Any]] = []
    for i in range(2, len(argv), 2):
        name = argv[i].decode("utf-8", "replace").lower()
        p = PARAMS.get(name)
        if p is None:
            raise RespError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
        if not p.mutable:
            raise RespError(
                f"ERR CONFIG SET failed (possibly related to argument '{name}')"
                " - can't set immutable config"
            )
        try:
            changes.append((p, _parse_param(p, argv[i + 1])))
        except ValueError as e:
            raise RespError(
                f"ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
            ) from None
    server = client.state.config.server
    for p, value in changes:
        if p.kind == "obl":
            _obl_set(client.state, value)
            continue
        assert p.field is not None
        setattr(server, p.field, value)
    for ks in client.state.open_dbs():  # object-cache-size applies from the next batch on
        ks.objects.max_bytes = client.state.object_cache_size()
    client.state.config_epoch += 1
    return OK


@subcommand("config", "resetstat", 2, "admin noscript loading stale")
def config_resetstat(client: Client, argv: list[bytes]) -> Any:
    """Reset the stats returned by INFO"""
    state = client.state
    state.commands_processed = state.connections_received = state.rejected_connections = 0
    state.net_input_bytes = state.net_output_bytes = 0
    for spec in all_commands():
        spec.calls = spec.failed = spec.usec = 0
        for sub in spec.subcommands.values():
            sub.calls = sub.failed = sub.usec = 0
    return OK


@subcommand("config", "rewrite", 2, "admin noscript loading stale")
def config_rewrite(client: Client, argv: list[bytes]) -> Any:
    """Rewrite the configuration file (not supported: edit the TOML file instead)"""
    raise RespError(
        "ERR CONFIG REWRITE is not supported: faster-backend reads a TOML file"
        " (--config); edit it instead"
    )


# -- INFO ------------------------------------------------------------------------------------


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)  # pragma: no cover


def store_totals(state: ServerState) -> dict[str, int]:
    """Summed counters over every open database's store."""
    totals: dict[str, int] = {}
    for ks in state.open_dbs():
        for k, v in ks.kv.stats().items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    return totals


def info_sections(state: ServerState) -> dict[str, dict[str, Any]]:
    now = time.time()
    totals = store_totals(state)
    server = state.config.server
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    used = totals.get("memory_bytes", 0)
    keyspace: dict[str, Any] = {}
    objects = [ks.objects for ks in state.open_dbs()]
    for ks in state.open_dbs():
        n = len(ks.kv) + len(ks.objects)
        if n:
            keyspace[f"db{ks.index}"] = f"keys={n}"
    return {
        "server": {
            "redis_version": REDIS_VERSION,
            "faster_backend_version": __version__,
            "redis_mode": "standalone",
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "arch_bits": 64 if sys.maxsize > 2**32 else 32,
            "python_version": platform.python_version(),
            "process_id": os.getpid(),
            "run_id": state.run_id,
            "tcp_port": state.tcp_port,
            "server_time_usec": int(now * 1_000_000),
            "uptime_in_seconds": int(now - state.start_time),
            "uptime_in_days": int((now - state.start_time) // 86400),
            "executable": sys.executable,
        },
        "clients": {
            "connected_clients": len(state.clients),
            "maxclients": server.maxclients,
            "blocked_clients": len({w.client for q in blocking.WAITING.values() for w in q}),
            "tracking_clients": 0,
        },
        "memory": {
            "used_memory": used,
            "used_memory_human": _human(used),
            "used_memory_rss": rss,
            "used_memory_rss_human": _human(rss),
            "maxmemory": totals.get("memory_size", 0),
            "maxmemory_human": _human(totals.get("memory_size", 0)),
            "maxmemory_policy": "hybrid-log-eviction",
            "index_bytes": totals.get("index_bytes", 0),
            "log_memory_bytes": totals.get("log_memory_bytes", 0),
            # Live hashes, lists, sets, sorted sets and streams (estimated, all databases) and
            # the bound per database (object-cache-size).
            "object_cache_bytes": sum(o.live_bytes for o in objects),
            "object_cache_size": state.object_cache_size(),
            "live_objects": sum(o.live for o in objects),
        },
        "persistence": {
            "loading": 0,
            "durability": state.config.store.durability,
            "data_dir": state.config.store.path or "",
            "commits": totals.get("commits", 0),
            "checkpoints": totals.get("checkpoints", 0),
            "rdb_bgsave_in_progress": int(state.bgsave is not None and state.bgsave.is_alive()),
            "rdb_last_save_time": state.lastsave,
            "aof_enabled": 0,
        },
        "stats": {
            "total_connections_received": state.connections_received,
            "total_commands_processed": state.commands_processed,
            "total_net_input_bytes": state.net_input_bytes,
            "total_net_output_bytes": state.net_output_bytes,
            "rejected_connections": state.rejected_connections,
            "expired_keys": totals.get("expirations", 0),
            "evicted_keys": totals.get("evicted_records", 0),
            "keyspace_hits": totals.get("read_hits", 0),
            "keyspace_misses": totals.get("read_misses", 0),
            "object_write_backs": sum(o.write_backs for o in objects),
            "object_read_backs": sum(o.read_backs for o in objects),
        },
        "keyspace": keyspace,
    }


def _commandstats() -> dict[str, str]:
    out = {}
    for spec in all_commands():
        for s in [spec, *spec.subcommands.values()]:
            if s.calls:
                name = s.fullname
                out[f"cmdstat_{name}"] = f"calls={s.calls},failed_calls={s.failed}"
    return out


DEFAULT_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "keyspace")


@command("info", -1, "loading stale", group="server")
def info(client: Client, argv: list[bytes]) -> Any:
    """Get information and statistics about the server"""
    state = client.state
    return after_counts([ks.kv for ks in state.open_dbs()], lambda: _info(state, argv))


def _info(state: ServerState, argv: list[bytes]) -> bytes:
    wanted = [a.decode("utf-8", "replace").lower() for a in argv[1:]] or ["default"]
    sections = info_sections(state)
    names: list[str] = []
    for w in wanted:
        if w in ("default", "all", "everything"):
            names.extend(DEFAULT_SECTIONS)
            if w != "default":
                names.append("commandstats")
        else:
            names.append(w)
    parts = []
    seen = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        body = _commandstats() if name == "commandstats" else sections.get(name)
        if body is None:
            continue
        lines = [f"# {name.capitalize()}"] + [f"{k}:{v}" for k, v in body.items()]
        parts.append("\r\n".join(lines))
    return ("\r\n\r\n".join(parts) + "\r\n").encode()


# -- keyspace-wide commands ------------------------------------------------------------------


@command("dbsize", 1, "readonly fast", group="server")
def dbsize(client: Client, argv: list[bytes]) -> Any:
    """Return the number of keys in the selected database"""
    kv, objects = client.kv, client.keyspace.objects
    return after_counts([kv], lambda: len(kv) + len(objects))


def _flush_mode(argv: list[bytes]) -> None:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"ASYNC", b"SYNC")):
        raise SYNTAX


@command("flushdb", -1, "write", group="server")
def flushdb(client: Client, argv: list[bytes]) -> Any:
    """Remove all keys from the current database"""
    _flush_mode(argv)
    client.kv.clear()
    client.keyspace.objects.clear()
    client.keyspace.cleared()
    return OK


@command("flushall", -1, "write", group="server")
def flushall(client: Client, argv: list[bytes]) -> Any:
    """Remove all keys from all databases"""
    _flush_mode(argv)
    for ks in client.state.open_dbs():
        ks.kv.clear()
        ks.objects.clear()
        ks.cleared()
    return OK


@command("time", 1, "loading stale fast", group="server", since="2.6.0")
def time_(client: Client, argv: list[bytes]) -> list[bytes]:
    """Return the current server time"""
    now = time.time()
    sec = int(now)
    return [b"%d" % sec, b"%d" % int((now - sec) * 1_000_000)]


def _need_data_dir(state: ServerState) -> None:
    if state.config.store.path is None:
        raise RespError(
            "ERR checkpoints need a data directory: this server keeps its data in memory"
            " (start it with --data-dir)"
        )


@command("save", 1, "admin noscript no_multi", group="server")
def save(client: Client, argv: list[bytes]) -> Any:
    """Synchronously checkpoint the databases"""
    state = client.state
    _need_data_dir(state)
    if state.bgsave is not None and state.bgsave.is_alive():
        raise RespError("ERR Background save already in progress")  # as Redis
    state.save()
    return OK


@command("bgsave", -1, "admin noscript no_multi", group="server")
def bgsave(client: Client, argv: list[bytes]) -> Any:
    """Checkpoint the databases in a background thread (the store takes them concurrently)"""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() != b"SCHEDULE"):
        raise SYNTAX
    state = client.state
    if state.bgsave is not None and state.bgsave.is_alive():
        raise RespError("ERR Background save already in progress")
    _need_data_dir(state)
    state.bgsave = state.bgsave_start()
    return SimpleString("Background saving started")


@command("lastsave", 1, "loading stale fast", group="server")
def lastsave(client: Client, argv: list[bytes]) -> int:
    """Get the UNIX time stamp of the last successful checkpoint (or the start time)"""
    return client.state.lastsave


@command("shutdown", -1, "admin noscript loading stale no_multi allow_busy", group="server")
def shutdown(client: Client, argv: list[bytes]) -> Any:
    """Stop the server: stop accepting, finish in-flight commands, close the stores"""
    for a in argv[1:]:
        if a.upper() not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            raise SYNTAX
        if a.upper() == b"ABORT":
            raise RespError("ERR No shutdown in progress.")
    if client.state.request_shutdown is None:
        raise RespError("ERR shutdown is not available in this context")
    log.warning("SHUTDOWN requested by client %d (%s)", client.id, client.addr)
    client.state.request_shutdown()
    return CLOSE
