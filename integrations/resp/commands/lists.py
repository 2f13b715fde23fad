"""List commands, including the blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH)."""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

from faster_backend.integrations.resp import blocking
from faster_backend.integrations.resp.blocking import Block
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import create, done, entry, read
from faster_backend.integrations.resp.commands._util import SYNTAX, to_int
from faster_backend.integrations.resp.objects import LIST, WRONGTYPE, Entry
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import NULL_ARRAY, OK, Raw, RespError

L = "list"
_WAITING = blocking.WAITING
_BULK_LENS = [b"$%d\r\n" % i for i in range(512)]
NOT_POSITIVE = RespError("ERR value is out of range, must be positive")


def _pushed(client: Client, key: bytes) -> None:
    if _WAITING:
        blocking.signal(client, key)


def _push(client: Client, argv: list[bytes], left: bool, only_existing: bool) -> int:
    key = argv[1]
    objs = client.keyspace.objects
    e = objs.get(key)
    if e is None or e.obj is None or e.expires is not None:
        e = entry(client, key, LIST)
        if e is None:
            if only_existing:
                return 0
            e = objs.create(key, LIST, deque())
    elif e.kind != LIST:
        raise WRONGTYPE
    lst = e.obj
    if left:
        lst.extendleft(argv[2:])
    else:
        lst.extend(argv[2:])
    objs.mark(key, e)
    if _WAITING:
        blocking.signal(client, key)
    return len(lst)


@command("lpush", -3, "write denyoom fast", 1, 1, 1, group=L)
def lpush(client: Client, argv: list[bytes]) -> int:
    """Prepend one or multiple elements to a list"""
    return _push(client, argv, True, False)


@command("rpush", -3, "write denyoom fast", 1, 1, 1, group=L)
def rpush(client: Client, argv: list[bytes]) -> int:
    """Append one or multiple elements to a list"""
    return _push(client, argv, False, False)


@command("lpushx", -3, "write denyoom fast", 1, 1, 1, group=L, since="2.2.0")
def lpushx(client: Client, argv: list[bytes]) -> int:
    """Prepend an element to a list, only if the list exists"""
    return _push(client, argv, True, True)


@command("rpushx", -3, "write denyoom fast", 1, 1, 1, group=L, since="2.2.0")
def rpushx(client: Client, argv: list[bytes]) -> int:
    """Append an element to a list, only if the list exists"""
    return _push(client, argv, False, True)


def _pop(client: Client, argv: list[bytes], left: bool) -> Any:
    if len(argv) > 3:
        raise SYNTAX
    count = None
    if len(argv) == 3:
        count = to_int(argv[2], NOT_POSITIVE)
        if count < 0:
            raise NOT_POSITIVE
    key = argv[1]
    objs = client.keyspace.objects
    e = objs.get(key)
    if e is None or e.obj is None or e.expires is not None:
        e = entry(client, key, LIST)
        if e is None:
            return None if count is None else NULL_ARRAY
    elif e.kind != LIST:
        raise WRONGTYPE
    lst = e.obj
    pop = lst.popleft if left else lst.pop
    if count is None:
        v = pop()
        out: Any = v
    else:
        out = [pop() for _ in range(min(count, len(lst)))]
    if lst:
        objs.mark(key, e)
    else:
        objs.delete(key)
    return out


@command("lpop", -2, "write fast", 1, 1, 1, group=L)
def lpop(client: Client, argv: list[bytes]) -> Any:
    """Remove and get the first elements in a list"""
    return _pop(client, argv, True)


@command("rpop", -2, "write fast", 1, 1, 1, group=L)
def rpop(client: Client, argv: list[bytes]) -> Any:
    """Remove and get the last elements in a list"""
    return _pop(client, argv, False)


@command("llen", 2, "readonly fast", 1, 1, 1, group=L)
def llen(client: Client, argv: list[bytes]) -> int:
    """Get the length of a list"""
    lst = read(client, argv[1], LIST)
    return 0 if lst is None else len(lst)


def _range(n: int, start: int, stop: int) -> tuple[int, int]:
    """Redis' inclusive [start, stop] with negative indexes as a half-open slice."""
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    if stop >= n:
        stop = n - 1
    if start > stop or start >= n:
        return 0, 0
    return start, stop + 1


@command("lrange", 4, "readonly", 1, 1, 1, group=L)
def lrange(client: Client, argv: list[bytes]) -> list[bytes] | Raw:
    """Get a range of elements from a list"""
    start = to_int(argv[2])
    stop = to_int(argv[3])
    e = entry(client, argv[1], LIST)
    if e is None:
        return []
    lst = e.obj
    a, b = _range(len(lst), start, stop)
    cached = e.cache
    if cached is not None and cached[0] == a and cached[1] == b:
        reply: Raw = cached[2]
        return reply  # the list has not changed since this range was encoded
    items = list(lst) if a == 0 and b == len(lst) else list(islice(lst, a, b))
    if len(items) < 8:
        return items
    # Encoded here in one pass: several times faster than the generic encoder per element,
    # and kept until the list changes (every write to a list clears ``Entry.cache``).
    lens = _BULK_LENS
    reply = Raw(b"*%d\r\n%b" % (len(items), b"".join(
        [lens[len(x)] + x + b"\r\n" if len(x) < 512 else b"$%d\r\n%b\r\n" % (len(x), x)
         for x in items]
    )))
    if len(reply) <= 65536:
        e.cache = (a, b, reply)
    return reply


@command("lindex", 3, "readonly", 1, 1, 1, group=L)
def lindex(client: Client, argv: list[bytes]) -> bytes | None:
    """Get an element from a list by its index"""
    i = to_int(argv[2])
    lst = read(client, argv[1], LIST)
    if lst is None:
        return None
    if i < 0:
        i += len(lst)
    if 0 <= i < len(lst):
        v: bytes = lst[i]
        return v
    return None


@command("lset", 4, "write denyoom", 1, 1, 1, group=L)
def lset(client: Client, argv: list[bytes]) -> Any:
    """Set the value of an element in a list by its index"""
    i = to_int(argv[2])
    e = entry(client, argv[1], LIST)
    if e is None:
        raise RespError("ERR no such key")
    lst = e.obj
    if i < 0:
        i += len(lst)
    if not 0 <= i < len(lst):
        raise RespError("ERR index out of range")
    lst[i] = argv[3]
    client.keyspace.objects.mark(argv[1], e)
    return OK


@command("lrem", 4, "write", 1, 1, 1, group=L)
def lrem(client: Client, argv: list[bytes]) -> int:
    """Remove elements from a list"""
    count = to_int(argv[2])
    value = argv[3]
    e = entry(client, argv[1], LIST)
    if e is None:
        return 0
    lst = e.obj
    items = list(lst)
    removed = 0
    if count >= 0:
        keep = []
        for v in items:
            if v == value and (count == 0 or removed < count):
                removed += 1
            else:
                keep.append(v)
    else:
        keep = []
        for v in reversed(items):
            if v == value and removed < -count:
                removed += 1
            else:
                keep.append(v)
        keep.reverse()
    if removed:
        lst.clear()
        lst.extend(keep)
        done(client, argv[1], e)
    return removed


@command("ltrim", 4, "write", 1, 1, 1, group=L)
def ltrim(client: Client, argv: list[bytes]) -> Any:
    """Trim a list to the specified range"""
    start = to_int(argv[2])
    stop = to_int(argv[3])
    e = entry(client, argv[1], LIST)
    if e is None:
        return OK
    lst = e.obj
    a, b = _range(len(lst), start, stop)
    kept = list(islice(lst, a, b))
    lst.clear()
    lst.extend(kept)
    done(client, argv[1], e)
    return OK


@command("linsert", 5, "write denyoom", 1, 1, 1, group=L, since="2.2.0")
def linsert(client: Client, argv: list[bytes]) -> int:
    """Insert an element before or after another element in a list"""
    where = argv[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        raise SYNTAX
    e = entry(client, argv[1], LIST)
    if e is None:
        return 0
    lst = e.obj
    try:
        i = lst.index(argv[3])
    except ValueError:
        return -1
    lst.insert(i if where == b"BEFORE" else i + 1, argv[4])
    client.keyspace.objects.mark(argv[1], e)
    _pushed(client, argv[1])
    return len(lst)


@command("lpos", -3, "readonly", 1, 1, 1, group=L, since="6.0.6")
def lpos(client: Client, argv: list[bytes]) -> Any:
    """Return the index of matching elements on a list"""
    rank = 1
    count: int | None = None
    maxlen = 0
    i = 3
    while i < len(argv):
        opt = argv[i].upper()
        if i + 1 >= len(argv):
            raise SYNTAX
        if opt == b"RANK":
            rank = to_int(argv[i + 1])
            if rank == 0:
                raise RespError(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the"
                    " second ... or use negative to start from the end of the list"
                )
            if rank == -(2**63):
                raise RespError("ERR value is out of range")
        elif opt == b"COUNT":
            count = to_int(argv[i + 1])
            if count < 0:
                raise RespError("ERR COUNT can't be negative")
        elif opt == b"MAXLEN":
            maxlen = to_int(argv[i + 1])
            if maxlen < 0:
                raise RespError("ERR MAXLEN can't be negative")
        else:
            raise SYNTAX
        i += 2
    lst = read(client, argv[1], LIST)
    if lst is None:
        return None if count is None else []
    n = len(lst)
    want = argv[2]
    found: list[int] = []
    skip = abs(rank) - 1
    limit = count if count else None
    if rank > 0:
        idxs: Any = range(n if not maxlen else min(n, maxlen))
        seq: Any = lst
        pairs: Any = zip(idxs, seq, strict=False)
    else:
        m = n if not maxlen else min(n, maxlen)
        pairs = zip(range(n - 1, n - 1 - m, -1), reversed(lst), strict=False)
    for idx, v in pairs:
        if v == want:
            if skip:
                skip -= 1
                continue
            found.append(idx)
            if count is None or (limit is not None and len(found) >= limit):
                break
    if count is None:
        return found[0] if found else None
    return found


# -- moves -----------------------------------------------------------------------------------


def _side(raw: bytes) -> bool:
    s = raw.upper()
    if s == b"LEFT":
        return True
    if s == b"RIGHT":
        return False
    raise SYNTAX


def _move(client: Client, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> Any:
    """Pop from ``src`` and push to ``dst``; None when ``src`` is empty (or absent)."""
    se = entry(client, src, LIST)
    if se is None:
        return None
    de: Entry | None = entry(client, dst, LIST)
    lst = se.obj
    v = lst.popleft() if from_left else lst.pop()
    done(client, src, se)
    if de is None or de.obj is None or dst not in client.keyspace.objects:
        de = create(client, dst, LIST, deque)
    if to_left:
        de.obj.appendleft(v)
    else:
        de.obj.append(v)
    client.keyspace.objects.mark(dst, de)
    _pushed(client, dst)
    return v


@command("lmove", 5, "write denyoom", 1, 2, 1, group=L, since="6.2.0")
def lmove(client: Client, argv: list[bytes]) -> Any:
    """Pop an element from a list, push it to another list and return it"""
    return _move(client, argv[1], argv[2], _side(argv[3]), _side(argv[4]))


@command("rpoplpush", 3, "write denyoom", 1, 2, 1, group=L, since="1.2.0")
def rpoplpush(client: Client, argv: list[bytes]) -> Any:
    """Remove the last element in a list, prepend it to another list and return it"""
    return _move(client, argv[1], argv[2], False, True)


# -- blocking --------------------------------------------------------------------------------


def timeout_arg(raw: bytes) -> float:
    try:
        t = float(raw)
    except ValueError:
        raise RespError("ERR timeout is not a float or out of range") from None
    if t != t or t in (float("inf"), float("-inf")):
        raise RespError("ERR timeout is not a float or out of range")
    if t < 0:
        raise RespError("ERR timeout is negative")
    return t


def _bpop(client: Client, argv: list[bytes], left: bool) -> Any:
    keys = argv[1:-1]
    timeout = timeout_arg(argv[-1])
    for key in keys:
        if read(client, key, LIST):
            return [key, _pop(client, [b"pop", key], left)]

    def serve(c: Client, key: bytes) -> Any:
        objs = c.keyspace.objects
        if objs.kind_of(key) != LIST:
            return None
        return [key, _pop(c, [b"pop", key], left)]

    return Block(keys, timeout, serve, NULL_ARRAY)


@command("blpop", -3, "write blocking", 1, -2, 1, group=L, since="2.0.0")
def blpop(client: Client, argv: list[bytes]) -> Any:
    """Remove and get the first element in a list, or block until one is available"""
    return _bpop(client, argv, True)


@command("brpop", -3, "write blocking", 1, -2, 1, group=L, since="2.0.0")
def brpop(client: Client, argv: list[bytes]) -> Any:
    """Remove and get the last element in a list, or block until one is available"""
    return _bpop(client, argv, False)


def _bmove(client: Client, src: bytes, dst: bytes, fl: bool, tl: bool, raw_t: bytes) -> Any:
    timeout = timeout_arg(raw_t)
    v = _move(client, src, dst, fl, tl)
    if v is not None:
        return v

    def serve(c: Client, key: bytes) -> Any:
        if c.keyspace.objects.kind_of(key) != LIST:
            return None
        try:
            moved = _move(c, src, dst, fl, tl)
            if moved is not None and c.keyspace.watchers:
                c.keyspace.touch(dst)
            return moved
        except RespError as e:
            return e  # the destination became another type: the waiter gets the error

    return Block([src], timeout, serve, None)


@command("blmove", 6, "write denyoom blocking", 1, 2, 1, group=L, since="6.2.0")
def blmove(client: Client, argv: list[bytes]) -> Any:
    """Pop an element from a list, push it to another list and return it; or block"""
    return _bmove(client, argv[1], argv[2], _side(argv[3]), _side(argv[4]), argv[5])


@command("brpoplpush", 4, "write denyoom blocking", 1, 2, 1, group=L, since="2.2.0")
def brpoplpush(client: Client, argv: list[bytes]) -> Any:
    """Pop an element from a list, push it to another list and return it; or block"""
    return _bmove(client, argv[1], argv[2], False, True, argv[3])
