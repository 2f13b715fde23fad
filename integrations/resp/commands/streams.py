"""Streams, the part job queues need: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD.

RQ 2+ stores job results in a stream per job (XADD ... MAXLEN ~ 10, XREVRANGE ... COUNT 1,
XREAD for waiting). Consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM...) and XINFO
are not implemented.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from faster_backend.integrations.resp import blocking
from faster_backend.integrations.resp.blocking import Block
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import entry, read
from faster_backend.integrations.resp.commands._util import SYNTAX, to_int
from faster_backend.integrations.resp.objects import STREAM, Stream
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import NULL_ARRAY, RespError

X = "stream"
U64 = 2**64 - 1
BAD_ID = RespError("ERR Invalid stream ID specified as stream command argument")
StreamID = tuple[int, int]


def fmt_id(i: StreamID) -> bytes:
    return b"%d-%d" % i


def parse_id(raw: bytes, missing_seq: int = 0, exclusive_ok: bool = False) -> StreamID:
    """``ms-seq`` or ``ms`` (seq = ``missing_seq``); ``-`` / ``+`` for range ends."""
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return (U64, U64)
    ms, sep, seq = raw.partition(b"-")
    if not ms.isdigit() or (sep and not seq.isdigit()):
        raise BAD_ID
    a, b = int(ms), (int(seq) if sep else missing_seq)
    if a > U64 or b > U64:
        raise BAD_ID
    return (a, b)


def _entries(s: Stream, lo: StreamID, hi: StreamID, rev: bool, count: int | None) -> list[Any]:
    ids = s.ids
    i = bisect.bisect_left(ids, lo)
    j = bisect.bisect_right(ids, hi)
    sel = ids[i:j]
    if rev:
        sel.reverse()
    if count is not None:
        sel = sel[:count]
    return [[fmt_id(x), list(s.data[x])] for x in sel]


NODE = 100  # Redis' stream-node-max-entries: '~' trims whole nodes only


def _trim(s: Stream, maxlen: int | None, minid: StreamID | None, approx: bool = False) -> int:
    n = 0
    if maxlen is not None and len(s.ids) > maxlen:
        n = len(s.ids) - maxlen
    if minid is not None:
        n = max(n, bisect.bisect_left(s.ids, minid))
    if approx:
        n -= n % NODE
    for x in s.ids[:n]:
        del s.data[x]
    del s.ids[:n]
    return n


def _parse_trim(argv: list[bytes], i: int) -> tuple[int, int | None, StreamID | None, bool]:
    """Parse ``MAXLEN|MINID [=|~] threshold [LIMIT n]`` at ``argv[i]``; returns (next, ...)."""
    kind = argv[i].upper()
    i += 1
    approx = False
    if i < len(argv) and argv[i] in (b"=", b"~"):
        approx = argv[i] == b"~"
        i += 1
    if i >= len(argv):
        raise SYNTAX
    maxlen: int | None = None
    minid: StreamID | None = None
    if kind == b"MAXLEN":
        maxlen = to_int(argv[i])
        if maxlen < 0:
            raise RespError("ERR The MAXLEN argument must be >= 0.")
    else:
        minid = parse_id(argv[i])
    i += 1
    if i + 1 < len(argv) and argv[i].upper() == b"LIMIT":
        to_int(argv[i + 1])
        i += 2
    return i, maxlen, minid, approx


@command("xadd", -5, "write denyoom fast", 1, 1, 1, group=X, since="5.0.0")
def xadd(client: Client, argv: list[bytes]) -> Any:
    """Appends a new entry to a stream"""
    i = 2
    nomk = False
    maxlen: int | None = None
    minid: StreamID | None = None
    approx = False
    while i < len(argv):
        o = argv[i].upper()
        if o == b"NOMKSTREAM":
            nomk = True
            i += 1
        elif o in (b"MAXLEN", b"MINID"):
            i, maxlen, minid, approx = _parse_trim(argv, i)
        else:
            break
    if i >= len(argv):
        raise SYNTAX
    raw_id = argv[i]
    fields = argv[i + 1 :]
    if not fields or len(fields) % 2:
        raise RespError("ERR wrong number of arguments for 'xadd' command")
    if raw_id != b"*" and not raw_id.endswith(b"-*"):
        new_id: StreamID | None = parse_id(raw_id)
    else:
        new_id = None
        if raw_id != b"*":
            parse_id(raw_id[:-2])
    if new_id == (0, 0):
        raise RespError("ERR The ID specified in XADD must be greater than 0-0")
    key = argv[1]
    e = entry(client, key, STREAM)
    if e is None and nomk:
        return None
    last: StreamID = e.obj.last if e is not None else (0, 0)
    top = RespError(
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    )
    if new_id is None:
        if raw_id == b"*":
            ms = max(int(time.time() * 1000), last[0])
        else:
            ms = int(raw_id[:-2])
            if ms < last[0]:
                raise top
        new_id = (ms, last[1] + 1 if ms == last[0] else 0)
    elif new_id <= last:
        raise top
    if e is None:
        e = client.keyspace.objects.create(key, STREAM, Stream())
    s: Stream = e.obj
    s.ids.append(new_id)
    s.data[new_id] = fields
    s.last = new_id
    _trim(s, maxlen, minid, approx)
    client.keyspace.objects.mark(key, e)
    if blocking.WAITING:
        blocking.signal(client, key)
    return fmt_id(new_id)


@command("xlen", 2, "readonly fast", 1, 1, 1, group=X, since="5.0.0")
def xlen(client: Client, argv: list[bytes]) -> int:
    """Return the number of entries in a stream"""
    s = read(client, argv[1], STREAM)
    return 0 if s is None else len(s.ids)


def _range(client: Client, argv: list[bytes], rev: bool) -> Any:
    a, b = (argv[3], argv[2]) if rev else (argv[2], argv[3])
    lo = _bound(a, low=True)
    hi = _bound(b, low=False)
    count: int | None = None
    if len(argv) > 4:
        if len(argv) != 6 or argv[4].upper() != b"COUNT":
            raise SYNTAX
        count = max(0, to_int(argv[5]))
    s = read(client, argv[1], STREAM)
    if s is None:
        return []
    if count == 0:
        return NULL_ARRAY  # Redis answers COUNT 0 (or less) on a stream with the null array
    if lo > hi:
        return []
    return _entries(s, lo, hi, rev, count)


def _bound(raw: bytes, low: bool) -> StreamID:
    if raw[:1] == b"(":
        i = parse_id(raw[1:], 0 if low else U64)
        if low:
            if i == (U64, U64):
                raise RespError("ERR invalid start ID for the interval")
            return (i[0], i[1] + 1) if i[1] < U64 else (i[0] + 1, 0)
        if i == (0, 0):
            raise RespError("ERR invalid end ID for the interval")
        return (i[0], i[1] - 1) if i[1] > 0 else (i[0] - 1, U64)
    return parse_id(raw, 0 if low else U64)


@command("xrange", -4, "readonly", 1, 1, 1, group=X, since="5.0.0")
def xrange(client: Client, argv: list[bytes]) -> Any:
    """Return a range of elements in a stream, with IDs matching the specified IDs interval"""
    return _range(client, argv, False)


@command("xrevrange", -4, "readonly", 1, 1, 1, group=X, since="5.0.0")
def xrevrange(client: Client, argv: list[bytes]) -> Any:
    """Return a range of elements in a stream, in reverse order"""
    return _range(client, argv, True)


@command("xdel", -3, "write fast", 1, 1, 1, group=X, since="5.0.0")
def xdel(client: Client, argv: list[bytes]) -> int:
    """Removes the specified entries from the stream"""
    e = entry(client, argv[1], STREAM)
    if e is None:
        return 0
    ids = [parse_id(raw) for raw in argv[2:]]
    s: Stream = e.obj
    n = 0
    for i in ids:
        if s.data.pop(i, None) is not None:
            s.ids.remove(i)
            n += 1
    if n:
        # An empty stream stays (it keeps its last ID), as in Redis.
        client.keyspace.objects.mark(argv[1], e)
    return n


@command("xtrim", -4, "write", 1, 1, 1, group=X, since="5.0.0")
def xtrim(client: Client, argv: list[bytes]) -> int:
    """Trims the stream to (approximately if '~' is passed) a certain size"""
    if argv[2].upper() not in (b"MAXLEN", b"MINID"):
        raise SYNTAX
    i, maxlen, minid, approx = _parse_trim(argv, 2)
    if i != len(argv):
        raise SYNTAX
    e = entry(client, argv[1], STREAM)
    if e is None:
        return 0
    n = _trim(e.obj, maxlen, minid, approx)
    if n:
        client.keyspace.objects.mark(argv[1], e)
    return n


def _xread_keys(argv: list[bytes]) -> list[bytes]:
    for i, a in enumerate(argv):
        if a.upper() == b"STREAMS":
            rest = argv[i + 1 :]
            return rest[: len(rest) // 2]
    return []


@command("xread", -4, "readonly blocking", group=X, since="5.0.0", getkeys=_xread_keys)
def xread(client: Client, argv: list[bytes]) -> Any:
    """Return never seen elements in multiple streams, with IDs greater than the ones given"""
    count: int | None = None
    timeout: float | None = None
    i = 1
    while i < len(argv):
        o = argv[i].upper()
        if o == b"COUNT" and i + 1 < len(argv):
            count = max(0, to_int(argv[i + 1])) or None
            i += 2
        elif o == b"BLOCK" and i + 1 < len(argv):
            ms = to_int(argv[i + 1])
            if ms < 0:
                raise RespError("ERR timeout is negative")
            timeout = ms / 1000.0
            i += 2
        elif o == b"STREAMS":
            break
        else:
            raise SYNTAX
    rest = argv[i + 1 :]
    if i >= len(argv) or not rest or len(rest) % 2:
        raise RespError(
            "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be"
            " specified."
        )
    n = len(rest) // 2
    keys, raw_ids = rest[:n], rest[n:]
    after: list[StreamID] = []
    for k, raw in zip(keys, raw_ids, strict=True):
        s = read(client, k, STREAM)
        if raw == b"$":
            after.append(s.last if s is not None else (0, 0))
        else:
            after.append(parse_id(raw))

    def collect(c: Client) -> Any:
        out: list[list[Any]] = []
        for k, last in zip(keys, after, strict=True):
            s = read(c, k, STREAM)
            if s is None or not s.ids or s.ids[-1] <= last:
                continue
            lo = (last[0], last[1] + 1) if last[1] < U64 else (last[0] + 1, 0)
            out.append([k, _entries(s, lo, (U64, U64), False, count)])
        if not out:
            return None
        return dict((k, v) for k, v in out) if c.proto == 3 else out

    found = collect(client)
    if found is not None or timeout is None:
        return NULL_ARRAY if found is None else found
    return Block(keys, timeout, lambda c, _key: collect(c), NULL_ARRAY)
