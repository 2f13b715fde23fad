"""Argument parsing and error texts shared by the command modules (Redis' exact wording)."""

from __future__ import annotations

import re

from faster_backend.integrations.resp.types import RespError

SYNTAX = RespError("ERR syntax error")
NOT_INT = RespError("ERR value is not an integer or out of range")
NOT_FLOAT = RespError("ERR value is not a valid float")
WRONGTYPE = RespError("WRONGTYPE Operation against a key holding the wrong kind of value")
NO_SUCH_KEY = RespError("ERR no such key")
OVERFLOW = RespError("ERR increment or decrement would overflow")
TOO_BIG = RespError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INT_RE = re.compile(rb"0|-?[1-9][0-9]{0,19}")  # string2ll: no "-0", no leading 0s
_FLOAT_RE = re.compile(rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?inf(?:inity)?",
                       re.IGNORECASE)


def to_int(raw: bytes, error: RespError = NOT_INT) -> int:
    """A 64-bit integer written like Redis' string2ll accepts it, else ``error``."""
    if _INT_RE.fullmatch(raw) is None:
        raise error
    v = int(raw)
    if v < INT64_MIN or v > INT64_MAX:
        raise error
    return v


def to_float(raw: bytes, error: RespError = NOT_FLOAT) -> float:
    """A finite or infinite double (no NaN, no spaces), else ``error``."""
    if _FLOAT_RE.fullmatch(raw) is None:
        raise error
    return float(raw)


def invalid_expire(cmd: str) -> RespError:
    return RespError(f"ERR invalid expire time in '{cmd}' command")
