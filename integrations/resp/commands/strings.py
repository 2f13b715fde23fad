"""String commands: GET/SET and friends, counters, ranges."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from faster_backend.engine import KEEP_TTL
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import no_object, replace_object
from faster_backend.integrations.resp.commands._util import (
    NOT_FLOAT,
    NOT_INT,
    OVERFLOW,
    SYNTAX,
    TOO_BIG,
    invalid_expire,
    to_float,
    to_int,
)
from faster_backend.integrations.resp.objects import WRONGTYPE
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import OK, RespError

MAX_EXPIRE_MS = 2**62  # beyond this Redis reports an invalid expire time (overflow)


@command("get", 2, "readonly fast", 1, 1, 1, group="string", summary="Get the value of a key")
def get(client: Client, argv: list[bytes]) -> bytes | None:
    v = client.kv.read(argv[1])
    if v is None and argv[1] in client.keyspace.objects:
        no_object(client, argv[1])
    return v


def _ttl_from(option: bytes, raw: bytes, cmd: str) -> float:
    """Seconds from now for an EX/PX/EXAT/PXAT argument (may be <= 0: already expired)."""
    n = to_int(raw)
    if n <= 0:
        raise invalid_expire(cmd)
    if option == b"EX":
        if n > MAX_EXPIRE_MS // 1000:
            raise invalid_expire(cmd)
        return float(n)
    if n > MAX_EXPIRE_MS:
        raise invalid_expire(cmd)
    if option == b"PX":
        return n / 1000.0
    if option == b"EXAT":
        if n > MAX_EXPIRE_MS // 1000:
            raise invalid_expire(cmd)
        return n - time.time()
    return n / 1000.0 - time.time()  # PXAT


@command(
    "set", -3, "write denyoom", 1, 1, 1, group="string", summary="Set the string value of a key"
)
def set_(client: Client, argv: list[bytes]) -> Any:
    kv = client.kv
    key = argv[1]
    value = argv[2]
    if len(argv) == 3:
        if key in client.keyspace.objects:
            replace_object(client, key)
        kv.upsert(key, value)
        return OK
    nx = xx = get_old = keepttl = False
    ttl: float | None = None
    expiry_given = False
    i = 3
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"GET":
            get_old = True
        elif opt == b"KEEPTTL" and not expiry_given:
            keepttl = True
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and not keepttl and not expiry_given:
            if i + 1 >= n:
                raise SYNTAX
            expiry_given = True
            ttl = _ttl_from(opt, argv[i + 1], "set")
            i += 1
        else:
            raise SYNTAX
        i += 1
    objs = client.keyspace.objects
    if key in objs and objs.alive(key):  # SET replaces a hash, list...; GET / NX refuse
        if get_old:
            raise WRONGTYPE
        if nx:
            return None
        objs.delete(key)
        xx = False  # the key existed
    old = kv.read(key) if (get_old or xx) else None
    if nx:
        if get_old and old is not None:
            return old
        # An expiry already in the past: nothing is stored, but NX still reports success.
        if ttl is not None:
            client.keyspace.expiry_set()
        stored = not kv.exists(key) if ttl is not None and ttl <= 0 else kv.add(key, value, ttl)
        if get_old:
            return None
        return OK if stored else None
    if xx and old is None:
        return None
    if keepttl:
        kv.rmw(key, lambda _old: value, KEEP_TTL)
    else:
        if ttl is not None:
            client.keyspace.expiry_set()
        kv.upsert(key, value, ttl)
    return old if get_old else OK


@command("setnx", 3, "write denyoom fast", 1, 1, 1, group="string")
def setnx(client: Client, argv: list[bytes]) -> int:
    """Set the value of a key, only if the key does not exist"""
    if argv[1] in client.keyspace.objects and client.keyspace.objects.alive(argv[1]):
        return 0
    return 1 if client.kv.add(argv[1], argv[2]) else 0


def _setex(client: Client, argv: list[bytes], unit: float, cmd: str) -> Any:
    n = to_int(argv[2])
    if n <= 0 or n * unit > MAX_EXPIRE_MS / 1000:
        raise invalid_expire(cmd)
    client.keyspace.expiry_set()
    replace_object(client, argv[1])
    client.kv.upsert(argv[1], argv[3], n * unit)
    return OK


@command("setex", 4, "write denyoom", 1, 1, 1, group="string")
def setex(client: Client, argv: list[bytes]) -> Any:
    """Set the value and expiration of a key"""
    return _setex(client, argv, 1.0, "setex")


@command("psetex", 4, "write denyoom", 1, 1, 1, group="string")
def psetex(client: Client, argv: list[bytes]) -> Any:
    """Set the value and expiration in milliseconds of a key"""
    return _setex(client, argv, 0.001, "psetex")


@command("getset", 3, "write denyoom fast", 1, 1, 1, group="string")
def getset(client: Client, argv: list[bytes]) -> bytes | None:
    """Set the string value of a key and return its old value"""
    no_object(client, argv[1])
    old = client.kv.read(argv[1])
    client.kv.upsert(argv[1], argv[2])
    return old


@command("getdel", 2, "write fast", 1, 1, 1, group="string", since="6.2.0")
def getdel(client: Client, argv: list[bytes]) -> bytes | None:
    """Get the value of a key and delete the key"""
    no_object(client, argv[1])
    old = client.kv.read(argv[1])
    if old is not None:
        client.kv.delete(argv[1])
    return old


@command("getex", -2, "write fast", 1, 1, 1, group="string", since="6.2.0")
def getex(client: Client, argv: list[bytes]) -> bytes | None:
    """Get the value of a key and optionally set its expiration"""
    ttl: float | None = None
    persist = False
    i = 2
    n = len(argv)
    given = False
    while i < n:
        opt = argv[i].upper()
        if opt in (b"EX", b"PX", b"EXAT", b"PXAT") and not given and i + 1 < n:
            ttl = _ttl_from(opt, argv[i + 1], "getex")
            given = True
            i += 2
        elif opt == b"PERSIST" and not given:
            persist = given = True
            i += 1
        else:
            raise SYNTAX
    no_object(client, argv[1])
    value = client.kv.read(argv[1])
    if value is not None and given:
        if not persist:
            client.keyspace.expiry_set()
        client.kv.expire(argv[1], None if persist else ttl)
    return value


@command("mget", -2, "readonly fast", 1, -1, 1, group="string")
def mget(client: Client, argv: list[bytes]) -> list[bytes | None]:
    """Get the values of all the given keys"""
    return client.kv.read_many(argv[1:])


@command("mset", -3, "write denyoom", 1, -1, 2, group="string")
def mset(client: Client, argv: list[bytes]) -> Any:
    """Set multiple keys to multiple values"""
    if len(argv) % 2 == 0:
        raise RespError("ERR wrong number of arguments for 'mset' command")
    keys = argv[1::2]
    objs = client.keyspace.objects
    if objs and not objs.keys().isdisjoint(keys):  # one C-level check while none is an object
        for key in keys:
            if key in objs:
                objs.delete(key)
    # One commit for all under durability "always".
    client.kv.upsert_many(zip(keys, argv[2::2], strict=True))
    return OK


@command("msetnx", -3, "write denyoom", 1, -1, 2, group="string")
def msetnx(client: Client, argv: list[bytes]) -> int:
    """Set multiple keys to multiple values, only if none of the keys exist"""
    if len(argv) % 2 == 0:
        raise RespError("ERR wrong number of arguments for 'msetnx' command")
    kv = client.kv
    objs = client.keyspace.objects
    if any(kv.exists(argv[i]) or objs.alive(argv[i]) for i in range(1, len(argv), 2)):
        return 0
    kv.upsert_many(zip(argv[1::2], argv[2::2], strict=True))
    return 1


def update(client: Client, key: bytes, updater: Callable[[bytes | None], bytes]) -> bytes:
    """Replace ``key``'s value with ``updater(old)``, keeping its expiry; returns the new value.

    While no key of the database can carry an expiry there is none to keep, and a read plus
    an upsert is about twice as fast as the store's rmw. Commands run one at a time on the
    event loop, so the pair is as atomic as the rmw for every client.
    """
    ks = client.keyspace
    if key in ks.objects:
        no_object(client, key)
    if ks.may_expire:
        return client.kv.rmw(key, updater, KEEP_TTL) or b""
    kv = client.kv
    new = updater(kv.read(key))
    kv.upsert(key, new)
    return new


@command("strlen", 2, "readonly fast", 1, 1, 1, group="string")
def strlen(client: Client, argv: list[bytes]) -> int:
    """Get the length of the value stored in a key"""
    v = client.kv.read(argv[1])
    if v is None:
        no_object(client, argv[1])
    return 0 if v is None else len(v)


@command("append", 3, "write denyoom fast", 1, 1, 1, group="string")
def append(client: Client, argv: list[bytes]) -> int:
    """Append a value to a key"""
    limit = client.state.config.server.proto_max_bulk_len
    suffix = argv[2]

    def updater(old: bytes | None) -> bytes:
        if old is None:
            return suffix
        if len(old) + len(suffix) > limit:
            raise TOO_BIG
        return old + suffix

    return len(update(client, argv[1], updater))


@command("getrange", 4, "readonly", 1, 1, 1, group="string", since="2.4.0")
def getrange(client: Client, argv: list[bytes]) -> bytes:
    """Get a substring of the string stored at a key"""
    start = to_int(argv[2])
    end = to_int(argv[3])
    no_object(client, argv[1])
    v = client.kv.read(argv[1]) or b""
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(0, n + start)
    if end < 0:
        end = max(0, n + end)
    end = min(end, n - 1)
    if n == 0 or start > end:
        return b""
    return v[start : end + 1]


@command("substr", 4, "readonly", 1, 1, 1, group="string")
def substr(client: Client, argv: list[bytes]) -> bytes:
    """Get a substring of the string stored at a key (old name of GETRANGE)"""
    return getrange(client, argv)


@command("setrange", 4, "write denyoom", 1, 1, 1, group="string", since="2.2.0")
def setrange(client: Client, argv: list[bytes]) -> int:
    """Overwrite part of a string at key starting at the specified offset"""
    offset = to_int(argv[2])
    if offset < 0:
        raise RespError("ERR offset is out of range")
    patch = argv[3]
    limit = client.state.config.server.proto_max_bulk_len
    kv = client.kv
    if not patch:
        no_object(client, argv[1])
        v = kv.read(argv[1])
        return 0 if v is None else len(v)
    if offset + len(patch) > limit:
        raise TOO_BIG

    def updater(old: bytes | None) -> bytes:
        cur = old or b""
        if len(cur) < offset:
            cur += b"\0" * (offset - len(cur))
        return cur[:offset] + patch + cur[offset + len(patch) :]

    return len(update(client, argv[1], updater))


def incr_by(client: Client, key: bytes, delta: int) -> int:
    """INCRBY's work, shared with the listener's fast lane."""
    if key in client.keyspace.objects:
        no_object(client, key)
    try:
        return client.kv.incr(key, delta)  # in place when it can; keeps the expiry
    except (ValueError, OverflowError) as e:
        raise incr_error(e) from None


def incr_error(exc: Exception) -> Exception:
    """The reply error for what the store's ``incr`` raised (others pass unchanged)."""
    if isinstance(exc, OverflowError):
        return OVERFLOW
    if isinstance(exc, ValueError):
        return NOT_INT
    return exc


@command("incr", 2, "write denyoom fast", 1, 1, 1, group="string")
def incr(client: Client, argv: list[bytes]) -> int:
    """Increment the integer value of a key by one"""
    return incr_by(client, argv[1], 1)


@command("decr", 2, "write denyoom fast", 1, 1, 1, group="string")
def decr(client: Client, argv: list[bytes]) -> int:
    """Decrement the integer value of a key by one"""
    return incr_by(client, argv[1], -1)


@command("incrby", 3, "write denyoom fast", 1, 1, 1, group="string")
def incrby(client: Client, argv: list[bytes]) -> int:
    """Increment the integer value of a key by the given amount"""
    return incr_by(client, argv[1], to_int(argv[2]))


@command("decrby", 3, "write denyoom fast", 1, 1, 1, group="string")
def decrby(client: Client, argv: list[bytes]) -> int:
    """Decrement the integer value of a key by the given number"""
    delta = to_int(argv[2])
    if delta == -(2**63):
        raise RespError("ERR decrement would overflow")
    return incr_by(client, argv[1], -delta)


def format_float(d: Decimal) -> bytes:
    """Redis' human-friendly long double format: 17 decimals, trailing zeros stripped."""
    s = format(d.quantize(Decimal(1).scaleb(-17)) if abs(d) < Decimal(10) ** 20 else d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s.encode()


@command("incrbyfloat", 3, "write denyoom fast", 1, 1, 1, group="string", since="2.6.0")
def incrbyfloat(client: Client, argv: list[bytes]) -> bytes:
    """Increment the float value of a key by the given amount"""
    incr_f = to_float(argv[2])
    incr_d = Decimal(argv[2].decode()) if incr_f not in (float("inf"), float("-inf")) else None

    def updater(old: bytes | None) -> bytes:
        cur_d = Decimal(0)
        if old is not None:
            cur_f = to_float(old)
            if cur_f in (float("inf"), float("-inf")):
                raise RespError("ERR increment would produce NaN or Infinity")
            try:
                cur_d = Decimal(old.decode())
            except (InvalidOperation, UnicodeDecodeError):
                raise NOT_FLOAT from None
        if incr_d is None:
            raise RespError("ERR increment would produce NaN or Infinity")
        with localcontext() as ctx:
            ctx.prec = 40
            new = cur_d + incr_d
        if abs(float(new)) == float("inf"):
            raise RespError("ERR increment would produce NaN or Infinity")
        return format_float(new)

    return update(client, argv[1], updater)
