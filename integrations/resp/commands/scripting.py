"""Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP.

The Lua VM and the conversions live in ``resp/scripting.py``; this module binds them to the
command table and runs ``redis.call`` through ``dispatch.call`` against the calling client.
Scripts run inside the command handler, so on the single-threaded server nothing interleaves.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from faster_backend.integrations.resp import dispatch
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands.connection import REDIS_VERSION
from faster_backend.integrations.resp.scripting import (
    DEFAULT_TIME_LIMIT_MS,
    ERR_READONLY_WRITE,
    NOSCRIPT,
    NOTBUSY,
    CommandCall,
    Script,
    ScriptContext,
    ScriptingEngine,
    parse_numkeys,
)
from faster_backend.integrations.resp.state import ServerState
from faster_backend.integrations.resp.table import COMMANDS, CommandSpec, command, subcommand
from faster_backend.integrations.resp.types import OK, RespError, SimpleString

_engines: WeakKeyDictionary[ServerState, ScriptingEngine] = WeakKeyDictionary()


def _time_limit(state: ServerState) -> int:
    # Honoured if the server configuration grows a lua_time_limit (ms); Redis' default otherwise.
    value = getattr(state.config.server, "lua_time_limit", None)
    return DEFAULT_TIME_LIMIT_MS if value is None else int(value)


def started_engine(state: ServerState) -> ScriptingEngine | None:
    """The engine if a script command has run (for INFO: ``memory()``, ``len()``, counters)."""
    return _engines.get(state)


def engine_for(state: ServerState) -> ScriptingEngine:
    """The server's script cache and Lua VM (created on first use)."""
    engine = _engines.get(state)
    if engine is None:
        try:
            import lupa  # noqa: F401
        except ImportError:
            raise RespError(
                "ERR Lua scripting is unavailable: the lupa package is not installed"
                " (pip install 'faster-backend[server]')"
            ) from None
        engine = ScriptingEngine(time_limit_ms=_time_limit(state), redis_version=REDIS_VERSION)
        _engines[state] = engine
    return engine


def _caller(client: Client) -> CommandCall:
    def call(argv: list[bytes], ctx: ScriptContext) -> Any:
        if ctx.read_only:
            # Full resolution so that unknown / arity / noscript errors come first, as in Redis.
            found = dispatch.resolve(argv)
            spec = found if isinstance(found, CommandSpec) else None
            if spec is not None and spec.write and not spec.noscript:
                return RespError(ERR_READONLY_WRITE)
        else:
            spec = COMMANDS.get(argv[0]) or COMMANDS.get(argv[0].lower())
        write = spec is not None and spec.write
        proto = client.proto
        client.proto = ctx.resp  # commands see the script's protocol (redis.setresp)
        try:
            reply = dispatch.call(client, argv)
        finally:
            client.proto = proto
        if write and not isinstance(reply, RespError):
            ctx.wrote = True
        return reply

    return call


def _run(
    client: Client,
    engine: ScriptingEngine,
    script: Script,
    keys: list[bytes],
    args: list[bytes],
    read_only: bool,
) -> Any:
    engine.time_limit_ms = _time_limit(client.state)
    db = client.db_index
    try:
        return engine.run(script, keys, args, _caller(client), read_only=read_only)
    finally:
        # Since Redis 7 a SELECT inside a script does not change the caller's database.
        if client.db_index != db:
            client.select(db)


def _eval_keys(argv: list[bytes]) -> list[bytes]:
    try:
        return parse_numkeys(argv[1:])[0]
    except (RespError, IndexError):
        return []


def _eval(client: Client, argv: list[bytes], read_only: bool) -> Any:
    keys, args = parse_numkeys(argv[1:])
    engine = engine_for(client.state)
    script = engine.load(argv[1], from_eval=True)
    return _run(client, engine, script, keys, args, read_only)


def _evalsha(client: Client, argv: list[bytes], read_only: bool) -> Any:
    if len(argv[1]) != 40:
        raise RespError(NOSCRIPT)
    keys, args = parse_numkeys(argv[1:])
    engine = engine_for(client.state)
    script = engine.get(argv[1])
    if script is None:
        raise RespError(NOSCRIPT)
    return _run(client, engine, script, keys, args, read_only)


_EVAL_FLAGS = "noscript skip_monitor may_replicate no_mandatory_keys stale movablekeys"
_EVAL_RO_FLAGS = "noscript skip_monitor no_mandatory_keys stale readonly movablekeys"


@command("eval", -3, _EVAL_FLAGS, group="scripting", since="2.6.0", getkeys=_eval_keys)
def eval_(client: Client, argv: list[bytes]) -> Any:
    """Executes a server-side Lua script"""
    return _eval(client, argv, read_only=False)


@command("evalsha", -3, _EVAL_FLAGS, group="scripting", since="2.6.0", getkeys=_eval_keys)
def evalsha(client: Client, argv: list[bytes]) -> Any:
    """Executes a server-side Lua script by SHA1 digest"""
    return _evalsha(client, argv, read_only=False)


@command("eval_ro", -3, _EVAL_RO_FLAGS, group="scripting", since="7.0.0", getkeys=_eval_keys)
def eval_ro(client: Client, argv: list[bytes]) -> Any:
    """Executes a read-only server-side Lua script"""
    return _eval(client, argv, read_only=True)


@command("evalsha_ro", -3, _EVAL_RO_FLAGS, group="scripting", since="7.0.0", getkeys=_eval_keys)
def evalsha_ro(client: Client, argv: list[bytes]) -> Any:
    """Executes a read-only server-side Lua script by SHA1 digest"""
    return _evalsha(client, argv, read_only=True)


@command("script", -2, "", group="scripting", container=True, since="2.6.0")
def script_(client: Client, argv: list[bytes]) -> Any:
    """A container for Lua scripts management commands"""


@subcommand("script", "load", 3, "noscript stale", since="2.6.0")
def script_load(client: Client, argv: list[bytes]) -> bytes:
    """Loads a server-side Lua script to the script cache"""
    return engine_for(client.state).load(argv[2]).sha.encode()


@subcommand("script", "exists", -3, "noscript", since="2.6.0")
def script_exists(client: Client, argv: list[bytes]) -> list[int]:
    """Determines whether server-side Lua scripts exist in the script cache"""
    engine = engine_for(client.state)
    return [1 if engine.exists(sha) else 0 for sha in argv[2:]]


@subcommand("script", "flush", -2, "noscript", since="2.6.0")
def script_flush(client: Client, argv: list[bytes]) -> Any:
    """Removes all server-side Lua scripts from the script cache"""
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise RespError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine_for(client.state).flush()
    return OK


@subcommand("script", "kill", 2, "noscript allow_busy", since="2.6.0")
def script_kill(client: Client, argv: list[bytes]) -> Any:
    """Terminates a server-side Lua script during execution"""
    # A script runs inside one command on the single event loop: no other client's command
    # (this one included) can arrive while it runs, so there is never one to kill.
    raise RespError(NOTBUSY)


@subcommand("script", "debug", 3, "noscript", since="3.2.0")
def script_debug(client: Client, argv: list[bytes]) -> Any:
    """Sets the debug mode of server-side Lua scripts (not supported)"""
    if argv[2].lower() not in (b"yes", b"sync", b"no"):
        raise RespError("ERR Use SCRIPT DEBUG YES/SYNC/NO")
    if argv[2].lower() == b"no":
        return OK
    raise RespError("ERR SCRIPT DEBUG (the Lua debugger) is not supported by faster-backend")


_HELP = (
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Print this help.",
)


@subcommand("script", "help", 2, "loading stale", since="5.0.0")
def script_help(client: Client, argv: list[bytes]) -> list[SimpleString]:
    """Returns helpful text about the different subcommands"""
    return [SimpleString(line) for line in _HELP]
