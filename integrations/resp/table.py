"""The command table: one ``CommandSpec`` per command, registered by the command modules.

The table drives dispatch (lookup, arity, flags), ``COMMAND`` / ``COMMAND INFO|COUNT|DOCS|
GETKEYS|LIST`` and WATCH bookkeeping (keys of write commands). Command modules register with::

    @command("get", 2, "readonly fast", 1, 1, 1, group="string", summary="...")
    def get(client: Client, argv: list[bytes]) -> Reply: ...

Container commands (CONFIG, CLIENT, COMMAND, SCRIPT...) register with ``container=True`` and
their subcommands with ``@subcommand("config", "get", -3, ...)``; dispatch then looks up
``argv[1]``. Arity follows Redis: positive is exact, negative is a minimum, both count the
command name (and for subcommands the subcommand name too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from faster_backend.integrations.resp.types import RespError

if TYPE_CHECKING:
    from faster_backend.integrations.resp.client import Client

Handler = Callable[["Client", list[bytes]], Any]
KeysFunc = Callable[[list[bytes]], list[bytes]]
H = TypeVar("H", bound=Handler)

KNOWN_FLAGS = frozenset(
    (
        *("write", "readonly", "denyoom", "admin", "pubsub", "noscript", "blocking"),
        *("loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth"),
        *("may_replicate", "no_mandatory_keys", "no_multi", "movablekeys", "allow_busy"),
    )
)


@dataclass(eq=False)
class CommandSpec:
    """One command (or subcommand): its handler and the metadata COMMAND reports."""

    name: str
    handler: Handler
    arity: int
    flags: frozenset[str]
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    getkeys: KeysFunc | None = None
    parent: CommandSpec | None = None
    subcommands: dict[bytes, CommandSpec] = field(default_factory=dict)
    # Derived flags, precomputed for the dispatch hot path.
    write: bool = False
    no_auth: bool = False
    no_multi: bool = False
    noscript: bool = False
    # Runnable by the server's inline fast path: no subcommands, and it cannot change the
    # connection's MULTI, auth or protocol state nor close it (those go through dispatch).
    inline: bool = False
    min_args: int = 0
    max_args: int = 0
    # Statistics (plain attributes: cheaper than a dict lookup per call).
    calls: int = 0
    failed: int = 0
    usec: int = 0

    def __post_init__(self) -> None:
        unknown = self.flags - KNOWN_FLAGS
        if unknown:
            raise ValueError(f"{self.name}: unknown command flags {sorted(unknown)}")
        self.write = "write" in self.flags
        self.no_auth = "no_auth" in self.flags
        self.no_multi = "no_multi" in self.flags
        self.noscript = "noscript" in self.flags
        self.min_args = abs(self.arity)
        self.max_args = self.arity if self.arity > 0 else 1 << 62
        self.inline = not (self.no_multi or self.no_auth or self.parent is not None)

    @property
    def fullname(self) -> str:
        return f"{self.parent.name}|{self.name}" if self.parent else self.name

    def keys(self, argv: list[bytes]) -> list[bytes]:
        """The key arguments of ``argv`` (a full command line, subcommand included)."""
        if self.getkeys is not None:
            return self.getkeys(argv)
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        return argv[self.first_key : last + 1 : self.step or 1]


COMMANDS: dict[bytes, CommandSpec] = {}
"""Lookup by name as sent: lower- and upper-case spellings map to the same spec."""


def _flags(flags: str) -> frozenset[str]:
    return frozenset(flags.replace(",", " ").split())


def command(
    name: str,
    arity: int,
    flags: str = "",
    first_key: int = 0,
    last_key: int = 0,
    step: int = 0,
    *,
    group: str = "generic",
    summary: str = "",
    since: str = "1.0.0",
    getkeys: KeysFunc | None = None,
    container: bool = False,
) -> Callable[[H], H]:
    """Register a command handler under ``name`` (case-insensitive)."""

    def register(handler: H) -> H:
        spec = CommandSpec(
            name.lower(),
            _container_handler if container else handler,
            arity,
            _flags(flags),
            first_key,
            last_key,
            step,
            group=group,
            summary=summary or (handler.__doc__ or "").strip().split("\n")[0],
            since=since,
            getkeys=getkeys,
        )
        if container:
            spec.inline = False
        key = name.lower().encode()
        if key in COMMANDS:
            raise ValueError(f"command {name!r} is registered twice")
        COMMANDS[key] = COMMANDS[key.upper()] = spec
        return handler

    return register


def subcommand(
    parent: str,
    name: str,
    arity: int,
    flags: str = "",
    first_key: int = 0,
    last_key: int = 0,
    step: int = 0,
    *,
    summary: str = "",
    since: str = "1.0.0",
    getkeys: KeysFunc | None = None,
) -> Callable[[H], H]:
    """Register ``parent name`` (e.g. CONFIG GET); the parent must be a container command."""

    def register(handler: H) -> H:
        owner = COMMANDS[parent.lower().encode()]
        spec = CommandSpec(
            name.lower(),
            handler,
            arity,
            _flags(flags),
            first_key,
            last_key,
            step,
            group=owner.group,
            summary=summary or (handler.__doc__ or "").strip().split("\n")[0],
            since=since,
            getkeys=getkeys,
            parent=owner,
        )
        owner.subcommands[name.lower().encode()] = spec
        owner.inline = False  # dispatch picks the subcommand
        return handler

    return register


def unknown_subcommand(argv: list[bytes]) -> RespError:
    sub = argv[1].decode("utf-8", "replace")[:128]
    return RespError(
        f"ERR unknown subcommand '{sub}'. Try {argv[0].decode('utf-8', 'replace').upper()} HELP."
    )


def arity_error(spec: CommandSpec) -> RespError:
    return RespError(f"ERR wrong number of arguments for '{spec.fullname}' command")


def _container_handler(client: Client, argv: list[bytes]) -> Any:
    parent = COMMANDS[argv[0].lower()]
    sub = parent.subcommands.get(argv[1].lower())
    if sub is None:
        raise unknown_subcommand(argv)
    n = len(argv)
    if (n != sub.arity) if sub.arity > 0 else (n < -sub.arity):
        raise arity_error(sub)
    sub.calls += 1
    return sub.handler(client, argv)


def inline_commands() -> dict[bytes, CommandSpec]:
    """Name (as sent, lower- or upper-case) -> spec of every command the server may run inline.

    Built once every command module registered (modules clear ``inline`` after registering).
    """
    return {name: spec for name, spec in COMMANDS.items() if spec.inline}


def all_commands() -> list[CommandSpec]:
    """Every top-level command once, in name order."""
    seen: dict[str, CommandSpec] = {}
    for spec in COMMANDS.values():
        seen[spec.name] = spec
    return [seen[k] for k in sorted(seen)]
