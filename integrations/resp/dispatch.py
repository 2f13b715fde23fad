"""Running commands: lookup, arity and auth checks, MULTI queuing, WATCH bookkeeping, errors.

``execute(client, argv)`` runs one request from a connection. ``call(client, argv)`` is the hook
for Lua scripts' ``redis.call`` / ``redis.pcall``: it runs one command against the calling
client's database and returns the reply value, with errors as ``RespError`` values (not raised).
"""

from __future__ import annotations

import logging
from typing import Any

from faster_backend.engine import EngineError, RecordTooLargeError
from faster_backend.integrations.resp.blocking import settle
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.table import (
    COMMANDS,
    CommandSpec,
    arity_error,
    unknown_subcommand,
)
from faster_backend.integrations.resp.types import QUEUED, Replies, RespError

log = logging.getLogger(__name__)


def pubsub_gate(client: Client, spec: CommandSpec, argv: list[bytes]) -> Any:
    from faster_backend.integrations.resp.commands.pubsub import gate

    return gate(client, spec, argv)

NOAUTH = RespError("NOAUTH Authentication required.")
CLOSE = object()
"""Returned for requests that end the connection without a reply (cross-protocol attacks)."""


def unknown_command(argv: list[bytes]) -> RespError:
    args = ""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += "'" + a.decode("utf-8", "replace")[: 128 - len(args)] + "' "
    name = argv[0].decode("utf-8", "replace")[:128]
    return RespError(f"ERR unknown command '{name}', with args beginning with: {args}")


def resolve(argv: list[bytes]) -> CommandSpec | RespError:
    """The spec that will run ``argv`` (subcommand for containers), or the error to reply."""
    spec = COMMANDS.get(argv[0])
    if spec is None:
        spec = COMMANDS.get(argv[0].lower())
        if spec is None:
            return unknown_command(argv)
    n = len(argv)
    if spec.subcommands and (n >= 2 or spec.arity < -1):
        if n < 2:
            return arity_error(spec)
        sub = spec.subcommands.get(argv[1].lower())
        if sub is None:
            return unknown_subcommand(argv)
        spec = sub
    a = spec.arity
    if (n != a) if a > 0 else (n < -a):
        return arity_error(spec)
    return spec


def execute(client: Client, argv: list[bytes]) -> Any:
    """The reply to one request (a value for the encoder, a RespError, or CLOSE)."""
    spec = COMMANDS.get(argv[0])
    if spec is None or spec.subcommands:
        found = resolve(argv)
        if found.__class__ is not CommandSpec:
            name = argv[0].lower()
            if name == b"post" or name == b"host:":
                log.warning(
                    "possible SECURITY ATTACK detected: %r from %s looks like HTTP sent to"
                    " the RESP port; connection aborted",
                    argv[0],
                    client.addr,
                )
                return CLOSE
            if client.multi is not None:
                client.multi_failed = True
            return found
        spec = found  # type: ignore[assignment]
    else:
        a = spec.arity
        n = len(argv)
        if (n != a) if a > 0 else (n < -a):
            if client.multi is not None:
                client.multi_failed = True
            return arity_error(spec)
    if not client.authenticated and not spec.no_auth:
        return NOAUTH
    if client.pubsub:
        refused = pubsub_gate(client, spec, argv)
        if refused is not None:
            return refused
    if client.multi is not None and not spec.no_multi:
        client.multi.append((spec, argv))
        return QUEUED
    reply = run(client, spec, argv)
    if client.pushes is not None:
        # PUBLISH to the client itself (directly, inside EXEC or a script): the messages come
        # right after this command's whole reply, never inside it (Redis 7.2).
        reply = Replies([reply, *client.pushes])
        client.pushes = None
    return reply


def run(client: Client, spec: CommandSpec, argv: list[bytes]) -> Any:
    """Run a resolved command (arity already checked), turning failures into error replies."""
    spec.calls += 1
    try:
        reply = spec.handler(client, argv)
    except Exception as e:
        return error_reply(spec, e)
    if spec.write and client.keyspace.watchers:
        touch_keys(client, spec, argv)
    return reply


def touch_keys(client: Client, spec: CommandSpec, argv: list[bytes]) -> None:
    for key in spec.keys(argv):
        client.keyspace.touch(key)


def error_reply(spec: CommandSpec, exc: Exception) -> RespError:
    """The error reply for an exception a handler raised (bugs are logged, never fatal)."""
    spec.failed += 1
    if isinstance(exc, RespError):
        return exc
    if isinstance(exc, RecordTooLargeError):
        return RespError(f"ERR {exc}")
    if isinstance(exc, EngineError):
        log.error("%s failed: %s", spec.fullname, exc)
        return RespError(f"ERR {exc}")
    log.error("%s raised", spec.fullname, exc_info=exc)
    return RespError(f"ERR internal error while running '{spec.fullname}'")


def call(client: Client, argv: list[bytes]) -> Any:
    """Run one command for a Lua script: no queuing, ``noscript`` commands refused.

    Returns the reply value (see types.py); errors come back as RespError values so that
    ``redis.pcall`` can return them and ``redis.call`` can raise them.
    """
    if not argv:
        return RespError("ERR Please specify at least one argument for this redis lib call")
    found = resolve(argv)
    if found.__class__ is not CommandSpec:
        if isinstance(found, RespError) and found.message.startswith("ERR unknown command"):
            return RespError("ERR Unknown Redis command called from script")
        if isinstance(found, RespError) and found.message.startswith("ERR wrong number"):
            return RespError("ERR Wrong number of args calling Redis command from script")
        return found
    spec: CommandSpec = found  # type: ignore[assignment]
    if spec.noscript or (spec.parent is not None and spec.parent.noscript):
        return RespError("ERR This Redis command is not allowed from script")
    return settle(run(client, spec, argv))  # scripts never block (BLPOP answers at once)
