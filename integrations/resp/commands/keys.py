"""Generic key commands: DEL, EXISTS, TYPE, RENAME, KEYS, SCAN, RANDOMKEY and expiry."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands._objutil import (
    expire_object,
    object_expiry_ms,
    rename_object,
    replace_object,
)
from faster_backend.integrations.resp.commands._util import (
    NO_SUCH_KEY,
    SYNTAX,
    invalid_expire,
    to_int,
)
from faster_backend.integrations.resp.table import command
from faster_backend.integrations.resp.types import OK, RespError, SimpleString

MAX_EXPIRE_MS = 2**62
OBJECTS_CURSOR = 2**63  # SCAN: past the string store's cursors, the object keys come next


@command("del", -2, "write", 1, -1, 1, group="generic", summary="Delete a key")
def del_(client: Client, argv: list[bytes]) -> int:
    delete = client.kv.delete
    objs = client.keyspace.objects
    return sum(1 for k in argv[1:] if (k in objs and objs.alive(k) and objs.delete(k)) or delete(k))


@command("unlink", -2, "write fast", 1, -1, 1, group="generic", since="4.0.0")
def unlink(client: Client, argv: list[bytes]) -> int:
    """Delete a key (the store frees memory incrementally anyway)"""
    return del_(client, argv)


@command("exists", -2, "readonly fast", 1, -1, 1, group="generic")
def exists(client: Client, argv: list[bytes]) -> int:
    """Determine if a key exists"""
    ks = client.keyspace
    return sum(1 for k in argv[1:] if ks.type_of(k) is not None)


@command("touch", -2, "readonly fast", 1, -1, 1, group="generic", since="3.2.1")
def touch(client: Client, argv: list[bytes]) -> int:
    """Count the given keys that exist (the store keeps no access times)"""
    return exists(client, argv)


@command("type", 2, "readonly fast", 1, 1, 1, group="generic")
def type_(client: Client, argv: list[bytes]) -> SimpleString:
    """Determine the type stored at key"""
    return SimpleString(client.keyspace.type_of(argv[1]) or "none")


def _move(client: Client, src: bytes, dst: bytes) -> bool:
    objs = client.keyspace.objects
    if src in objs and objs.alive(src):
        if src != dst:
            rename_object(client, src, dst)
        return src != dst
    found = client.kv.read_with_expiry(src)
    if found is None:
        raise NO_SUCH_KEY
    if src == dst:
        return False
    value, expiry = found
    ttl = None if expiry is None else expiry - time.time()
    if ttl is not None and ttl <= 0:
        raise NO_SUCH_KEY
    if ttl is not None:
        client.keyspace.expiry_set()
    replace_object(client, dst)
    client.kv.upsert(dst, value, ttl)
    client.kv.delete(src)
    return True


@command("rename", 3, "write", 1, 2, 1, group="generic")
def rename(client: Client, argv: list[bytes]) -> Any:
    """Rename a key"""
    _move(client, argv[1], argv[2])
    return OK


@command("renamenx", 3, "write fast", 1, 2, 1, group="generic")
def renamenx(client: Client, argv: list[bytes]) -> int:
    """Rename a key, only if the new key does not exist"""
    if not client.kv.exists(argv[1]) and not client.keyspace.objects.alive(argv[1]):
        raise NO_SUCH_KEY
    if argv[1] == argv[2] or client.keyspace.type_of(argv[2]) is not None:
        return 0
    return 1 if _move(client, argv[1], argv[2]) else 0


def glob_matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """Redis' stringmatchlen glob (``* ? [abc] [^a-z] \\x``) as a predicate."""
    if pattern == b"*":
        return lambda key: True
    out = bytearray()
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i : i + 1])
        elif c == b"[":
            j = i + 1
            cls = bytearray(b"[")
            if j < n and pattern[j : j + 1] == b"^":
                cls += b"^"
                j += 1
            while j < n and pattern[j : j + 1] != b"]":
                ch = pattern[j : j + 1]
                if ch == b"\\" and j + 1 < n:
                    j += 1
                    cls += re.escape(pattern[j : j + 1])
                elif ch == b"-" and len(cls) > 1 and j + 1 < n and pattern[j + 1 : j + 2] != b"]":
                    cls += b"-"
                else:
                    cls += re.escape(ch)
                j += 1
            if len(cls) == 1 or cls == b"[^":
                cls += b"\\x00-\\xff" if cls == b"[^" else b"^\\x00-\\xff"
            # An unterminated class matches up to the end, like Redis.
            cls += b"]"
            out += cls
            i = j
        else:
            out += re.escape(c)
        i += 1
    try:
        rx = re.compile(bytes(out), re.DOTALL)
    except re.error:
        return lambda key: False
    match = rx.fullmatch
    return lambda key: match(key) is not None


@command("keys", 2, "readonly", group="keyspace")
def keys(client: Client, argv: list[bytes]) -> list[bytes]:
    """Find all keys matching the given pattern"""
    match = glob_matcher(argv[1])
    found = [k for k in client.kv.keys() if match(k)]  # noqa: SIM118 - not a dict
    return found + [k for k in client.keyspace.objects.live_keys() if match(k)]


@command("scan", -2, "readonly", group="keyspace", since="2.8.0")
def scan(client: Client, argv: list[bytes]) -> list[Any]:
    """Incrementally iterate the keys space"""
    raw = argv[1]
    if not raw.isdigit() or int(raw) >= 2**64:
        raise RespError("ERR invalid cursor")
    cursor = int(raw)
    count = 10
    match: Callable[[bytes], bool] | None = None
    type_name: str | None = None
    i = 2
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if i + 1 >= n:
            raise SYNTAX
        if opt == b"COUNT":
            count = to_int(argv[i + 1])
            if count < 1:
                raise SYNTAX
        elif opt == b"MATCH":
            match = glob_matcher(argv[i + 1])
        elif opt == b"TYPE":
            type_name = argv[i + 1].decode("utf-8", "replace").lower()
        else:
            raise SYNTAX
        i += 2
    if cursor == OBJECTS_CURSOR:  # the strings are done: every object key in one reply
        nxt, found = 0, list(client.keyspace.objects.live_keys())
    else:
        nxt, found = client.kv.scan(cursor, count)
        if nxt == 0 and client.keyspace.objects:
            nxt = OBJECTS_CURSOR
    if match is not None:
        found = [k for k in found if match(k)]
    if type_name is not None:
        ks = client.keyspace
        found = [k for k in found if ks.type_of(k) == type_name]
    return [b"%d" % nxt, found]


@command("randomkey", 1, "readonly", group="keyspace")
def randomkey(client: Client, argv: list[bytes]) -> bytes | None:
    """Return a random key from the keyspace"""
    kv = client.kv
    objs = client.keyspace.objects
    if objs and random.random() * (len(objs) + len(kv)) < len(objs):
        live = list(objs.live_keys())
        if live:
            return random.choice(live)
    if len(kv) == 0:
        return None
    start = cursor = random.getrandbits(64)
    wrapped = False
    for _ in range(1 << 20):
        cursor, batch = kv.scan(cursor, 16)
        if batch:
            return random.choice(batch)
        if cursor == 0:
            if wrapped:
                return None
            wrapped = True
        elif wrapped and cursor >= start:
            return None
    return None


# -- expiry --------------------------------------------------------------------------------


def _expire(client: Client, argv: list[bytes], unit_ms: int, absolute: bool, cmd: str) -> int:
    n = to_int(argv[2])
    nx = xx = gt = lt = False
    for raw in argv[3:]:
        opt = raw.upper()
        if opt == b"NX":
            nx = True
        elif opt == b"XX":
            xx = True
        elif opt == b"GT":
            gt = True
        elif opt == b"LT":
            lt = True
        else:
            raise RespError(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}")
    if nx and (xx or gt or lt):
        raise RespError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise RespError("ERR GT and LT options at the same time are not compatible")
    now_ms = time.time() * 1000
    if abs(n) > MAX_EXPIRE_MS // unit_ms:
        raise invalid_expire(cmd)
    when_ms = n * unit_ms + (0 if absolute else now_ms)
    if when_ms > MAX_EXPIRE_MS:
        raise invalid_expire(cmd)
    kv = client.kv
    objs = client.keyspace.objects
    if argv[1] in objs and objs.alive(argv[1]):
        return expire_object(client, argv[1], when_ms, now_ms, (nx, xx, gt, lt))
    found = kv.read_with_expiry(argv[1])
    if found is None:
        return 0
    current = found[1]
    if nx and current is not None:
        return 0
    if xx and current is None:
        return 0
    if gt and (current is None or when_ms <= current * 1000):
        return 0
    if lt and current is not None and when_ms >= current * 1000:
        return 0
    ttl = (when_ms - now_ms) / 1000.0
    if ttl <= 0:
        kv.delete(argv[1])
        return 1
    client.keyspace.expiry_set()
    kv.expire(argv[1], ttl)
    return 1


@command("expire", -3, "write fast", 1, 1, 1, group="generic")
def expire(client: Client, argv: list[bytes]) -> int:
    """Set a key's time to live in seconds"""
    return _expire(client, argv, 1000, False, "expire")


@command("pexpire", -3, "write fast", 1, 1, 1, group="generic", since="2.6.0")
def pexpire(client: Client, argv: list[bytes]) -> int:
    """Set a key's time to live in milliseconds"""
    return _expire(client, argv, 1, False, "pexpire")


@command("expireat", -3, "write fast", 1, 1, 1, group="generic", since="1.2.0")
def expireat(client: Client, argv: list[bytes]) -> int:
    """Set the expiration for a key as a UNIX timestamp"""
    return _expire(client, argv, 1000, True, "expireat")


@command("pexpireat", -3, "write fast", 1, 1, 1, group="generic", since="2.6.0")
def pexpireat(client: Client, argv: list[bytes]) -> int:
    """Set the expiration for a key as a UNIX timestamp specified in milliseconds"""
    return _expire(client, argv, 1, True, "pexpireat")


def _expiry_ms(client: Client, key: bytes) -> float | int | None:
    """Absolute expiry in ms; None for no expiry; -2 when the key does not exist."""
    found = client.kv.read_with_expiry(key)
    if found is None:
        if key in client.keyspace.objects:
            return object_expiry_ms(client, key)
        return -2 if client.keyspace.type_of(key) is None else None
    return None if found[1] is None else found[1] * 1000


@command("ttl", 2, "readonly fast", 1, 1, 1, group="generic")
def ttl(client: Client, argv: list[bytes]) -> int:
    """Get the time to live for a key in seconds"""
    exp = _expiry_ms(client, argv[1])
    if exp is None:
        return -1
    if exp == -2:
        return -2
    return max(0, int((exp - time.time() * 1000 + 500) // 1000))


@command("pttl", 2, "readonly fast", 1, 1, 1, group="generic", since="2.6.0")
def pttl(client: Client, argv: list[bytes]) -> int:
    """Get the time to live for a key in milliseconds"""
    exp = _expiry_ms(client, argv[1])
    if exp is None:
        return -1
    if exp == -2:
        return -2
    return max(0, int(exp - time.time() * 1000))


@command("expiretime", 2, "readonly fast", 1, 1, 1, group="generic", since="7.0.0")
def expiretime(client: Client, argv: list[bytes]) -> int:
    """Get the expiration Unix timestamp for a key"""
    exp = _expiry_ms(client, argv[1])
    if exp is None:
        return -1
    return -2 if exp == -2 else int(exp // 1000)


@command("pexpiretime", 2, "readonly fast", 1, 1, 1, group="generic", since="7.0.0")
def pexpiretime(client: Client, argv: list[bytes]) -> int:
    """Get the expiration Unix timestamp for a key in milliseconds"""
    exp = _expiry_ms(client, argv[1])
    if exp is None:
        return -1
    return -2 if exp == -2 else int(exp)


@command("persist", 2, "write fast", 1, 1, 1, group="generic", since="2.2.0")
def persist(client: Client, argv: list[bytes]) -> int:
    """Remove the expiration from a key"""
    objs = client.keyspace.objects
    if argv[1] in objs and objs.alive(argv[1]):
        if objs[argv[1]].expires is None:
            return 0
        objs.set_expiry(argv[1], None)
        return 1
    found = client.kv.read_with_expiry(argv[1])
    if found is None or found[1] is None:
        return 0
    client.kv.expire(argv[1], None)
    return 1
