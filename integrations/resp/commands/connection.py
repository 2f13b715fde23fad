"""Connection commands: HELLO, AUTH, SELECT, PING, ECHO, QUIT, RESET, CLIENT."""

from __future__ import annotations

import hmac
from typing import Any

from faster_backend import __version__
from faster_backend.integrations.resp import blocking
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands import pubsub
from faster_backend.integrations.resp.commands._util import SYNTAX, to_int
from faster_backend.integrations.resp.table import command, subcommand
from faster_backend.integrations.resp.types import OK, PONG, RespError, SimpleString

REDIS_VERSION = "7.2.4"
WRONGPASS = RespError("WRONGPASS invalid username-password pair or user is disabled.")


def check_password(client: Client, user: bytes, password: bytes) -> RespError | None:
    """Authenticate ``client`` as ``user`` (only "default" exists); the error, or None."""
    required = client.state.config.server.requirepass
    if user != b"default":
        return WRONGPASS
    if required is not None and not hmac.compare_digest(password, required.encode()):
        return WRONGPASS
    client.authenticated = True
    return None


@command("auth", -2, "noscript loading stale fast no_auth allow_busy", group="connection")
def auth(client: Client, argv: list[bytes]) -> Any:
    """Authenticate to the server"""
    if len(argv) > 3:
        raise SYNTAX
    if len(argv) == 2:
        if client.state.config.server.requirepass is None:
            raise RespError(
                "ERR AUTH <password> called without any password configured for the default"
                " user. Are you sure your configuration is correct?"
            )
        err = check_password(client, b"default", argv[1])
    else:
        err = check_password(client, argv[1], argv[2])
    if err is not None:
        raise err
    return OK


def _valid_name(name: bytes) -> bool:
    return all(0x21 <= c <= 0x7E for c in name)


@command("hello", -1, "noscript loading stale fast no_auth allow_busy", group="connection",
         since="6.0.0")
def hello(client: Client, argv: list[bytes]) -> Any:
    """Handshake with Redis"""
    proto = client.proto
    i = 1
    if len(argv) > 1:
        try:
            proto = to_int(argv[1])
        except RespError:
            raise RespError("ERR Protocol version is not an integer or out of range") from None
        i = 2
        if proto not in (2, 3):
            raise RespError("NOPROTO unsupported protocol version")
    auth_args: tuple[bytes, bytes] | None = None
    name: bytes | None = None
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if opt == b"AUTH" and i + 2 < n:
            auth_args = (argv[i + 1], argv[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < n:
            name = argv[i + 1]
            i += 2
        else:
            raise RespError(
                f"ERR Syntax error in HELLO option '{argv[i].decode('utf-8', 'replace')}'"
            )
    if auth_args is not None:
        err = check_password(client, *auth_args)
        if err is not None:
            raise err
    if not client.authenticated:
        raise RespError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the"
            " HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and"
            " select the RESP protocol version at the same time"
        )
    if name is not None:
        if not _valid_name(name):
            raise RespError(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        client.name = name
    client.proto = proto
    return {
        "server": "redis",
        "version": REDIS_VERSION,
        "proto": proto,
        "id": client.id,
        "mode": "standalone",
        "role": "master",
        "modules": [],
    }


@command("select", 2, "loading stale fast", group="connection")
def select(client: Client, argv: list[bytes]) -> Any:
    """Change the selected database for the current connection"""
    index = to_int(argv[1])
    if not 0 <= index < len(client.state.dbs):
        raise RespError("ERR DB index is out of range")
    client.select(index)
    return OK


@command("ping", -1, "fast", group="connection")
def ping(client: Client, argv: list[bytes]) -> Any:
    """Ping the server"""
    if len(argv) > 2:
        raise RespError("ERR wrong number of arguments for 'ping' command")
    return argv[1] if len(argv) == 2 else PONG


@command("echo", 2, "fast", group="connection")
def echo(client: Client, argv: list[bytes]) -> bytes:
    """Echo the given string"""
    return argv[1]


@command("quit", -1, "noscript loading stale fast no_auth allow_busy no_multi",
         group="connection")
def quit_(client: Client, argv: list[bytes]) -> Any:
    """Close the connection"""
    client.closing = True
    return OK


@command("reset", 1, "noscript loading stale fast no_auth allow_busy no_multi",
         group="connection", since="6.2.0")
def reset(client: Client, argv: list[bytes]) -> Any:
    """Reset the connection"""
    client.reset_state()
    if client.pubsub:  # RESET leaves every channel and pattern, as in Redis
        from faster_backend.integrations.resp.commands.pubsub import leave_all

        leave_all(client)
    return SimpleString("RESET")


# -- CLIENT ----------------------------------------------------------------------------------


@command("client", -2, "", group="connection", container=True, since="2.4.0")
def client_(client: Client, argv: list[bytes]) -> Any:
    """A container for client connection commands"""
    raise AssertionError("container")  # pragma: no cover - dispatch runs the subcommand


@subcommand("client", "setinfo", 4, "noscript loading stale", since="7.2.0")
def client_setinfo(client: Client, argv: list[bytes]) -> Any:
    """Set client or connection specific info"""
    attr = argv[2].upper()
    if not _valid_name(argv[3]) and argv[3]:
        raise RespError(
            f"ERR {attr.decode('utf-8', 'replace')} cannot contain spaces, newlines or special"
            " characters."
        )
    if attr == b"LIB-NAME":
        client.lib_name = argv[3]
    elif attr == b"LIB-VER":
        client.lib_ver = argv[3]
    else:
        raise RespError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
    return OK


@subcommand("client", "setname", 3, "noscript loading stale", since="2.6.9")
def client_setname(client: Client, argv: list[bytes]) -> Any:
    """Set the current connection name"""
    if not _valid_name(argv[2]) and argv[2]:
        raise RespError("ERR Client names cannot contain spaces, newlines or special characters.")
    client.name = argv[2]
    return OK


@subcommand("client", "getname", 2, "noscript loading stale", since="2.6.9")
def client_getname(client: Client, argv: list[bytes]) -> bytes | None:
    """Get the current connection name"""
    return client.name or None


@subcommand("client", "id", 2, "noscript loading stale", since="5.0.0")
def client_id(client: Client, argv: list[bytes]) -> int:
    """Returns the client ID for the current connection"""
    return client.id


def _blocked_ids() -> set[int]:
    return {w.client.id for q in blocking.WAITING.values() for w in q}


def _info_line(c: Client, blocked: set[int]) -> str:
    h = pubsub.hub(c.state)
    s = h.subs.get(c)
    outlet = h.outlets.get(c)
    omem = fd = 0
    if outlet is not None:
        omem = outlet.get_write_buffer_size()
        sock = outlet.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
    info = c.info(
        sub=0 if s is None else len(s.channels),
        psub=0 if s is None else len(s.patterns),
        blocked=c.id in blocked,
        omem=omem,
        fd=fd,
    )
    return " ".join(f"{k}={v}" for k, v in info.items())


@subcommand("client", "info", 2, "noscript loading stale", since="6.2.0")
def client_info(client: Client, argv: list[bytes]) -> bytes:
    """Returns information about the current client connection."""
    return (_info_line(client, _blocked_ids()) + "\n").encode()


@subcommand("client", "list", -2, "admin noscript loading stale")
def client_list(client: Client, argv: list[bytes]) -> bytes:
    """Get the list of client connections"""
    clients = list(client.state.clients.values())
    if len(argv) > 2:
        opt = argv[2].upper()
        if opt == b"ID" and len(argv) > 3:
            ids = {to_int(a) for a in argv[3:]}
            clients = [c for c in clients if c.id in ids]
        elif opt == b"TYPE" and len(argv) == 4:
            kind = argv[3].lower()
            if kind not in (b"normal", b"master", b"replica", b"pubsub"):
                raise RespError(
                    f"ERR Unknown client type '{argv[3].decode('utf-8', 'replace')}'"
                )
            # No masters or replicas here; pubsub clients are those with subscriptions.
            if kind == b"pubsub":
                clients = [c for c in clients if c.pubsub]
            elif kind == b"normal":
                clients = [c for c in clients if not c.pubsub]
            else:
                clients = []
        else:
            raise SYNTAX
    blocked = _blocked_ids()
    return "".join(_info_line(c, blocked) + "\n" for c in clients).encode()


@subcommand("client", "kill", -3, "admin noscript loading stale")
def client_kill(client: Client, argv: list[bytes]) -> Any:
    """Kill the connection of a client"""
    clients = client.state.clients
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        target = argv[2].decode("utf-8", "replace")
        for c in list(clients.values()):
            if c.addr == target:
                _kill(client, c)
                return OK
        raise RespError("ERR No such client")
    if len(argv) % 2 != 0:
        raise SYNTAX
    selected = list(clients.values())
    skipme = True
    for i in range(2, len(argv), 2):
        opt = argv[i].upper()
        val = argv[i + 1]
        if opt == b"ID":
            cid = to_int(val)
            selected = [c for c in selected if c.id == cid]
        elif opt == b"ADDR":
            selected = [c for c in selected if c.addr == val.decode("utf-8", "replace")]
        elif opt == b"LADDR":
            selected = [c for c in selected if c.laddr == val.decode("utf-8", "replace")]
        elif opt == b"USER":
            if val != b"default":
                selected = []
        elif opt == b"TYPE":
            if val.lower() != b"normal":
                selected = []
        elif opt == b"SKIPME":
            if val.lower() not in (b"yes", b"no"):
                raise SYNTAX
            skipme = val.lower() == b"yes"
        else:
            raise SYNTAX
    killed = 0
    for c in selected:
        if skipme and c is client:
            continue
        _kill(client, c)
        killed += 1
    return killed


def _kill(me: Client, target: Client) -> None:
    if target is me:
        me.closing = True  # the reply goes out first, then the connection closes
    elif target.kill is not None:
        target.kill()


@subcommand("client", "help", 2, "loading stale", since="5.0.0")
def client_help(client: Client, argv: list[bytes]) -> list[Any]:
    """Show helpful text about the different subcommands"""
    return [
        SimpleString(line)
        for line in (
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME, SETNAME <name>, SETINFO <LIB-NAME|LIB-VER> <value>, ID, INFO,",
            "LIST [TYPE normal|ID id...], KILL <addr> | KILL <option> <value> ...",
            f"(faster-backend {__version__})",
        )
    ]
