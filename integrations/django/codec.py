"""Value encoding shared by the embedded and the RESP modes.

Integers (exactly ``int``, not ``bool``) within 64 bits are stored as ASCII decimals, like
Django's RedisCache does, so that INCRBY works on them over RESP and so that the two backends
can read each other's values. Everything else is pickled with ``pickle.HIGHEST_PROTOCOL``,
whose output always starts with the PROTO opcode (0x80): that first byte tells the two apart.
"""

from __future__ import annotations

import pickle
from typing import Any

PROTOCOL = pickle.HIGHEST_PROTOCOL
PICKLE_MARK = 0x80
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1

_dumps = pickle.dumps
_loads = pickle.loads


def dumps(value: Any) -> bytes:
    """Bytes to store for ``value`` (pickling errors propagate to the caller)."""
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return str(value).encode()
    return _dumps(value, PROTOCOL)


def loads(raw: bytes) -> Any:
    """The value stored as ``raw``."""
    if raw[:1] == b"\x80":
        return _loads(raw)
    try:
        return int(raw)
    except ValueError:
        return _loads(raw)
