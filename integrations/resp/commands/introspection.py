"""COMMAND and its subcommands, generated from the command table."""

from __future__ import annotations

from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.table import (
    COMMANDS,
    CommandSpec,
    all_commands,
    command,
    subcommand,
)
from faster_backend.integrations.resp.types import RespError, SimpleString


def _key_specs(spec: CommandSpec) -> list[Any]:
    if spec.first_key <= 0:
        return []
    flags = ["RW"] if spec.write else ["RO"]
    last = spec.last_key - spec.first_key if spec.last_key >= 0 else spec.last_key
    return [
        {
            "flags": [SimpleString(f) for f in flags],
            "begin_search": {"type": "index", "spec": {"index": spec.first_key}},
            "find_keys": {
                "type": "range",
                "spec": {"lastkey": last, "keystep": spec.step or 1, "limit": 0},
            },
        }
    ]


def info_entry(spec: CommandSpec) -> list[Any]:
    """One COMMAND INFO entry, in Redis 7's ten-field layout."""
    flags = set(spec.flags)
    if spec.getkeys is not None:
        flags.add("movablekeys")
    return [
        spec.fullname,
        spec.arity,
        {SimpleString(f) for f in sorted(flags)},
        spec.first_key,
        spec.last_key,
        spec.step,
        {SimpleString("@" + spec.group)},
        [],
        _key_specs(spec),
        [info_entry(s) for _, s in sorted(spec.subcommands.items())],
    ]


def _docs_entry(spec: CommandSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": spec.summary,
        "since": spec.since,
        "group": spec.group,
    }
    if spec.subcommands:
        doc["subcommands"] = {
            s.fullname: _docs_entry(s) for _, s in sorted(spec.subcommands.items())
        }
    return doc


@command("command", -1, "loading stale", group="server", since="2.8.13")
def command_(client: Client, argv: list[bytes]) -> Any:
    """Get array of Redis command details"""
    return [info_entry(s) for s in all_commands()]


@subcommand("command", "count", 2, "loading stale", since="2.8.13")
def command_count(client: Client, argv: list[bytes]) -> int:
    """Get total number of Redis commands"""
    return len(all_commands())


@subcommand("command", "list", -2, "loading stale", since="7.0.0")
def command_list(client: Client, argv: list[bytes]) -> list[str]:
    """Get an array of Redis command names"""
    return [s.name for s in all_commands()]


def _find(name: bytes) -> CommandSpec | None:
    if b"|" in name:
        parent, _, sub = name.lower().partition(b"|")
        owner = COMMANDS.get(parent)
        return owner.subcommands.get(sub) if owner else None
    return COMMANDS.get(name.lower())


@subcommand("command", "info", -2, "loading stale", since="2.8.13")
def command_info(client: Client, argv: list[bytes]) -> list[Any]:
    """Get array of specific Redis command details, or all when no argument is given"""
    if len(argv) == 2:
        return [info_entry(s) for s in all_commands()]
    out: list[Any] = []
    for name in argv[2:]:
        spec = _find(name)
        out.append(None if spec is None else info_entry(spec))
    return out


@subcommand("command", "docs", -2, "loading stale", since="7.0.0")
def command_docs(client: Client, argv: list[bytes]) -> dict[str, Any]:
    """Get array of specific Redis command documentation"""
    specs = all_commands() if len(argv) == 2 else [_find(n) for n in argv[2:]]
    return {s.fullname: _docs_entry(s) for s in specs if s is not None}


@subcommand("command", "getkeys", -3, "loading stale", since="2.8.13")
def command_getkeys(client: Client, argv: list[bytes]) -> list[bytes]:
    """Extract keys given a full Redis command"""
    cmd = argv[2:]
    spec = COMMANDS.get(cmd[0].lower())
    if spec is None:
        raise RespError("ERR Invalid command specified")
    if spec.subcommands and len(cmd) > 1:
        spec = spec.subcommands.get(cmd[1].lower(), spec)
    n = len(cmd)
    if (n != spec.arity) if spec.arity > 0 else (n < -spec.arity):
        raise RespError("ERR Invalid number of arguments specified for command")
    keys = spec.keys(cmd)
    if not keys:
        raise RespError("ERR The command has no key arguments")
    return keys


@subcommand("command", "help", 2, "loading stale", since="5.0.0")
def command_help(client: Client, argv: list[bytes]) -> list[Any]:
    """Show helpful text about the different subcommands"""
    return [
        SimpleString(line)
        for line in (
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand), COUNT, LIST, INFO [<command-name> ...],",
            "DOCS [<command-name> ...], GETKEYS <full-command>, HELP",
        )
    ]
