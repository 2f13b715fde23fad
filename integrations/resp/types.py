"""Reply values shared by the codec, the command handlers and the Lua bridge.

Handlers return plain Python values and the codec encodes them for the connection's protocol:

    bytes          bulk string            None        null (RESP2: $-1 / *-1 as the command needs)
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


OK = SimpleString("OK")
PONG = SimpleString("PONG")
QUEUED = SimpleString("QUEUED")
