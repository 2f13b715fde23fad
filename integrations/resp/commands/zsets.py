"""Sorted-set commands: ZADD (NX XX GT LT CH INCR), ZRANGE in all its forms, ZPOP..., ZSCAN.

Members with equal scores are ordered lexicographically (bytes), as in Redis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import create, done, entry, read
from faster_backend.integrations.resp.commands._util import SYNTAX, to_float, to_int
from faster_backend.integrations.resp.commands.keys import glob_matcher
from faster_backend.integrations.resp.commands.scans import SMALL, parse_scan, scan_page
from faster_backend.integrations.resp.objects import WRONGTYPE, ZSET, ZSet
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import RespError

Z = "sorted-set"
INF = float("inf")
NOT_FLOAT = RespError("ERR value is not a valid float")
MINMAX_FLOAT = RespError("ERR min or max is not a float")
MINMAX_LEX = RespError("ERR min or max not valid string range item")
NAN = RespError("ERR resulting score is not a number (NaN)")


def score_arg(raw: bytes, error: RespError = NOT_FLOAT) -> float:
    """A score as Redis' string2d reads it (no NaN, no spaces, no underscores, and no number
    out of a double's range: strtod's ERANGE), else ``error``."""
    if raw.isdigit() and len(raw) < 309:  # the common case (finite), without the regex
        return float(raw)
    value = to_float(raw, error)
    if value in (INF, -INF):
        if b"inf" not in raw.lower():
            raise error  # overflow: "1e400", 400 nines
    elif value == 0.0 and raw.lower().partition(b"e")[0].strip(b"+-.0"):
        raise error  # underflow to zero: "1e-400"
    return value


def fmt(score: float) -> bytes:
    """A score as Redis 7.2 prints it (shortest round-trip form, integers without '.0')."""
    if score == INF:
        return b"inf"
    if score == -INF:
        return b"-inf"
    if score == int(score) and abs(score) < 1e17:
        return b"%d" % int(score)
    return repr(score).encode()


def _score_reply(client: Client, score: float) -> Any:
    return score if client.proto == 3 else fmt(score)


def _with_scores(client: Client, pairs: Iterable[tuple[float, bytes]], scores: bool) -> list[Any]:
    if not scores:
        return [m for _s, m in pairs]
    if client.proto == 3:
        return [[m, s] for s, m in pairs]
    out: list[Any] = []
    for s, m in pairs:
        out.append(m)
        out.append(fmt(s))
    return out


# -- ZADD and friends ------------------------------------------------------------------------


@command("zadd", -4, "write denyoom fast", 1, 1, 1, group=Z, since="1.2.0")
def zadd(client: Client, argv: list[bytes]) -> Any:
    """Add one or more members to a sorted set, or update its score if it already exists"""
    n = len(argv)
    # ZADD key score member with a plain non-negative integer score (options are words) on a
    # live sorted set is the common form: answered here, without option parsing or pairs.
    if n == 4 and argv[2].isdigit() and len(argv[2]) < 309:  # below 1e308: finite
        e = client.keyspace.objects.get(argv[1])
        if e is not None and e.obj is not None and e.expires is None:
            if e.kind != ZSET:
                raise WRONGTYPE
            live: ZSet = e.obj
            member = argv[3]
            score = float(argv[2])
            old = live.scores.get(member)
            if old == score:
                return 0
            live.add(member, score)
            client.keyspace.objects.mark(argv[1], e)
            return 1 if old is None else 0
    nx = xx = gt = lt = ch = incr = False
    i = 2
    if n != 4 or not argv[2].isdigit():
        while i < n:
            o = argv[i].upper()
            if o == b"NX":
                nx = True
            elif o == b"XX":
                xx = True
            elif o == b"GT":
                gt = True
            elif o == b"LT":
                lt = True
            elif o == b"CH":
                ch = True
            elif o == b"INCR":
                incr = True
            else:
                break
            i += 1
    rest = n - i
    if rest <= 0 or rest % 2:
        raise SYNTAX
    if nx or xx or gt or lt or incr:
        if nx and xx:
            raise RespError("ERR XX and NX options at the same time are not compatible")
        if (gt and nx) or (lt and nx) or (gt and lt):
            raise RespError("ERR GT, LT, and/or NX options at the same time are not compatible")
        if incr and rest != 2:
            raise RespError("ERR INCR option supports a single increment-element pair")
    if rest == 2:
        pairs = [(score_arg(argv[i]), argv[i + 1])]
    else:
        pairs = [(score_arg(argv[j]), argv[j + 1]) for j in range(i, n, 2)]
    key = argv[1]
    e = client.keyspace.objects.get(key)
    if e is None or e.obj is None or e.expires is not None:
        e = entry(client, key, ZSET)
        if e is None:
            if xx:
                return None if incr else 0
            e = client.keyspace.objects.create(key, ZSET, ZSet())
    elif e.kind != ZSET:
        raise WRONGTYPE
    z: ZSet = e.obj
    scores = z.scores
    added = changed = 0
    result: float | None = None
    for score, member in pairs:
        old = scores.get(member)
        if old is None:
            if xx:
                continue
            if incr:
                result = score
            z.add(member, score)
            added += 1
            continue
        if nx:
            continue
        new = old + score if incr else score
        if new != new:
            done(client, key, e)
            raise NAN
        if (gt and new <= old) or (lt and new >= old):
            continue
        if incr:
            result = new
        if new != old:
            z.add(member, new)
            changed += 1
    if added or changed or not z:  # an unchanged set has nothing to write back
        done(client, key, e)
    if incr:
        return None if result is None else _score_reply(client, result)
    return added + changed if ch else added


@command("zincrby", 4, "write denyoom fast", 1, 1, 1, group=Z, since="1.2.0")
def zincrby(client: Client, argv: list[bytes]) -> Any:
    """Increment the score of a member in a sorted set"""
    inc = score_arg(argv[2])
    e = create(client, argv[1], ZSET, ZSet)
    z: ZSet = e.obj
    old = z.scores.get(argv[3])
    new = inc if old is None else old + inc
    if new != new:
        done(client, argv[1], e)
        raise NAN
    z.add(argv[3], new)
    client.keyspace.objects.mark(argv[1], e)
    return _score_reply(client, new)


@command("zrem", -3, "write fast", 1, 1, 1, group=Z, since="1.2.0")
def zrem(client: Client, argv: list[bytes]) -> int:
    """Remove one or more members from a sorted set"""
    e = entry(client, argv[1], ZSET)
    if e is None:
        return 0
    z: ZSet = e.obj
    n = sum(1 for m in argv[2:] if z.remove(m))
    if n:
        done(client, argv[1], e)
    return n


@command("zscore", 3, "readonly fast", 1, 1, 1, group=Z, since="1.2.0")
def zscore(client: Client, argv: list[bytes]) -> Any:
    """Get the score associated with the given member in a sorted set"""
    z = read(client, argv[1], ZSET)
    s = None if z is None else z.scores.get(argv[2])
    return None if s is None else _score_reply(client, s)


@command("zmscore", -3, "readonly fast", 1, 1, 1, group=Z, since="6.2.0")
def zmscore(client: Client, argv: list[bytes]) -> list[Any]:
    """Get the score associated with the given members in a sorted set"""
    z = read(client, argv[1], ZSET)
    scores = {} if z is None else z.scores
    out: list[Any] = []
    for m in argv[2:]:
        s = scores.get(m)
        out.append(None if s is None else _score_reply(client, s))
    return out


@command("zcard", 2, "readonly fast", 1, 1, 1, group=Z, since="1.2.0")
def zcard(client: Client, argv: list[bytes]) -> int:
    """Get the number of members in a sorted set"""
    z = read(client, argv[1], ZSET)
    return 0 if z is None else len(z)


# -- ranges ----------------------------------------------------------------------------------


def parse_score_bound(raw: bytes) -> tuple[float, bool]:
    """(value, exclusive) of a ZRANGEBYSCORE bound: 1.5, (1.5, -inf, +inf."""
    # Bounds are read with a bare strtod (zslParseRange): "1e400" is inf here, not an error.
    if raw[:1] == b"(":
        return to_float(raw[1:], MINMAX_FLOAT), True
    return to_float(raw, MINMAX_FLOAT), False


def score_span(z: ZSet, lo: tuple[float, bool], hi: tuple[float, bool]) -> tuple[int, int]:
    """Half-open rank span of the members whose scores lie within [lo, hi] (with exclusions)."""
    order = z.order
    lv, lx = lo
    hv, hx = hi
    if lx:
        if lv == INF:
            return 0, 0
        start = order.bisect_left((math.nextafter(lv, INF),))
    else:
        start = order.bisect_left((lv,))
    if hx:
        end = order.bisect_left((hv,))
    elif hv == INF:
        end = len(order)
    else:
        end = order.bisect_left((math.nextafter(hv, INF),))
    return start, max(start, end)


def parse_lex_bound(raw: bytes) -> tuple[bytes | None, bool, int]:
    """(member, exclusive, infinity: -1 for '-', 1 for '+', 0 otherwise)."""
    if raw == b"-":
        return None, False, -1
    if raw == b"+":
        return None, False, 1
    if raw[:1] == b"[":
        return raw[1:], False, 0
    if raw[:1] == b"(":
        return raw[1:], True, 0
    raise MINMAX_LEX


def lex_span(z: ZSet, lo: tuple[bytes | None, bool, int], hi: tuple[bytes | None, bool, int]
             ) -> tuple[int, int]:
    order = z.order
    if not order:
        return 0, 0
    s0 = order[0][0]  # BYLEX assumes equal scores, as Redis does
    lm, lx, linf = lo
    hm, hx, hinf = hi
    if linf == 1 or hinf == -1:
        return 0, 0
    start = 0 if linf == -1 else order.bisect_right((s0, lm)) if lx else order.bisect_left((s0, lm))
    if hinf == 1:
        end = len(order)
    else:
        end = order.bisect_left((s0, hm)) if hx else order.bisect_right((s0, hm))
    return start, max(start, end)


LexBound = tuple[bytes | None, bool, int]


def _lex_empty(lo: LexBound, hi: LexBound) -> bool:
    """Redis' test for lex ranges that are always empty (min above max)."""
    lm, lx, linf = lo
    hm, hx, hinf = hi
    if linf == 1 or hinf == -1:
        return True
    if linf or hinf:
        return False
    assert lm is not None and hm is not None
    return lm > hm or (lm == hm and (lx or hx))


def lex_walk(
    z: ZSet, lo: LexBound, hi: LexBound, rev: bool = False, offset: int = 0, count: int = -1
) -> tuple[int, int]:
    """The span BYLEX returns (LIMIT offset count applied; iterated backwards for REV).

    With equal scores (the only case Redis specifies) members are in lex order and this is two
    bisections. With mixed scores the result follows Redis' walk over a small sorted set
    (listpack): a quick reject on the first and last members, a scan from the head (REV: the
    tail) for the first member past min (max), LIMIT's offset skipped without range checks,
    then members taken while they stay in range.
    """
    order = z.order
    n = len(order)
    if not n or offset < 0 or _lex_empty(lo, hi):
        return 0, 0
    if order[0][0] == order[-1][0]:
        return _limit(lex_span(z, lo, hi), rev, offset, count)
    lm, lx, _ = lo  # no member: '-' (a '+' min or '-' max was rejected above)
    hm, hx, _ = hi

    def gte_min(m: bytes) -> bool:
        return True if lm is None else (m > lm if lx else m >= lm)

    def lte_max(m: bytes) -> bool:
        return True if hm is None else (m < hm if hx else m <= hm)

    members = [m for _s, m in order]
    if not gte_min(members[-1]) or not lte_max(members[0]):
        return 0, 0
    if rev:
        j = next(i for i in range(n - 1, -1, -1) if lte_max(members[i]))
        if not gte_min(members[j]):
            return 0, 0
        p = j - offset
        start = p
        while start >= 0 and count != 0 and gte_min(members[start]):
            start -= 1
            count -= 1
        return (start + 1, p + 1) if p >= 0 else (0, 0)
    i = next(i for i in range(n) if gte_min(members[i]))
    if not lte_max(members[i]):
        return 0, 0
    p = i + offset
    end = p
    while end < n and count != 0 and lte_max(members[end]):
        end += 1
        count -= 1
    return (p, end) if p < n else (0, 0)


def rank_span(n: int, start: int, stop: int) -> tuple[int, int]:
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    if stop >= n:
        stop = n - 1
    if start > stop or start >= n:
        return 0, 0
    return start, stop + 1


def _limit(span: tuple[int, int], rev: bool, offset: int, count: int) -> tuple[int, int]:
    """Apply LIMIT offset count within a half-open span, counting from its far end for REV."""
    a, b = span
    if offset < 0:
        return 0, 0
    if rev:
        hi = b - offset
        lo = a if count < 0 else max(a, hi - count)
        return (lo, hi) if hi > a else (0, 0)
    lo = a + offset
    hi = b if count < 0 else min(b, lo + count)
    return (lo, hi) if lo < b else (0, 0)


def _items(z: ZSet, span: tuple[int, int], rev: bool) -> list[tuple[float, bytes]]:
    a, b = span
    if a >= b:
        return []
    return list(z.order.islice(a, b, reverse=rev))


def zrange_generic(
    client: Client,
    key: bytes,
    lo: bytes,
    hi: bytes,
    mode: str,
    rev: bool,
    limit: tuple[int, int] | None,
    scores: bool,
) -> list[Any]:
    """ZRANGE's core: ``mode`` is rank, score or lex; lo/hi are as given for the direction."""
    if mode == "rank":
        start, stop = to_int(lo), to_int(hi)
    elif mode == "score":
        bounds = (parse_score_bound(lo), parse_score_bound(hi))
    else:
        lbounds = (parse_lex_bound(lo), parse_lex_bound(hi))
    z = read(client, key, ZSET)
    if z is None:
        return []
    n = len(z)
    if mode == "rank":
        if rev:
            a, b = rank_span(n, start, stop)
            span = (n - b, n - a)
        else:
            span = rank_span(n, start, stop)
    elif mode == "score":
        mn, mx = (bounds[1], bounds[0]) if rev else bounds
        span = score_span(z, mn, mx)
    else:
        mnl, mxl = (lbounds[1], lbounds[0]) if rev else lbounds
        span = lex_walk(z, mnl, mxl, rev, *(limit or (0, -1)))
        limit = None
    if limit is not None:
        span = _limit(span, rev, *limit)
    return _with_scores(client, _items(z, span, rev), scores)


def _parse_limit(argv: list[bytes], i: int) -> tuple[int, int]:
    if i + 2 >= len(argv):
        raise SYNTAX
    return to_int(argv[i + 1]), to_int(argv[i + 2])


@command("zrange", -4, "readonly", 1, 1, 1, group=Z, since="1.2.0")
def zrange(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set"""
    mode = "rank"
    rev = scores = False
    limit: tuple[int, int] | None = None
    i = 4
    while i < len(argv):
        o = argv[i].upper()
        if o == b"BYSCORE":
            mode = "score"
        elif o == b"BYLEX":
            mode = "lex"
        elif o == b"REV":
            rev = True
        elif o == b"WITHSCORES":
            scores = True
        elif o == b"LIMIT":
            limit = _parse_limit(argv, i)
            i += 2
        else:
            raise SYNTAX
        i += 1
    if limit is not None and mode == "rank":
        raise RespError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if scores and mode == "lex":
        raise RespError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    return zrange_generic(client, argv[1], argv[2], argv[3], mode, rev, limit, scores)


def _byscore(client: Client, argv: list[bytes], rev: bool) -> list[Any]:
    scores = False
    limit: tuple[int, int] | None = None
    i = 4
    while i < len(argv):
        o = argv[i].upper()
        if o == b"WITHSCORES":
            scores = True
        elif o == b"LIMIT":
            limit = _parse_limit(argv, i)
            i += 2
        else:
            raise SYNTAX
        i += 1
    return zrange_generic(client, argv[1], argv[2], argv[3], "score", rev, limit, scores)


@command("zrangebyscore", -4, "readonly", 1, 1, 1, group=Z, since="1.0.5")
def zrangebyscore(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set, by score"""
    return _byscore(client, argv, False)


@command("zrevrangebyscore", -4, "readonly", 1, 1, 1, group=Z, since="2.2.0")
def zrevrangebyscore(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set, by score, with scores ordered high to low"""
    return _byscore(client, argv, True)


@command("zrevrange", -4, "readonly", 1, 1, 1, group=Z, since="1.2.0")
def zrevrange(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set, by index, with scores ordered high to low"""
    if len(argv) > 5 or (len(argv) == 5 and argv[4].upper() != b"WITHSCORES"):
        raise SYNTAX
    return zrange_generic(client, argv[1], argv[2], argv[3], "rank", True, None, len(argv) == 5)


def _bylex(client: Client, argv: list[bytes], rev: bool) -> list[Any]:
    limit: tuple[int, int] | None = None
    i = 4
    while i < len(argv):
        if argv[i].upper() == b"LIMIT":
            limit = _parse_limit(argv, i)
            i += 3
        else:
            raise SYNTAX
    return zrange_generic(client, argv[1], argv[2], argv[3], "lex", rev, limit, False)


@command("zrangebylex", -4, "readonly", 1, 1, 1, group=Z, since="2.8.9")
def zrangebylex(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set, by lexicographical range"""
    return _bylex(client, argv, False)


@command("zrevrangebylex", -4, "readonly", 1, 1, 1, group=Z, since="2.8.9")
def zrevrangebylex(client: Client, argv: list[bytes]) -> list[Any]:
    """Return a range of members in a sorted set, by lexicographical range, high to low"""
    return _bylex(client, argv, True)


@command("zcount", 4, "readonly fast", 1, 1, 1, group=Z, since="2.0.0")
def zcount(client: Client, argv: list[bytes]) -> int:
    """Count the members in a sorted set with scores within the given values"""
    lo, hi = parse_score_bound(argv[2]), parse_score_bound(argv[3])
    z = read(client, argv[1], ZSET)
    if z is None:
        return 0
    a, b = score_span(z, lo, hi)
    return b - a


@command("zlexcount", 4, "readonly fast", 1, 1, 1, group=Z, since="2.8.9")
def zlexcount(client: Client, argv: list[bytes]) -> int:
    """Count the number of members in a sorted set between a given lexicographical range"""
    lo, hi = parse_lex_bound(argv[2]), parse_lex_bound(argv[3])
    z = read(client, argv[1], ZSET)
    if z is None:
        return 0
    a, b = lex_walk(z, lo, hi)
    return b - a


def _rank(client: Client, argv: list[bytes], rev: bool) -> Any:
    if len(argv) > 4 or (len(argv) == 4 and argv[3].upper() != b"WITHSCORE"):
        raise SYNTAX
    z = read(client, argv[1], ZSET)
    r = None if z is None else z.rank(argv[2])
    if r is None:
        return None
    if rev:
        r = len(z) - 1 - r
    if len(argv) == 4:
        return [r, _score_reply(client, z.scores[argv[2]])]
    return r


@command("zrank", -3, "readonly fast", 1, 1, 1, group=Z, since="2.0.0")
def zrank(client: Client, argv: list[bytes]) -> Any:
    """Determine the index of a member in a sorted set"""
    return _rank(client, argv, False)


@command("zrevrank", -3, "readonly fast", 1, 1, 1, group=Z, since="2.0.0")
def zrevrank(client: Client, argv: list[bytes]) -> Any:
    """Determine the index of a member in a sorted set, with scores ordered from high to low"""
    return _rank(client, argv, True)


def _remove_span(client: Client, key: bytes, span_of: Any) -> int:
    e = entry(client, key, ZSET)
    if e is None:
        return 0
    z: ZSet = e.obj
    a, b = span_of(z)
    if a >= b:
        return 0
    victims = list(z.order.islice(a, b))
    for _s, m in victims:
        del z.scores[m]
    del z.order[a:b]
    done(client, key, e)
    return len(victims)


@command("zremrangebyscore", 4, "write", 1, 1, 1, group=Z, since="1.2.0")
def zremrangebyscore(client: Client, argv: list[bytes]) -> int:
    """Remove all members in a sorted set within the given scores"""
    lo, hi = parse_score_bound(argv[2]), parse_score_bound(argv[3])
    return _remove_span(client, argv[1], lambda z: score_span(z, lo, hi))


@command("zremrangebyrank", 4, "write", 1, 1, 1, group=Z, since="2.0.0")
def zremrangebyrank(client: Client, argv: list[bytes]) -> int:
    """Remove all members in a sorted set within the given indexes"""
    start, stop = to_int(argv[2]), to_int(argv[3])
    return _remove_span(client, argv[1], lambda z: rank_span(len(z), start, stop))


@command("zremrangebylex", 4, "write", 1, 1, 1, group=Z, since="2.8.9")
def zremrangebylex(client: Client, argv: list[bytes]) -> int:
    """Remove all members in a sorted set between the given lexicographical range"""
    lo, hi = parse_lex_bound(argv[2]), parse_lex_bound(argv[3])
    return _remove_span(client, argv[1], lambda z: lex_walk(z, lo, hi))


def _zpop(client: Client, argv: list[bytes], maximum: bool) -> Any:
    if len(argv) > 3:
        raise SYNTAX
    count = 1
    if len(argv) == 3:
        count = to_int(argv[2], RespError("ERR value is out of range, must be positive"))
        if count < 0:
            raise RespError("ERR value is out of range, must be positive")
    e = entry(client, argv[1], ZSET)
    if e is None:
        return []
    z: ZSet = e.obj
    popped: list[tuple[float, bytes]] = []
    for _ in range(min(count, len(z))):
        s, m = z.order.pop(-1 if maximum else 0)
        del z.scores[m]
        popped.append((s, m))
    done(client, argv[1], e)
    if len(argv) == 2 and client.proto == 3 and popped:
        s, m = popped[0]
        return [m, s]
    return _with_scores(client, popped, True)


@command("zpopmin", -2, "write fast", 1, 1, 1, group=Z, since="5.0.0")
def zpopmin(client: Client, argv: list[bytes]) -> Any:
    """Remove and return members with the lowest scores in a sorted set"""
    return _zpop(client, argv, False)


@command("zpopmax", -2, "write fast", 1, 1, 1, group=Z, since="5.0.0")
def zpopmax(client: Client, argv: list[bytes]) -> Any:
    """Remove and return members with the highest scores in a sorted set"""
    return _zpop(client, argv, True)


@command("zscan", -3, "readonly", 1, 1, 1, group=Z, since="2.8.0")
def zscan(client: Client, argv: list[bytes]) -> list[Any]:
    """Incrementally iterate sorted sets elements and associated scores"""
    cursor, match, count, _nv = parse_scan(argv)
    e = entry(client, argv[1], ZSET)
    if e is not None and len(e.obj) <= SMALL:
        members = [m for _s, m in e.obj.order]  # small: in score order, as Redis' listpack
        nxt = 0
    else:
        nxt, members = scan_page(e, _scores, cursor, count)
    if match is not None:
        m = glob_matcher(match)
        members = [v for v in members if m(v)]
    out: list[bytes] = []
    if members:
        assert e is not None
        scores = e.obj.scores
        for member in members:
            out.append(member)
            out.append(fmt(scores[member]))
    return [b"%d" % nxt, out]


def _scores(z: ZSet) -> Iterable[bytes]:
    return iter(z.scores)
