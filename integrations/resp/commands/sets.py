"""Set commands (SADD, SMEMBERS, SINTER/SUNION/SDIFF [STORE], SPOP, SSCAN...)."""

from __future__ import annotations

import random
from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import create, done, drop, entry, read
from faster_backend.integrations.resp.commands._util import to_int
from faster_backend.integrations.resp.commands.keys import glob_matcher
from faster_backend.integrations.resp.commands.scans import parse_scan, scan_page
from faster_backend.integrations.resp.objects import SET, WRONGTYPE
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import RespError

S = "set"
NOT_POSITIVE = RespError("ERR value is out of range, must be positive")


@command("sadd", -3, "write denyoom fast", 1, 1, 1, group=S)
def sadd(client: Client, argv: list[bytes]) -> int:
    """Add one or more members to a set"""
    key = argv[1]
    e = client.keyspace.objects.get(key)
    if e is None or e.obj is None or e.expires is not None:
        e = create(client, key, SET, set)
    elif e.kind != SET:
        raise WRONGTYPE
    s = e.obj
    before = len(s)
    if len(argv) == 3:
        s.add(argv[2])
    else:
        s.update(argv[2:])
    added = len(s) - before
    if added:  # members already there change nothing: nothing to write back
        client.keyspace.objects.mark(key, e)
    return added


@command("srem", -3, "write fast", 1, 1, 1, group=S)
def srem(client: Client, argv: list[bytes]) -> int:
    """Remove one or more members from a set"""
    e = entry(client, argv[1], SET)
    if e is None:
        return 0
    s = e.obj
    before = len(s)
    s.difference_update(argv[2:])
    n = before - len(s)
    if n:
        done(client, argv[1], e)
    return n


@command("smembers", 2, "readonly", 1, 1, 1, group=S)
def smembers(client: Client, argv: list[bytes]) -> set[bytes]:
    """Get all the members in a set"""
    s = read(client, argv[1], SET)
    return set() if s is None else set(s)


@command("sismember", 3, "readonly fast", 1, 1, 1, group=S)
def sismember(client: Client, argv: list[bytes]) -> int:
    """Determine if a given value is a member of a set"""
    s = read(client, argv[1], SET)
    return 1 if s is not None and argv[2] in s else 0


@command("smismember", -3, "readonly fast", 1, 1, 1, group=S, since="6.2.0")
def smismember(client: Client, argv: list[bytes]) -> list[int]:
    """Returns the membership associated with the given elements for a set"""
    s = read(client, argv[1], SET) or set()
    return [1 if m in s else 0 for m in argv[2:]]


@command("scard", 2, "readonly fast", 1, 1, 1, group=S)
def scard(client: Client, argv: list[bytes]) -> int:
    """Get the number of members in a set"""
    s = read(client, argv[1], SET)
    return 0 if s is None else len(s)


@command("spop", -2, "write fast", 1, 1, 1, group=S)
def spop(client: Client, argv: list[bytes]) -> Any:
    """Remove and return one or multiple random members from a set"""
    if len(argv) > 3:
        raise RespError("ERR syntax error")
    count = None
    if len(argv) == 3:
        count = to_int(argv[2], NOT_POSITIVE)
        if count < 0:
            raise NOT_POSITIVE
    e = entry(client, argv[1], SET)
    if e is None:
        return None if count is None else set()
    s = e.obj
    if count is None:
        v = random.choice(tuple(s)) if len(s) < 64 else next(iter(random.sample(list(s), 1)))
        s.discard(v)
        done(client, argv[1], e)
        return v
    picked = random.sample(list(s), min(count, len(s)))
    s.difference_update(picked)
    done(client, argv[1], e)
    return set(picked)


@command("srandmember", -2, "readonly", 1, 1, 1, group=S)
def srandmember(client: Client, argv: list[bytes]) -> Any:
    """Get one or multiple random members from a set"""
    if len(argv) > 3:
        raise RespError("ERR syntax error")
    count = None if len(argv) < 3 else to_int(argv[2])
    if count is not None and count < -(2**62):
        raise RespError("ERR value is out of range")
    s = read(client, argv[1], SET)
    if count is None:
        return None if not s else random.choice(tuple(s))
    if not s or count == 0:
        return []
    items = list(s)
    if count > 0:
        return random.sample(items, min(count, len(items)))
    return random.choices(items, k=-count)


@command("smove", 4, "write fast", 1, 2, 1, group=S)
def smove(client: Client, argv: list[bytes]) -> int:
    """Move a member from one set to another"""
    src, dst, m = argv[1], argv[2], argv[3]
    se = entry(client, src, SET)
    if se is None:
        return 0
    de = entry(client, dst, SET)
    if m not in se.obj:
        return 0
    if src == dst:
        return 1
    se.obj.discard(m)
    done(client, src, se)
    if de is None:
        de = create(client, dst, SET, set)
    de.obj.add(m)
    client.keyspace.objects.mark(dst, de)
    return 1


def _sets(client: Client, keys: list[bytes]) -> list[set[bytes]]:
    return [read(client, k, SET) or set() for k in keys]


def _combine(op: str, sets: list[set[bytes]]) -> set[bytes]:
    if op == "inter":
        if not sets or any(not s for s in sets):
            return set()
        ordered = sorted(sets, key=len)
        return ordered[0].intersection(*ordered[1:])
    if op == "union":
        return set().union(*sets)
    return sets[0].difference(*sets[1:]) if sets else set()


def _store(client: Client, dst: bytes, result: set[bytes]) -> int:
    drop(client, dst)
    if result:
        create(client, dst, SET, lambda: result)
    return len(result)


@command("sinter", -2, "readonly", 1, -1, 1, group=S)
def sinter(client: Client, argv: list[bytes]) -> set[bytes]:
    """Intersect multiple sets"""
    return _combine("inter", _sets(client, argv[1:]))


@command("sunion", -2, "readonly", 1, -1, 1, group=S)
def sunion(client: Client, argv: list[bytes]) -> set[bytes]:
    """Add multiple sets"""
    return _combine("union", _sets(client, argv[1:]))


@command("sdiff", -2, "readonly", 1, -1, 1, group=S)
def sdiff(client: Client, argv: list[bytes]) -> set[bytes]:
    """Subtract multiple sets"""
    return _combine("diff", _sets(client, argv[1:]))


@command("sinterstore", -3, "write denyoom", 1, -1, 1, group=S)
def sinterstore(client: Client, argv: list[bytes]) -> int:
    """Intersect multiple sets and store the resulting set in a key"""
    return _store(client, argv[1], _combine("inter", _sets(client, argv[2:])))


@command("sunionstore", -3, "write denyoom", 1, -1, 1, group=S)
def sunionstore(client: Client, argv: list[bytes]) -> int:
    """Add multiple sets and store the resulting set in a key"""
    return _store(client, argv[1], _combine("union", _sets(client, argv[2:])))


@command("sdiffstore", -3, "write denyoom", 1, -1, 1, group=S)
def sdiffstore(client: Client, argv: list[bytes]) -> int:
    """Subtract multiple sets and store the resulting set in a key"""
    return _store(client, argv[1], _combine("diff", _sets(client, argv[2:])))


def numkeys_arg(argv: list[bytes], at: int) -> int:
    n = to_int(argv[at])
    if n <= 0:
        raise RespError("ERR numkeys should be greater than 0")
    if n > len(argv) - at - 1:
        raise RespError("ERR Number of keys can't be greater than number of args")
    return n


@command("sintercard", -3, "readonly", group=S, since="7.0.0",
         getkeys=lambda argv: argv[2 : 2 + int(argv[1])] if argv[1].isdigit() else [])
def sintercard(client: Client, argv: list[bytes]) -> int:
    """Intersect multiple sets and return the cardinality of the result"""
    n = numkeys_arg(argv, 1)
    limit = 0
    rest = argv[2 + n :]
    i = 0
    while i < len(rest):
        if rest[i].upper() == b"LIMIT" and i + 1 < len(rest):
            limit = to_int(rest[i + 1])
            if limit < 0:
                raise RespError("ERR LIMIT can't be negative")
            i += 2
        else:
            raise RespError("ERR syntax error")
    card = len(_combine("inter", _sets(client, argv[2 : 2 + n])))
    return min(card, limit) if limit else card


@command("sscan", -3, "readonly", 1, 1, 1, group=S, since="2.8.0")
def sscan(client: Client, argv: list[bytes]) -> list[Any]:
    """Incrementally iterate Set elements"""
    cursor, match, count, _nv = parse_scan(argv)
    nxt, members = scan_page(entry(client, argv[1], SET), iter, cursor, count)
    if match is not None:
        m = glob_matcher(match)
        members = [v for v in members if m(v)]
    return [b"%d" % nxt, members]
