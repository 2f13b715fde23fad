"""Request parsing (sans-IO): bytes in, argument vectors out, with Redis' limits and errors.

Two parsers share one stream. hiredis' C Reader parses well-formed multibulk requests, which is
all that real clients send, at about a quarter of a microsecond per command. Everything else
(inline commands, unauthenticated connections, headers that could break a limit, anything
hiredis would accept but Redis rejects) goes through a careful pure-Python parser that mirrors
Redis' ``processMultibulkBuffer`` / ``processInlineBuffer``, error texts included. Cheap
substring checks per received chunk pick the path; their false positives only cost speed.

hiredis does not say where a frame starts, so the parser keeps the chunks received since the
last frame boundary it is sure of. At the end of a chunk it knows: unconsumed bytes mean a partial
element; otherwise a probe (an empty multibulk, which hiredis returns as ``[]`` only between
frames) tells a boundary from the inside of a frame. When hiredis stops on something odd, or a
frame is left open, those bytes are re-parsed by the careful parser (skipping the commands
already returned), so the fallback is exact and never starts in the middle of a frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hiredis

INLINE_MAX = 64 * 1024  # Redis' PROTO_INLINE_MAX_SIZE
INT_MAX = 2**31 - 1
UNAUTH_MULTIBULK_MAX = 10
UNAUTH_BULK_MAX = 16384

_INT_RE = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})")
# What hiredis would accept but Redis rejects (status, attribute, map, set, push types inside a
# request; verbatim strings and big numbers, which it returns as bytes like a bulk string),
# and aggregate counts from which hiredis-py would preallocate a list (it calls
# PyList_New(count) before any element arrives). Such chunks go to the careful parser.
_unsafe_for_hiredis = re.compile(rb"\r\n(?:[+|~>%=(]|[*][0-9]{5})").search
# The first bytes of a chunk that starts a frame and would complete ``_unsafe_for_hiredis``'s
# pattern behind the previous frame's CRLF ("\n" too: neither hiredis nor Redis checks that a
# bulk is followed by CRLF, so the previous chunk may end in "\r").
_UNSAFE_FIRST = frozenset(b"+|~>%=(\n")
# What gets() returns while a reply is incomplete: never equal to a reply, unlike its default
# False (which equals the integer 0 that ":0" gives).
_MORE = object()
_join = b"".join


# A frame still incomplete after this many bytes moves to the careful parser, which accounts for
# the memory of the arguments it holds (hiredis' objects are not visible from here).
_FAST_FRAME_MAX = 8 << 20
_ARG_OVERHEAD = 64  # bytes of Python objects per held argument, for the query buffer limit


@dataclass
class ProtocolError(Exception):
    """A malformed request: ``message`` is sent as ``-ERR <message>`` (unless None), then close."""

    message: str | None

    def __str__(self) -> str:
        return self.message or "connection closed"


def _strict_int(raw: bytes | bytearray) -> int | None:
    # Redis' string2ll: no sign but '-', no leading zeros, no spaces.
    if _INT_RE.fullmatch(raw) is None:
        return None
    return int(raw)


class RequestParser:
    """Feed received bytes, get complete commands; one parser per connection."""

    def __init__(
        self,
        max_bulk_len: int = 512 << 20,
        query_buffer_limit: int = 1 << 30,
        authenticated: bool = True,
    ) -> None:
        self.max_bulk_len = max_bulk_len
        self.query_buffer_limit = query_buffer_limit
        self.authenticated = authenticated
        # No argument can be longer than max_bulk_len in a frame smaller than that.
        self._fast_max = min(_FAST_FRAME_MAX, max_bulk_len)
        digits = len(str(max_bulk_len))
        self._suspicious = re.compile(rb"\*[0-9]{10}|\$[0-9]{%d}" % digits).search
        self._reader = hiredis.Reader(notEnoughData=_MORE)
        self._pending: list[bytes] = []  # chunks fed to hiredis since its last frame boundary
        self._pending_len = 0
        self._pending_done = 0  # commands hiredis returned from those chunks
        self._tail = b"\r\n"
        # careful parser state
        self._slow = False
        self._buf = bytearray()
        self._args: list[bytes] = []
        self._left = 0  # arguments still expected by the multibulk frame being parsed
        self._args_bytes = 0

    def set_limits(self, max_bulk_len: int, query_buffer_limit: int) -> None:
        if max_bulk_len != self.max_bulk_len:
            digits = len(str(max_bulk_len))
            self._suspicious = re.compile(rb"\*[0-9]{10}|\$[0-9]{%d}" % digits).search
        self.max_bulk_len = max_bulk_len
        self.query_buffer_limit = query_buffer_limit
        self._fast_max = min(_FAST_FRAME_MAX, max_bulk_len)

    @property
    def between_frames(self) -> bool:
        """Nothing of a request is held: the next byte fed starts a frame (or an inline one)."""
        return not self._pending and not self._slow and self.authenticated

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete command."""
        return self._pending_len + len(self._buf)

    def feed(self, data: bytes) -> tuple[list[list[bytes]], ProtocolError | None]:
        """Commands completed by ``data``, and the error that ends the connection, if any."""
        if not data:
            return [], None
        if self._slow or not self.authenticated:
            return self._feed_slow(data)
        pending = self._pending
        if pending:
            # Inside a frame: a pattern may span the previous chunk and this one.
            if (
                _unsafe_for_hiredis(data) is not None
                or _unsafe_for_hiredis(self._tail + data[:16]) is not None
                or self._pending_len + len(data) > self._fast_max
            ):
                return self._feed_slow(data)
        else:
            # Between frames (the previous chunk ended with a frame's last two bytes): only
            # this chunk's own bytes can hold a pattern that hiredis would act on.
            first = data[0]
            if (
                first in _UNSAFE_FIRST
                or (first == 0x2A and len(data) >= 6 and data[2] != 13 and data[1:6].isdigit())
                or _unsafe_for_hiredis(data) is not None
                or len(data) > self._fast_max
            ):
                return self._feed_slow(data)
        reader = self._reader
        reader.feed(data)
        try:
            # The replies in one C loop; anything but a list of bytes is for the careful parser
            # (ints, None, nested arrays...), as is a hiredis protocol error. The commands
            # before such an element are then returned by the careful parser, which re-parses
            # from the last frame boundary.
            cmds: list[list[bytes]] = list(iter(reader.gets, _MORE))
            join = _join
            for c in cmds:
                if c.__class__ is not list:
                    raise ValueError
                # TypeError unless every element is bytes: hiredis' other values (int, float,
                # bool, None, list, ReplyError) have no buffer. Faster than a loop over them.
                join(c)
            if not all(cmds):  # "*0\r\n": an empty multibulk is skipped, as in Redis
                cmds = [c for c in cmds if c]
            if reader.has_data():
                # A partial element: its header may break a limit hiredis does not know.
                if self._suspicious(data) is not None or (
                    pending and self._suspicious(self._tail + data[:16]) is not None
                ):
                    raise ValueError
                pending.append(data)
                self._tail = data[-16:]
                self._pending_len += len(data)
                self._pending_done += len(cmds)
                if self._pending_len > self.query_buffer_limit:
                    return cmds, ProtocolError(None)
                return cmds, None
            # Everything was consumed, but hiredis may still be inside a frame (it consumed a
            # header or whole elements). Probe: an empty multibulk comes back as [] only at a
            # frame boundary; inside a frame it becomes an element, and we switch parsers.
            reader.feed(b"*0\r\n")
            if reader.gets() != []:
                raise ValueError
        except (hiredis.ProtocolError, ValueError, TypeError):
            # Re-parse from the last frame boundary with the careful parser, skipping the
            # commands returned from earlier chunks.
            skip = self._pending_done
            pending.append(data)
            raw = b"".join(pending)
            self._reset_fast()
            self._slow = True
            return self._parse_slow(raw, skip)
        if pending:
            pending.clear()
            self._pending_len = 0
            self._pending_done = 0
        return cmds, None

    def _reset_fast(self) -> None:
        self._reader = hiredis.Reader(notEnoughData=_MORE)
        self._pending.clear()
        self._pending_len = 0
        self._pending_done = 0

    def _feed_slow(self, data: bytes) -> tuple[list[list[bytes]], ProtocolError | None]:
        if not self._slow:
            skip = self._pending_done
            self._pending.append(data)
            raw = b"".join(self._pending)
            self._reset_fast()
            self._slow = True
            return self._parse_slow(raw, skip)
        return self._parse_slow(data, 0)

    def _parse_slow(
        self, data: bytes, skip: int
    ) -> tuple[list[list[bytes]], ProtocolError | None]:
        buf = self._buf
        buf += data
        cmds: list[list[bytes]] = []
        err: ProtocolError | None = None
        pos = 0
        n = len(buf)
        while pos < n:
            if self._left == 0:
                if buf[pos] != 0x2A:  # not '*': an inline command
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        if n - pos > INLINE_MAX:
                            err = ProtocolError("Protocol error: too big inline request")
                        break
                    line = bytes(buf[pos:nl]).rstrip(b"\r")
                    pos = nl + 1
                    args = split_args(line)
                    if args is None:
                        err = ProtocolError("Protocol error: unbalanced quotes in request")
                        break
                    if args:
                        if skip:
                            skip -= 1
                        else:
                            cmds.append(args)
                    continue
                nl = buf.find(b"\r", pos)
                if nl < 0:
                    if n - pos > INLINE_MAX:
                        err = ProtocolError("Protocol error: too big mbulk count string")
                    break
                if nl + 1 >= n:
                    break
                count = _strict_int(buf[pos + 1 : nl])
                if count is None or count > INT_MAX:
                    err = ProtocolError("Protocol error: invalid multibulk length")
                    break
                if count > UNAUTH_MULTIBULK_MAX and not self.authenticated:
                    err = ProtocolError("Protocol error: unauthenticated multibulk length")
                    break
                pos = nl + 2
                if count <= 0:
                    continue
                self._left = count
                self._args = []
                self._args_bytes = 0
            # inside a multibulk frame: read bulk strings
            args = self._args
            while self._left:
                if pos >= n:
                    break
                nl = buf.find(b"\r", pos)
                if nl < 0:
                    if n - pos > INLINE_MAX:
                        err = ProtocolError("Protocol error: too big bulk count string")
                    break
                if nl + 1 >= n:
                    break
                if buf[pos] != 0x24:  # '$'
                    got = chr(buf[pos])
                    err = ProtocolError(f"Protocol error: expected '$', got '{got}'")
                    break
                size = _strict_int(buf[pos + 1 : nl])
                if size is None or size < 0 or size > self.max_bulk_len:
                    err = ProtocolError("Protocol error: invalid bulk length")
                    break
                if size > UNAUTH_BULK_MAX and not self.authenticated:
                    err = ProtocolError("Protocol error: unauthenticated bulk length")
                    break
                start = nl + 2
                if start + size + 2 > n:
                    break
                args.append(bytes(buf[start : start + size]))
                self._args_bytes += size + _ARG_OVERHEAD
                self._left -= 1
                pos = start + size + 2
            if err is not None or self._left:
                break
            if skip:
                skip -= 1
            else:
                cmds.append(args)
            self._args = []
            self._args_bytes = 0
        del buf[:pos]
        if err is None and len(buf) + self._args_bytes > self.query_buffer_limit:
            err = ProtocolError(None)
        if err is None and not buf and not self._left and self.authenticated:
            self._slow = False  # at a frame boundary again: back to hiredis
            self._tail = b"\r\n"
        return cmds, err


_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("a"): b"\a",
}
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \n\r\t\v\f"


def split_args(line: bytes) -> list[bytes] | None:
    """Split an inline command like Redis' ``sdssplitargs``; None for unbalanced quotes."""
    out: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == 0x5C
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    cur += _ESCAPES.get(line[i], bytes([line[i]]))
                elif c == 0x22:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None  # closing quote must be followed by a space
                    in_dq = False
                    i += 1
                    break
                else:
                    cur.append(c)
            elif in_sq:
                if i >= n:
                    return None
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    cur.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    in_sq = False
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _SPACE:
                    break
                if c == 0x22:
                    in_dq = True
                elif c == 0x27:
                    in_sq = True
                else:
                    cur.append(c)
            i += 1
        out.append(bytes(cur))
