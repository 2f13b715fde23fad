"""Reply serialisation for RESP2 and RESP3 (sans-IO: values in, bytes out).

``encode(value, proto)`` returns the wire bytes of one reply. The hot path (bytes, None, OK,
small ints) is checked first: at pipelined speeds each reply costs a few hundred nanoseconds.
"""

from __future__ import annotations

from typing import Any

from faster_backend.integrations.resp.types import (
    NULL_ARRAY,
    Push,
    Raw,
    Replies,
    RespError,
    SimpleString,
)

_STATUS_CACHE: dict[str, bytes] = {}
INT_REPLIES = [b":%d\r\n" % i for i in range(-1, 1024)]
"""``INT_REPLIES[i + 1]`` is the reply of integer i, for -1 <= i < 1023."""
BULK_HEADERS = [b"$%d\r\n" % i for i in range(1024)]
"""``BULK_HEADERS[n]`` starts a bulk string of n < 1024 bytes."""


def _status(s: str) -> bytes:
    b = _STATUS_CACHE.get(s)
    if b is None:
        b = b"+" + _clean(s).encode() + b"\r\n"
        if len(_STATUS_CACHE) < 256:
            _STATUS_CACHE[s] = b
    return b


def _clean(s: str) -> str:
    # Status and error lines cannot contain CR or LF; Redis replaces them with spaces.
    if "\r" in s or "\n" in s:
        return s.replace("\r", " ").replace("\n", " ")
    return s


def encode_error(message: str) -> bytes:
    return b"-" + _clean(message).encode("utf-8", "replace") + b"\r\n"


def _double(v: float) -> bytes:
    if v != v:
        return b"nan"
    if v == float("inf"):
        return b"inf"
    if v == float("-inf"):
        return b"-inf"
    return repr(v).encode() if v != int(v) or abs(v) >= 1e17 else b"%d" % int(v)


def encode(v: Any, proto: int) -> bytes:
    """The RESP ``proto`` (2 or 3) bytes of reply value ``v`` (see types.py for the mapping)."""
    t = v.__class__
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(v), v)
    if v is None:
        return b"_\r\n" if proto == 3 else b"$-1\r\n"
    if t is SimpleString:
        return _status(v)
    if t is int:
        if -1 <= v < 1023:
            cached: bytes = INT_REPLIES[v + 1]
            return cached
        return b":%d\r\n" % v
    if t is Raw:
        return bytes(v)
    out: list[bytes] = []
    _encode_into(v, proto, out)
    return b"".join(out)


def _encode_into(v: Any, proto: int, out: list[bytes]) -> None:
    t = v.__class__
    if t is bytes or t is bytearray or t is memoryview:
        out.append(b"$%d\r\n%b\r\n" % (len(v), v))
    elif v is None:
        out.append(b"_\r\n" if proto == 3 else b"$-1\r\n")
    elif t is SimpleString:
        out.append(_status(v))
    elif t is bool:
        if proto == 3:
            out.append(b"#t\r\n" if v else b"#f\r\n")
        else:
            out.append(b":1\r\n" if v else b":0\r\n")
    elif t is int:
        out.append(b":%d\r\n" % v)
    elif isinstance(v, RespError):
        out.append(encode_error(v.message))
    elif t is str:
        b = v.encode("utf-8", "surrogateescape")
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    elif t is Push:
        out.append(b">%d\r\n" % len(v) if proto == 3 else b"*%d\r\n" % len(v))
        for item in v:
            _encode_into(item, proto, out)
    elif t is Replies:
        for item in v:
            _encode_into(item, proto, out)
    elif t is list or t is tuple:
        out.append(b"*%d\r\n" % len(v))
        for item in v:
            _encode_into(item, proto, out)
    elif t is dict:
        out.append(b"%%%d\r\n" % len(v) if proto == 3 else b"*%d\r\n" % (2 * len(v)))
        for key, value in v.items():
            _encode_into(key, proto, out)
            _encode_into(value, proto, out)
    elif t is set or t is frozenset:
        out.append(b"~%d\r\n" % len(v) if proto == 3 else b"*%d\r\n" % len(v))
        for item in v:
            _encode_into(item, proto, out)
    elif t is float:
        d = _double(v)
        out.append(b",%b\r\n" % d if proto == 3 else b"$%d\r\n%b\r\n" % (len(d), d))
    elif v is NULL_ARRAY:
        out.append(b"_\r\n" if proto == 3 else b"*-1\r\n")
    elif isinstance(v, SimpleString):
        out.append(_status(v))
    elif isinstance(v, bool):
        _encode_into(bool(v), proto, out)
    elif isinstance(v, int):
        out.append(b":%d\r\n" % v)
    elif isinstance(v, str):
        _encode_into(str(v), proto, out)
    elif t is Raw:
        out.append(bytes(v))
    elif isinstance(v, bytes | bytearray):
        _encode_into(bytes(v), proto, out)
    elif isinstance(v, list | tuple):
        _encode_into(list(v), proto, out)
    elif isinstance(v, dict):
        _encode_into(dict(v), proto, out)
    else:
        raise TypeError(f"cannot encode a {t.__name__} as a RESP reply")
