"""``cjson.decode`` for Lua scripts: lua-cjson 2.1's parser (as Redis ships it), in Python.

The grammar, the leniencies (strtod numbers: hex, inf, nan, a leading +) and the error texts
("Expected comma or array end but found T_END at character 7") follow lua-cjson with its
defaults (decode_invalid_numbers on, decode_max_depth 1000). Iterative, so deep nesting costs no
Python stack. Values: str -> bytes, numbers -> float, null -> the caller's ``null`` object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 1000

# Token types, named as lua-cjson prints them.
OBJ_BEGIN, OBJ_END, ARR_BEGIN, ARR_END = "T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END"
STRING, NUMBER, BOOLEAN, NULL = "T_STRING", "T_NUMBER", "T_BOOLEAN", "T_NULL"
COLON, COMMA, END, ERROR = "T_COLON", "T_COMMA", "T_END", "T_ERROR"

_SINGLE = {
    ord("{"): OBJ_BEGIN,
    ord("}"): OBJ_END,
    ord("["): ARR_BEGIN,
    ord("]"): ARR_END,
    ord(","): COMMA,
    ord(":"): COLON,
}
_WHITESPACE = frozenset(b" \t\n\r")
_UNKNOWN = frozenset(b"fiInNt\"+-0123456789")  # lua-cjson's T_UNKNOWN start characters
_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
# What C's strtod accepts (lua-cjson hands numbers to it).
_STRTOD = re.compile(
    rb"[+-]?(?:0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?"
    rb"|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)",
    re.IGNORECASE,
)
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")


class CJSONError(Exception):
    """A decode error; ``str()`` is lua-cjson's message."""


class _Token:
    __slots__ = ("index", "kind", "value")

    def __init__(self, kind: str, index: int, value: Any = None) -> None:
        self.kind = kind
        self.index = index
        self.value = value


def _strtod(text: bytes) -> tuple[float, int] | None:
    m = _STRTOD.match(text)
    if m is None:
        return None
    raw = m.group()
    body = raw.lstrip(b"+-").lower()
    negative = raw.startswith(b"-")
    if body.startswith(b"0x"):
        value = float.fromhex(body.decode())
    elif body.startswith(b"inf"):
        value = float("inf")
    elif body.startswith(b"nan"):
        value = float("nan")
    else:
        value = float(body)
    return (-value if negative else value), m.end()


class _Lexer:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _at(self, i: int) -> int:
        # The C parser reads a NUL-terminated buffer: past the end (or at a NUL) is "end".
        return self.data[i] if i < len(self.data) else 0

    def next(self) -> _Token:
        data = self.data
        while self._at(self.pos) in _WHITESPACE:
            self.pos += 1
        start = self.pos
        ch = self._at(start)
        if ch == 0:
            return _Token(END, start)
        kind = _SINGLE.get(ch)
        if kind is not None:
            self.pos += 1
            return _Token(kind, start)
        if ch not in _UNKNOWN:
            return _Token(ERROR, start, "invalid token")
        if ch == ord('"'):
            return self._string()
        if ch == ord("-") or ord("0") <= ch <= ord("9"):
            return self._number()
        for word, kind, value in ((b"true", BOOLEAN, True), (b"false", BOOLEAN, False),
                                  (b"null", NULL, None)):
            if data.startswith(word, start):
                self.pos += len(word)
                return _Token(kind, start, value)
        if self._invalid_number():
            return self._number()
        return _Token(ERROR, start, "invalid token")

    def _invalid_number(self) -> bool:
        p = self.pos
        if self._at(p) == ord("+"):
            return True
        head = self.data[p : p + 3].lower()
        return head in (b"inf", b"nan")

    def _number(self) -> _Token:
        start = self.pos
        end = self.data.find(b"\0", start)
        parsed = _strtod(self.data[start : end if end >= 0 else len(self.data)])
        if parsed is None:
            return _Token(ERROR, start, "invalid number")
        value, length = parsed
        self.pos += length
        return _Token(NUMBER, start, value)

    def _string(self) -> _Token:
        start = self.pos
        p = start + 1
        out = bytearray()
        while True:
            ch = self._at(p)
            if ch == ord('"'):
                break
            if ch == 0:
                self.pos = p
                return _Token(ERROR, p, "unexpected end of string")
            if ch == ord("\\"):
                esc = self._at(p + 1)
                if esc == ord("u"):
                    decoded = self._unicode_escape(p)
                    if decoded is None:
                        self.pos = p
                        return _Token(ERROR, p, "invalid unicode escape code")
                    text, length = decoded
                    out += text
                    p += length
                    continue
                mapped = _ESCAPES.get(esc)
                if mapped is None:
                    self.pos = p
                    return _Token(ERROR, p, "invalid escape code")
                out += mapped
                p += 2
                continue
            out.append(ch)
            p += 1
        self.pos = p + 1
        return _Token(STRING, start, bytes(out))

    def _unicode_escape(self, p: int) -> tuple[bytes, int] | None:
        data = self.data
        hex4 = data[p + 2 : p + 6]
        if not _HEX4.fullmatch(hex4):
            return None
        code = int(hex4, 16)
        length = 6
        if code & 0xF800 == 0xD800:
            if code & 0x400 or data[p + 6 : p + 8] != b"\\u":
                return None
            low_hex = data[p + 8 : p + 12]
            if not _HEX4.fullmatch(low_hex):
                return None
            low = int(low_hex, 16)
            if low & 0xFC00 != 0xDC00:
                return None
            code = (((code & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000
            length = 12
        return chr(code).encode("utf-8"), length


def _parse_error(expected: str, token: _Token) -> CJSONError:
    found = token.value if token.kind == ERROR else token.kind
    return CJSONError(f"Expected {expected} but found {found} at character {token.index + 1}")


def decode(
    data: bytes,
    null: object,
    array: Callable[[list[Any]], Any] = list,
    obj: Callable[[dict[Any, Any]], Any] = dict,
) -> Any:
    """The value of JSON text ``data``: bytes, float, bool, ``null``, and containers made by
    ``array(list)`` / ``obj(dict)``, called innermost first (no recursion)."""
    if len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        raise CJSONError("JSON parser does not support UTF-16 or UTF-32")
    lex = _Lexer(data)
    # Frames: [container, pending key]; a list's key is unused.
    stack: list[list[Any]] = []
    token = lex.next()
    while True:
        # -- one value starting at `token`
        kind = token.kind
        if kind is OBJ_BEGIN or kind is ARR_BEGIN:
            if len(stack) + 1 > MAX_DEPTH:
                raise CJSONError(
                    f"Found too many nested data structures ({len(stack) + 1})"
                    f" at character {token.index + 1}"
                )
            token = lex.next()
            if kind is OBJ_BEGIN:
                if token.kind is not OBJ_END:
                    if token.kind is not STRING:
                        raise _parse_error("object key string", token)
                    key = token.value
                    token = lex.next()
                    if token.kind is not COLON:
                        raise _parse_error("colon", token)
                    stack.append([{}, key])
                    token = lex.next()
                    continue
                value: Any = obj({})
            else:
                if token.kind is not ARR_END:
                    stack.append([[], None])
                    continue
                value = array([])
        elif kind is STRING or kind is NUMBER or kind is BOOLEAN:
            value = token.value
        elif kind is NULL:
            value = null
        else:
            raise _parse_error("value", token)
        # -- attach the finished value to its parent, closing containers that end here
        while True:
            if not stack:
                token = lex.next()
                if token.kind is not END:
                    raise _parse_error("the end", token)
                return value
            frame = stack[-1]
            container = frame[0]
            if isinstance(container, list):
                container.append(value)
                token = lex.next()
                if token.kind is ARR_END:
                    stack.pop()
                    value = array(container)
                    continue
                if token.kind is not COMMA:
                    raise _parse_error("comma or array end", token)
                token = lex.next()
                break
            container[frame[1]] = value
            token = lex.next()
            if token.kind is OBJ_END:
                stack.pop()
                value = obj(container)
                continue
            if token.kind is not COMMA:
                raise _parse_error("comma or object end", token)
            token = lex.next()
            if token.kind is not STRING:
                raise _parse_error("object key string", token)
            frame[1] = token.value
            token = lex.next()
            if token.kind is not COLON:
                raise _parse_error("colon", token)
            token = lex.next()
            break
