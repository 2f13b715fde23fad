"""Reply values shared by the codec, the command handlers and the Lua bridge.

Handlers return plain Python values and the codec encodes them for the connection's protocol:

    bytes, str     bulk string (str: UTF-8) None       null (RESP2: $-1)
    NULL_ARRAY     null array (RESP2: *-1, RESP3: _)
    int            integer                list/tuple  array
    SimpleString   +status                RespError   -error (text includes the code: "ERR ...")
    float          RESP3 double (RESP2: bulk string)
    dict           RESP3 map (RESP2: flat array of key, value)
    set/frozenset  RESP3 set (RESP2: array)
    bool           RESP3 boolean (RESP2: integer 1/0)
    Push           RESP3 push (RESP2: array), for pub/sub messages
"""

from __future__ import annotations


class SimpleString(str):
    """A +status reply such as OK or PONG."""

    __slots__ = ()


class RespError(Exception):
    """An -error reply; ``str(e)`` is the whole text, starting with the code (ERR, WRONGTYPE...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Push(list):  # type: ignore[type-arg]
    """A RESP3 push message (>); RESP2 connections receive it as an array."""

    __slots__ = ()


class Replies(list):  # type: ignore[type-arg]
    """Several replies to one command (SUBSCRIBE ch1 ch2 answers once per channel)."""

    __slots__ = ()


class Raw(bytes):
    """A reply already in wire form (the same in RESP2 and RESP3), e.g. an array of bulks."""

    __slots__ = ()


OK = SimpleString("OK")
PONG = SimpleString("PONG")
QUEUED = SimpleString("QUEUED")


class _NullArray:
    """The null array: RESP2 ``*-1`` (an aborted EXEC, BLPOP timeout), RESP3 ``_``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()
