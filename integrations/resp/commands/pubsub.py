"""Pub/sub: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH and PUBSUB.

Messages reach other connections through the outlet the server registers for each client
(``attach``): the connection's output queue, so that they keep their order with its replies.
A subscriber that does not read is disconnected when its pending output passes the hard limit,
or stays above the soft limit for the soft seconds (Redis' ``client-output-buffer-limit pubsub
32mb 8mb 60``: ``[server] pubsub_output_*``, settable with CONFIG SET; 0 = no limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands.keys import glob_matcher
from faster_backend.integrations.resp.encoder import encode
from faster_backend.integrations.resp.table import COMMANDS, command, subcommand
from faster_backend.integrations.resp.types import Push, Replies, RespError

if TYPE_CHECKING:
    from faster_backend.integrations.resp.state import ServerState
    from faster_backend.integrations.resp.table import CommandSpec

log = logging.getLogger(__name__)

P = "pubsub"
ALLOWED_RESP2 = frozenset(
    (b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe", b"ping", b"quit", b"reset",
     b"ssubscribe", b"sunsubscribe")
)


class Outlet(Protocol):
    """Where a client's output goes: the server's connection (an asyncio transport's subset)."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def get_extra_info(self, name: str) -> Any: ...
    def abort(self) -> None: ...


class Subscriber:
    """A client's subscriptions and the outlet its messages go to."""

    __slots__ = ("channels", "client", "outlet", "over_since", "patterns")

    def __init__(self, client: Client, outlet: Outlet | None) -> None:
        self.client = client
        self.outlet = outlet
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.over_since: float | None = None


class Hub:
    """Server-wide: channel -> subscribers, pattern -> (matcher, subscribers)."""

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Subscriber, None]] = {}
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], dict[Subscriber, None]]] = {}
        self.subs: dict[Client, Subscriber] = {}
        self.outlets: dict[Client, Outlet] = {}


def hub(state: ServerState) -> Hub:
    h: Hub | None = state.__dict__.get("_pubsub_hub")
    if h is None:
        h = Hub()
        state.__dict__["_pubsub_hub"] = h
    return h


def attach(client: Client, outlet: Outlet) -> None:
    """The server tells where ``client``'s pushed messages go."""
    hub(client.state).outlets[client] = outlet


def detach(client: Client) -> None:
    """The connection closed: drop its subscriptions."""
    h = hub(client.state)
    h.outlets.pop(client, None)
    sub = h.subs.get(client)
    if sub is not None:
        _unsub_all(h, sub, channels=True, patterns=True)


def leave_all(client: Client) -> None:
    """Drop every subscription of ``client`` without replies (RESET)."""
    h = hub(client.state)
    sub = h.subs.get(client)
    if sub is not None:
        _unsub_all(h, sub, channels=True, patterns=True)


def gate(client: Client, spec: CommandSpec, argv: list[bytes]) -> Any:
    """RESP2 subscribed context: only (un)subscribe, PING, QUIT and RESET; None = proceed."""
    if client.proto != 2:
        return None
    name = spec.name.encode() if spec.parent is None else spec.parent.name.encode()
    if name not in ALLOWED_RESP2:
        return RespError(
            f"ERR Can't execute '{spec.fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE /"
            " PING / QUIT / RESET are allowed in this context"
        )
    if name == b"ping":
        if len(argv) > 2:
            return None  # the arity error of PING itself
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return None


def _sub(h: Hub, client: Client) -> Subscriber:
    sub = h.subs.get(client)
    if sub is None:
        sub = h.subs[client] = Subscriber(client, h.outlets.get(client))
    return sub


def _count(sub: Subscriber) -> int:
    return len(sub.channels) + len(sub.patterns)


def _settle(h: Hub, sub: Subscriber) -> None:
    n = _count(sub)
    sub.client.pubsub = n
    if not n:
        h.subs.pop(sub.client, None)


def _unsub_all(h: Hub, sub: Subscriber, channels: bool, patterns: bool) -> list[Push]:
    out: list[Push] = []
    if channels:
        for ch in list(sub.channels):
            out.append(_unsub_one(h, sub, ch, False))
    if patterns:
        for p in list(sub.patterns):
            out.append(_unsub_one(h, sub, p, True))
    _settle(h, sub)
    return out


def _unsub_one(h: Hub, sub: Subscriber, name: bytes, pattern: bool) -> Push:
    if pattern:
        if sub.patterns.pop(name, 0) is None:
            entry = h.patterns.get(name)
            if entry is not None:
                entry[1].pop(sub, None)
                if not entry[1]:
                    del h.patterns[name]
    elif sub.channels.pop(name, 0) is None:
        members = h.channels.get(name)
        if members is not None:
            members.pop(sub, None)
            if not members:
                del h.channels[name]
    return Push([b"punsubscribe" if pattern else b"unsubscribe", name, _count(sub)])


@command("subscribe", -2, "pubsub noscript loading stale", group=P, since="2.0.0")
def subscribe(client: Client, argv: list[bytes]) -> Replies:
    """Listen for messages published to the given channels"""
    h = hub(client.state)
    sub = _sub(h, client)
    out = Replies()
    for ch in argv[1:]:
        if ch not in sub.channels:
            sub.channels[ch] = None
            h.channels.setdefault(ch, {})[sub] = None
        out.append(Push([b"subscribe", ch, _count(sub)]))
    _settle(h, sub)
    return out


@command("psubscribe", -2, "pubsub noscript loading stale", group=P, since="2.0.0")
def psubscribe(client: Client, argv: list[bytes]) -> Replies:
    """Listen for messages published to channels matching the given patterns"""
    h = hub(client.state)
    sub = _sub(h, client)
    out = Replies()
    for p in argv[1:]:
        if p not in sub.patterns:
            sub.patterns[p] = None
            entry = h.patterns.get(p)
            if entry is None:
                entry = h.patterns[p] = (glob_matcher(p), {})
            entry[1][sub] = None
        out.append(Push([b"psubscribe", p, _count(sub)]))
    _settle(h, sub)
    return out


def _unsubscribe(client: Client, argv: list[bytes], pattern: bool) -> Replies:
    h = hub(client.state)
    sub = h.subs.get(client)
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    if sub is None:
        if len(argv) == 1:
            return Replies([Push([kind, None, 0])])
        return Replies(Push([kind, name, 0]) for name in argv[1:])
    if len(argv) == 1:
        out = Replies(_unsub_all(h, sub, channels=not pattern, patterns=pattern))
        if not out:
            out.append(Push([kind, None, _count(sub)]))
        return out
    out = Replies(_unsub_one(h, sub, name, pattern) for name in argv[1:])
    _settle(h, sub)
    return out


@command("unsubscribe", -1, "pubsub noscript loading stale", group=P, since="2.0.0")
def unsubscribe(client: Client, argv: list[bytes]) -> Replies:
    """Stop listening for messages posted to the given channels"""
    return _unsubscribe(client, argv, False)


@command("punsubscribe", -1, "pubsub noscript loading stale", group=P, since="2.0.0")
def punsubscribe(client: Client, argv: list[bytes]) -> Replies:
    """Stop listening for messages posted to channels matching the given patterns"""
    return _unsubscribe(client, argv, True)


def _deliver(h: Hub, sub: Subscriber, msg: Push) -> None:
    outlet = sub.outlet or h.outlets.get(sub.client)
    if outlet is None or outlet.is_closing():
        return
    outlet.write(encode(msg, sub.client.proto))
    size = outlet.get_write_buffer_size()
    limits = sub.client.state.config.server
    hard = limits.pubsub_output_hard_limit
    soft = limits.pubsub_output_soft_limit
    over = bool(hard) and size >= hard
    if soft and size >= soft:  # as Redis: over the soft limit for longer than its seconds
        now = time.monotonic()
        if sub.over_since is None:
            sub.over_since = now
        elif now - sub.over_since > limits.pubsub_output_soft_seconds:
            over = True
    else:
        sub.over_since = None
    if over:
        log.warning(
            "client %d (%s) closed: pubsub output buffer over client-output-buffer-limit"
            " (%d bytes pending)",
            sub.client.id,
            sub.client.addr,
            size,
        )
        outlet.abort()


@command("publish", 3, "pubsub loading stale fast may_replicate", group=P, since="2.0.0")
def publish(client: Client, argv: list[bytes]) -> Any:
    """Post a message to a channel"""
    h = hub(client.state)
    ch, payload = argv[1], argv[2]
    n = 0
    mine: list[Push] = []  # messages to the publisher itself follow its reply (dispatch)
    members = h.channels.get(ch)
    if members:
        msg = Push([b"message", ch, payload])
        for sub in list(members):
            if sub.client is client:
                mine.append(msg)
            else:
                _deliver(h, sub, msg)
            n += 1
    if h.patterns:
        for p, (match, subs) in list(h.patterns.items()):
            if subs and match(ch):
                pmsg = Push([b"pmessage", p, ch, payload])
                for sub in list(subs):
                    if sub.client is client:
                        mine.append(pmsg)
                    else:
                        _deliver(h, sub, pmsg)
                    n += 1
    if mine:
        if client.pushes is None:
            client.pushes = mine
        else:
            client.pushes.extend(mine)
    return n


@command("pubsub", -2, "", group=P, since="2.8.0", container=True)
def pubsub_(client: Client, argv: list[bytes]) -> Any:
    """A container for Pub/Sub commands"""
    raise RespError("ERR unknown subcommand")  # pragma: no cover - dispatch picks the sub


@subcommand("pubsub", "channels", -2, "pubsub loading stale")
def pubsub_channels(client: Client, argv: list[bytes]) -> list[bytes]:
    """Return the currently active channels"""
    h = hub(client.state)
    if len(argv) > 3:
        raise RespError("ERR wrong number of arguments for 'pubsub|channels' command")
    m = glob_matcher(argv[2]) if len(argv) == 3 else None
    return [ch for ch, subs in h.channels.items() if subs and (m is None or m(ch))]


@subcommand("pubsub", "numsub", -2, "pubsub loading stale")
def pubsub_numsub(client: Client, argv: list[bytes]) -> Any:
    """Get the count of subscribers for channels"""
    h = hub(client.state)
    out: list[Any] = []
    for ch in argv[2:]:
        out.append(ch)
        out.append(len(h.channels.get(ch, ())))
    return out


@subcommand("pubsub", "numpat", 2, "pubsub loading stale")
def pubsub_numpat(client: Client, argv: list[bytes]) -> int:
    """Get the count of unique patterns pattern subscriptions"""
    return len(hub(client.state).patterns)


@subcommand("pubsub", "help", 2, "loading stale")
def pubsub_help(client: Client, argv: list[bytes]) -> list[str]:
    """Show helpful text about the different subcommands"""
    return [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "HELP",
        "    Print this help.",
    ]


# (P)SUBSCRIBE / (P)UNSUBSCRIBE change what the connection may run next: they go through
# dispatch, after which the server re-reads the connection's state.
for _name in (b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe"):
    COMMANDS[_name].inline = False
