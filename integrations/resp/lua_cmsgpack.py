"""``cmsgpack`` for Lua scripts: lua-cmsgpack 0.4.0's encoding rules (as Redis ships it).

Sans-IO helpers: ``Encoder`` writes MessagePack the way lua-cmsgpack chooses encodings (smallest
integer form, float32 when exact, str8/16/32 for strings, arrays only for 1..n tables, nesting
beyond 16 as nil); ``decode`` reads a stream of values iteratively. The Lua-facing functions
(argument checks, Lua tables) are in scripting.py.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

MAX_NESTING = 16
_INT64_MIN = -(2**63)


class MsgpackError(Exception):
    """A decode error; ``str()`` is lua-cmsgpack's message."""


def is_int64_equivalent(x: float) -> bool:
    """IS_INT64_EQUIVALENT: (int64_t)x == x, with x86's cast of out-of-range values."""
    if math.isinf(x) or math.isnan(x):
        return False
    if not -(2.0**63) <= x < 2.0**63:
        return False  # the cast gives INT64_MIN, which only equals -2^63 (in range above)
    return int(x) == x


def is_int_equivalent(x: float) -> bool:
    """IS_INT_EQUIVALENT: (int)x == x for a 32-bit int."""
    if math.isinf(x) or math.isnan(x) or not -(2.0**31) <= x < 2.0**31:
        return False
    return int(x) == x


def encode_int(n: int, out: bytearray) -> None:
    if n >= 0:
        if n <= 0x7F:
            out.append(n)
        elif n <= 0xFF:
            out += b"\xcc" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            out += b"\xcd" + struct.pack(">H", n)
        elif n <= 0xFFFFFFFF:
            out += b"\xce" + struct.pack(">I", n)
        else:
            out += b"\xcf" + struct.pack(">Q", n)
    elif n >= -32:
        out += struct.pack(">b", n)
    elif n >= -128:
        out += b"\xd0" + struct.pack(">b", n)
    elif n >= -32768:
        out += b"\xd1" + struct.pack(">h", n)
    elif n >= -2147483648:
        out += b"\xd2" + struct.pack(">i", n)
    else:
        out += b"\xd3" + struct.pack(">q", n)


def encode_number(x: float | int, out: bytearray) -> None:
    f = float(x)
    if is_int64_equivalent(f):
        encode_int(int(f), out)
        return
    try:
        single = struct.pack(">f", f)
    except OverflowError:  # C would make it inf, which differs from x: a double then
        single = b""
    if single and (struct.unpack(">f", single)[0] == f):
        out += b"\xca" + single
    else:
        out += b"\xcb" + struct.pack(">d", f)


def encode_bytes(s: bytes, out: bytearray) -> None:
    n = len(s)
    if n < 32:
        out.append(0xA0 | n)
    elif n <= 0xFF:
        out += b"\xd9" + struct.pack(">B", n)
    elif n <= 0xFFFF:
        out += b"\xda" + struct.pack(">H", n)
    else:
        out += b"\xdb" + struct.pack(">I", n)
    out += s


def encode_array_header(n: int, out: bytearray) -> None:
    if n <= 15:
        out.append(0x90 | n)
    elif n <= 0xFFFF:
        out += b"\xdc" + struct.pack(">H", n)
    else:
        out += b"\xdd" + struct.pack(">I", n)


def encode_map_header(n: int, out: bytearray) -> None:
    if n <= 15:
        out.append(0x80 | n)
    elif n <= 0xFFFF:
        out += b"\xde" + struct.pack(">H", n)
    else:
        out += b"\xdf" + struct.pack(">I", n)


_FIXED = {  # type byte -> (bytes after it, struct format, kind)
    0xCC: (1, ">B", "num"),
    0xD0: (1, ">b", "num"),
    0xCD: (2, ">H", "num"),
    0xD1: (2, ">h", "num"),
    0xCE: (4, ">I", "num"),
    0xD2: (4, ">i", "num"),
    0xCF: (8, ">q", "num"),  # lua_pushunsigned is lua_pushinteger on Lua 5.1: wraps negative
    0xD3: (8, ">q", "num"),
    0xCA: (4, ">f", "num"),
    0xCB: (8, ">d", "num"),
    0xD9: (1, ">B", "str"),
    0xDA: (2, ">H", "str"),
    0xDB: (4, ">I", "str"),
    0xDC: (2, ">H", "arr"),
    0xDD: (4, ">I", "arr"),
    0xDE: (2, ">H", "map"),
    0xDF: (4, ">I", "map"),
}

NIL = object()
"""Decoded msgpack nil (the caller maps it to Lua nil)."""


def decode(
    data: bytes,
    offset: int,
    limit: int | None,
    array: Callable[[list[Any]], Any],
    mapping: Callable[[list[tuple[Any, Any]]], Any],
) -> tuple[list[Any], int]:
    """Up to ``limit`` values (all when None) from ``data[offset:]``; returns them and the
    offset after the last one. Containers are built innermost first by ``array(items)`` /
    ``mapping(pairs)``; nil is ``NIL``, integers and floats come back as float."""
    pos = offset
    end = len(data)
    values: list[Any] = []

    def need(n: int) -> None:
        if end - pos < n:
            raise MsgpackError("Missing bytes in input.")

    while pos < end and (limit is None or len(values) < limit):
        # Frames: [kind, remaining, items, pending_key, has_key]
        stack: list[list[Any]] = []
        while True:
            need(1)
            b = data[pos]
            value: Any
            container: tuple[str, int] | None = None
            if b <= 0x7F:
                value, pos = float(b), pos + 1
            elif b >= 0xE0:
                value, pos = float(b - 256), pos + 1
            elif 0xA0 <= b <= 0xBF:
                n = b & 0x1F
                need(1 + n)
                value, pos = data[pos + 1 : pos + 1 + n], pos + 1 + n
            elif 0x90 <= b <= 0x9F:
                container, pos = ("arr", b & 0x0F), pos + 1
            elif 0x80 <= b <= 0x8F:
                container, pos = ("map", b & 0x0F), pos + 1
            elif b == 0xC0:
                value, pos = NIL, pos + 1
            elif b == 0xC2 or b == 0xC3:
                value, pos = b == 0xC3, pos + 1
            elif b in _FIXED:
                size, fmt, kind = _FIXED[b]
                need(1 + size)
                (field,) = struct.unpack(fmt, data[pos + 1 : pos + 1 + size])
                pos += 1 + size
                if kind == "num":
                    value = float(field)
                elif kind == "str":
                    need(field)
                    value, pos = data[pos : pos + field], pos + field
                else:
                    container = (kind, field)
            else:
                raise MsgpackError("Bad data format in input.")
            if container is not None:
                kind, count = container
                if count:
                    stack.append([kind, count, [], None, False])
                    continue
                value = array([]) if kind == "arr" else mapping([])
            # Attach `value` to the open containers, closing those that are complete.
            while stack:
                frame = stack[-1]
                if frame[0] == "arr":
                    frame[2].append(value)
                    frame[1] -= 1
                elif not frame[4]:
                    frame[3], frame[4] = value, True
                    break
                else:
                    frame[2].append((frame[3], value))
                    frame[3], frame[4] = None, False
                    frame[1] -= 1
                if frame[1]:
                    break
                stack.pop()
                value = array(frame[2]) if frame[0] == "arr" else mapping(frame[2])
            else:
                values.append(value)
                break
    return values, pos
