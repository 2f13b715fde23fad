"""``struct`` for Lua scripts: Roberto Ierusalimschy's struct library (0.2) as Redis ships it.

``pack(fmt, args)``, ``unpack(fmt, data, pos)`` and ``size(fmt)`` follow lua_struct.c on a 64-bit
little-endian machine (long and size_t are 8 bytes, int 4, maximum alignment 8), with its error
texts. Arguments arrive as Lua values converted by lupa (bytes, int, float, ...).
"""

from __future__ import annotations

import math
import struct as _struct
from collections.abc import Callable, Sequence
from typing import Any

MAXINTSIZE = 32
_U64 = 2**64 - 1
MAXALIGN = 8
_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8, "x": 1}
_INTEGERS = frozenset("bBhHlLTiI")


class StructError(Exception):
    """An error as lua_struct raises it; ``str()`` is the message (without the position)."""


def _argerror(func: str, n: int, msg: str) -> StructError:
    return StructError(f"bad argument #{n} to '{func}' ({msg})")


class _Format:
    def __init__(self, fmt: bytes, func: str) -> None:
        self.fmt = fmt
        self.i = 0
        self.func = func
        self.little = True  # native order on x86-64
        self.align = 1

    def more(self) -> bool:
        return self.i < len(self.fmt) and self.fmt[self.i] != 0

    def next_option(self) -> str:
        opt = chr(self.fmt[self.i])
        self.i += 1
        return opt

    def getnum(self, default: int) -> int:
        if not (self.i < len(self.fmt) and chr(self.fmt[self.i]).isdigit()):
            return default
        a = 0
        while self.i < len(self.fmt) and chr(self.fmt[self.i]).isdigit():
            digit = self.fmt[self.i] - ord("0")
            if a > (2**31 - 1) // 10 or a * 10 > (2**31 - 1) - digit:
                raise StructError("integral size overflow")
            a = a * 10 + digit
            self.i += 1
        return a

    def optsize(self, opt: str) -> int:
        if opt in _SIZES:
            return _SIZES[opt]
        if opt == "c":
            return self.getnum(1)
        if opt in "iI":
            size = self.getnum(4)
            if size > MAXINTSIZE:
                raise StructError(f"integral size {size} is larger than limit of {MAXINTSIZE}")
            return size
        return 0

    def toalign(self, length: int, opt: str, size: int) -> int:
        if size == 0 or opt == "c":
            return 0
        size = min(size, self.align)
        return (size - (length & (size - 1))) & (size - 1)

    def control(self, opt: str) -> None:
        if opt == " ":
            return
        if opt == ">":
            self.little = False
        elif opt == "<":
            self.little = True
        elif opt == "!":
            a = self.getnum(MAXALIGN)
            if not (a > 0 and a & (a - 1) == 0):
                raise StructError(f"alignment {a} is not a power of 2")
            self.align = a
        else:
            raise _argerror(self.func, 1, f"invalid format option '{opt}'")


def _checknumber(func: str, args: Sequence[Any], n: int, tonumber: Callable[[Any], Any]) -> float:
    # pack() pushes a marker before reading its arguments: a missing one reads as nil.
    value = args[n - 2] if n - 2 < len(args) else None
    number = tonumber(value) if value is not None else None
    if number is None:
        raise _argerror(func, n, f"number expected, got {_typename(value)}")
    return float(number)


def _typename(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, bytes):
        return "string"
    return "table" if hasattr(value, "keys") else "userdata"


def _to_unsigned(n: float) -> int:
    # (Uinttype)(Inttype)n for negatives, (Uinttype)n otherwise (x86 casts out of range).
    if math.isnan(n) or math.isinf(n):
        return 1 << 63
    if n < 0:
        v = int(n)
        if v < -(2**63):
            v = -(2**63)
        return v & (2**64 - 1)
    v = int(n)
    return v if v < 2**64 else 1 << 63


def pack(
    fmt: bytes,
    args: Sequence[Any],
    tonumber: Callable[[Any], float | None],
    tostring: Callable[[Any], bytes | None],
) -> bytes:
    """struct.pack(fmt, ...) with ``args`` the values after the format."""
    f = _Format(fmt, "pack")
    out = bytearray()
    arg = 2
    total = 0
    while f.more():
        opt = f.next_option()
        size = f.optsize(opt)
        pad = f.toalign(total, opt, size)
        total += pad
        out += b"\0" * pad
        if opt in _INTEGERS:
            bits = _to_unsigned(_checknumber("pack", args, arg, tonumber))
            arg += 1
            data = bytearray()
            for _ in range(size):
                data.append(bits & 0xFF)
                bits >>= 8
            out += data if f.little else data[::-1]
        elif opt == "x":
            out.append(0)
        elif opt == "f":
            number = _checknumber("pack", args, arg, tonumber)
            arg += 1
            try:
                packed = _struct.pack("<f" if f.little else ">f", number)
            except OverflowError:
                packed = _struct.pack("<f" if f.little else ">f", math.copysign(math.inf, number))
            out += packed
        elif opt == "d":
            number = _checknumber("pack", args, arg, tonumber)
            arg += 1
            out += _struct.pack("<d" if f.little else ">d", number)
        elif opt in "cs":
            given = args[arg - 2] if arg - 2 < len(args) else None
            text = tostring(given) if given is not None else None
            if text is None:
                raise _argerror("pack", arg, f"string expected, got {_typename(given)}")
            arg += 1
            if size == 0:
                size = len(text)
            if len(text) < size:
                raise _argerror("pack", arg, "string too short")  # lua_struct's arg, already +1
            out += text[:size]
            if opt == "s":
                out.append(0)
                size += 1
        else:
            f.control(opt)
        total += size
    return bytes(out)


def unpack(fmt: bytes, data: bytes, pos: int) -> list[Any]:
    """struct.unpack(fmt, data, pos): the values, then the next position (1-based)."""
    f = _Format(fmt, "unpack")
    if pos <= 0:
        raise _argerror("unpack", 3, "offset must be 1 or greater")
    pos -= 1
    ld = len(data)
    out: list[Any] = []
    while f.more():
        opt = f.next_option()
        size = f.optsize(opt)
        pos += f.toalign(pos, opt, size)
        if not (size <= ld and pos <= ld - size):
            raise _argerror("unpack", 2, "data string too short")
        if opt in _INTEGERS:
            chunk = data[pos : pos + size]
            value = int.from_bytes(chunk, "little" if f.little else "big")
            value &= _U64  # Uinttype is 64 bits: wider fields keep their low 8 bytes
            if opt.islower():
                # Sign extension as lua_struct does it (x86 takes shift counts modulo 64).
                mask = (_U64 << ((size * 8 - 1) % 64)) & _U64
                if value & mask:
                    value |= mask
                if value >= 1 << 63:
                    value -= 1 << 64
            out.append(float(value))
        elif opt == "x":
            pass
        elif opt == "f":
            out.append(_struct.unpack("<f" if f.little else ">f", data[pos : pos + 4])[0])
        elif opt == "d":
            out.append(_struct.unpack("<d" if f.little else ">d", data[pos : pos + 8])[0])
        elif opt == "c":
            if size == 0:
                if not out or not isinstance(out[-1], float):
                    raise StructError("format 'c0' needs a previous size")
                size = int(out.pop())
                if not (size <= ld and pos <= ld - size):
                    raise _argerror("unpack", 2, "data string too short")
            out.append(data[pos : pos + size])
        elif opt == "s":
            end = data.find(b"\0", pos)
            if end < 0:
                raise StructError("unfinished string in data")
            size = end - pos + 1
            out.append(data[pos:end])
        else:
            f.control(opt)
        pos += size
    out.append(pos + 1)
    return out


def size(fmt: bytes) -> int:
    """struct.size(fmt)."""
    f = _Format(fmt, "size")
    pos = 0
    while f.more():
        opt = f.next_option()
        sz = f.optsize(opt)
        pos += f.toalign(pos, opt, sz)
        if opt == "s":
            raise _argerror("size", 1, "option 's' has no fixed size")
        if opt == "c" and sz == 0:
            raise _argerror("size", 1, "option 'c0' has no fixed size")
        if not opt.isalnum():
            f.control(opt)
        pos += sz
    return pos
