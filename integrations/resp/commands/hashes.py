"""Hash commands (HSET, HGET, HINCRBY, HSCAN, HRANDFIELD...) on the object store."""

from __future__ import annotations

import math
import random
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import create, done, entry, read
from faster_backend.integrations.resp.commands._util import (
    NOT_FLOAT,
    NOT_INT,
    OVERFLOW,
    to_float,
    to_int,
)
from faster_backend.integrations.resp.commands.keys import glob_matcher
from faster_backend.integrations.resp.commands.scans import parse_scan, scan_page
from faster_backend.integrations.resp.commands.strings import format_float
from faster_backend.integrations.resp.objects import HASH
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import OK, RespError

H = "hash"


def _hset_pairs(argv: list[bytes]) -> None:
    if len(argv) % 2 == 1:
        raise RespError(f"ERR wrong number of arguments for '{argv[0].decode().lower()}' command")


@command("hset", -4, "write denyoom fast", 1, 1, 1, group=H, since="2.0.0")
def hset(client: Client, argv: list[bytes]) -> int:
    """Set the string value of a hash field"""
    _hset_pairs(argv)
    e = create(client, argv[1], HASH, dict)
    h = e.obj
    before = len(h)
    for i in range(2, len(argv), 2):
        h[argv[i]] = argv[i + 1]
    client.keyspace.objects.mark(argv[1], e)
    return len(h) - before


@command("hmset", -4, "write denyoom fast", 1, 1, 1, group=H, since="2.0.0")
def hmset(client: Client, argv: list[bytes]) -> Any:
    """Set multiple hash fields to multiple values"""
    hset(client, argv)
    return OK


@command("hsetnx", 4, "write denyoom fast", 1, 1, 1, group=H, since="2.0.0")
def hsetnx(client: Client, argv: list[bytes]) -> int:
    """Set the value of a hash field, only if the field does not exist"""
    e = create(client, argv[1], HASH, dict)
    if argv[2] in e.obj:
        return 0
    e.obj[argv[2]] = argv[3]
    client.keyspace.objects.mark(argv[1], e)
    return 1


@command("hget", 3, "readonly fast", 1, 1, 1, group=H, since="2.0.0")
def hget(client: Client, argv: list[bytes]) -> bytes | None:
    """Get the value of a hash field"""
    h = read(client, argv[1], HASH)
    return None if h is None else h.get(argv[2])


@command("hmget", -3, "readonly fast", 1, 1, 1, group=H, since="2.0.0")
def hmget(client: Client, argv: list[bytes]) -> list[bytes | None]:
    """Get the values of all the given hash fields"""
    h = read(client, argv[1], HASH) or {}
    return [h.get(f) for f in argv[2:]]


@command("hdel", -3, "write fast", 1, 1, 1, group=H, since="2.0.0")
def hdel(client: Client, argv: list[bytes]) -> int:
    """Delete one or more hash fields"""
    e = entry(client, argv[1], HASH)
    if e is None:
        return 0
    h = e.obj
    n = 0
    for f in argv[2:]:
        if h.pop(f, None) is not None:
            n += 1
    if n:
        done(client, argv[1], e)
    return n


@command("hexists", 3, "readonly fast", 1, 1, 1, group=H, since="2.0.0")
def hexists(client: Client, argv: list[bytes]) -> int:
    """Determine if a hash field exists"""
    h = read(client, argv[1], HASH)
    return 1 if h is not None and argv[2] in h else 0


@command("hgetall", 2, "readonly", 1, 1, 1, group=H, since="2.0.0")
def hgetall(client: Client, argv: list[bytes]) -> dict[bytes, bytes]:
    """Get all the fields and values in a hash"""
    h = read(client, argv[1], HASH)
    return {} if h is None else dict(h)


@command("hkeys", 2, "readonly", 1, 1, 1, group=H, since="2.0.0")
def hkeys(client: Client, argv: list[bytes]) -> list[bytes]:
    """Get all the fields in a hash"""
    h = read(client, argv[1], HASH)
    return [] if h is None else list(h)


@command("hvals", 2, "readonly", 1, 1, 1, group=H, since="2.0.0")
def hvals(client: Client, argv: list[bytes]) -> list[bytes]:
    """Get all the values in a hash"""
    h = read(client, argv[1], HASH)
    return [] if h is None else list(h.values())


@command("hlen", 2, "readonly fast", 1, 1, 1, group=H, since="2.0.0")
def hlen(client: Client, argv: list[bytes]) -> int:
    """Get the number of fields in a hash"""
    h = read(client, argv[1], HASH)
    return 0 if h is None else len(h)


@command("hstrlen", 3, "readonly fast", 1, 1, 1, group=H, since="3.2.0")
def hstrlen(client: Client, argv: list[bytes]) -> int:
    """Get the length of the value of a hash field"""
    h = read(client, argv[1], HASH)
    v = None if h is None else h.get(argv[2])
    return 0 if v is None else len(v)


@command("hincrby", 4, "write denyoom fast", 1, 1, 1, group=H, since="2.0.0")
def hincrby(client: Client, argv: list[bytes]) -> int:
    """Increment the integer value of a hash field by the given number"""
    delta = to_int(argv[3])
    e = create(client, argv[1], HASH, dict)
    h = e.obj
    old = h.get(argv[2])
    try:
        cur = 0 if old is None else to_int(old)
    except RespError:
        done(client, argv[1], e)
        raise RespError("ERR hash value is not an integer") from None
    new = cur + delta
    if new < -(2**63) or new > 2**63 - 1:
        done(client, argv[1], e)
        raise OVERFLOW
    h[argv[2]] = b"%d" % new
    client.keyspace.objects.mark(argv[1], e)
    return new


@command("hincrbyfloat", 4, "write denyoom fast", 1, 1, 1, group=H, since="2.6.0")
def hincrbyfloat(client: Client, argv: list[bytes]) -> bytes:
    """Increment the float value of a hash field by the given amount"""
    inc = to_float(argv[3])
    if inc in (float("inf"), float("-inf")):
        raise RespError("ERR value is NaN or Infinity")
    e = create(client, argv[1], HASH, dict)
    h = e.obj
    old = h.get(argv[2])
    try:
        cur = Decimal(0)
        if old is not None:
            if to_float(old) in (float("inf"), float("-inf")):
                raise RespError("ERR increment would produce NaN or Infinity")
            cur = Decimal(old.decode())
    except (RespError, InvalidOperation, UnicodeDecodeError) as exc:
        done(client, argv[1], e)
        if isinstance(exc, RespError) and "NaN" in exc.message:
            raise
        raise RespError("ERR hash value is not a float") from None
    with localcontext() as ctx:
        ctx.prec = 60
        new = _long_double(cur + Decimal(argv[3].decode()))
        if abs(float(new)) == float("inf"):
            done(client, argv[1], e)
            raise RespError("ERR increment would produce NaN or Infinity")
        out = format_float(new)
    h[argv[2]] = out
    client.keyspace.objects.mark(argv[1], e)
    return out


def _long_double(d: Decimal) -> Decimal:
    """``d`` rounded to a 64-bit mantissa, as Redis' long double arithmetic does."""
    if d == 0 or not d.is_finite():
        return d
    _m, exp = math.frexp(float(d))
    quantum = Decimal(2) ** (exp - 64)
    return (d / quantum).to_integral_value() * quantum


@command("hrandfield", -2, "readonly", 1, 1, 1, group=H, since="6.2.0")
def hrandfield(client: Client, argv: list[bytes]) -> Any:
    """Get one or multiple random fields from a hash"""
    if len(argv) > 4 or (len(argv) == 4 and argv[3].upper() != b"WITHVALUES"):
        raise RespError("ERR syntax error")
    count = None if len(argv) < 3 else to_int(argv[2])
    withvalues = len(argv) == 4
    if count is not None and withvalues and abs(count) > (2**63 - 1) // 2:
        raise RespError("ERR value is out of range")
    h = read(client, argv[1], HASH)
    if count is None:
        return None if not h else random.choice(list(h))
    if not h or count == 0:
        return []
    fields = list(h)
    if count > 0:
        picked = random.sample(fields, min(count, len(fields)))
    else:
        picked = random.choices(fields, k=-count)
    if not withvalues:
        return picked
    if client.proto == 3:
        return [[f, h[f]] for f in picked]
    out: list[bytes] = []
    for f in picked:
        out.append(f)
        out.append(h[f])
    return out


@command("hscan", -3, "readonly", 1, 1, 1, group=H, since="2.8.0")
def hscan(client: Client, argv: list[bytes]) -> list[Any]:
    """Incrementally iterate hash fields and associated values"""
    cursor, match, count, novalues = parse_scan(argv, allow_novalues=True)
    e = entry(client, argv[1], HASH)
    nxt, fields = scan_page(e, iter, cursor, count)
    if match is not None:
        m = glob_matcher(match)
        fields = [f for f in fields if m(f)]
    if novalues or not fields:
        return [b"%d" % nxt, fields]
    assert e is not None
    h = e.obj
    out: list[bytes] = []
    for f in fields:
        out.append(f)
        out.append(h[f])
    return [b"%d" % nxt, out]


_ = (NOT_FLOAT, NOT_INT)
