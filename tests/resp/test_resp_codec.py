"""The sans-IO codec: request parsing paths and RESP2 / RESP3 reply encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.integrations.resp.encoder import encode
from faster_backend.integrations.resp.protocol import RequestParser, split_args
from faster_backend.integrations.resp.types import (
    NULL_ARRAY,
    OK,
    Push,
    RespError,
    SimpleString,
)


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        (b"v", b"$1\r\nv\r\n", b"$1\r\nv\r\n"),
        ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
        (None, b"$-1\r\n", b"_\r\n"),
        (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
        (OK, b"+OK\r\n", b"+OK\r\n"),
        (SimpleString("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n"),
        (RespError("ERR bad\nthing"), b"-ERR bad thing\r\n", b"-ERR bad thing\r\n"),
        (7, b":7\r\n", b":7\r\n"),
        (2**70, b":%d\r\n" % 2**70, b":%d\r\n" % 2**70),
        (True, b":1\r\n", b"#t\r\n"),
        (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
        ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
        ({"k": 1}, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
        ({b"x"}, b"*1\r\n$1\r\nx\r\n", b"~1\r\n$1\r\nx\r\n"),
        (Push([b"m"]), b"*1\r\n$1\r\nm\r\n", b">1\r\n$1\r\nm\r\n"),
    ],
)
def test_encode(value: object, resp2: bytes, resp3: bytes) -> None:
    assert encode(value, 2) == resp2
    assert encode(value, 3) == resp3


def test_encode_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        encode(object(), 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=6), max_size=8),
    st.data(),
)
def test_any_split_gives_the_same_commands(cmds: list[list[bytes]], data: st.DataObject) -> None:
    """hiredis, the careful parser and every mix of the two agree, wherever chunks are cut."""
    stream = b"".join(frame(*c) for c in cmds)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = RequestParser()
    got: list[list[bytes]] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out, err = parser.feed(stream[last:cut]) if cut > last else ([], None)
        assert err is None
        got.extend(out)
        last = cut
    assert got == cmds


def test_inline_split_args() -> None:
    assert split_args(b'SET k "a\\x41\\n b"') == [b"SET", b"k", b"aA\n b"]
    assert split_args(b"SET k 'it\\'s'") == [b"SET", b"k", b"it's"]
    assert split_args(b"  a   b  ") == [b"a", b"b"]
    assert split_args(b'"unterminated') is None
    assert split_args(b'"a"b') is None
    assert split_args(b"") == []


def test_limits_are_applied_after_set_limits() -> None:
    parser = RequestParser()
    parser.set_limits(max_bulk_len=1024, query_buffer_limit=1 << 20)
    cmds, err = parser.feed(frame(b"SET", b"k", b"x" * 2000))
    assert cmds == [] and err is not None and err.message == "Protocol error: invalid bulk length"


@pytest.mark.parametrize(
    ("element", "error"),
    [
        (b"=7\r\ntxt:abc\r\n", "expected '$', got '='"),
        (b"(123\r\n", "expected '$', got '('"),
        (b":0\r\n", "expected '$', got ':'"),
        (b",1.5\r\n", "expected '$', got ','"),
        (b"#t\r\n", "expected '$', got '#'"),
        (b"_\r\n", "expected '$', got '_'"),
        (b"-ERR x\r\n", "expected '$', got '-'"),
        (b"$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
    ],
)
def test_non_bulk_elements_are_protocol_errors(element: bytes, error: str) -> None:
    """hiredis returns a verbatim string or a big number as bytes, like a bulk, and the others
    as ints, floats, None...: Redis refuses them all, after running the commands before them."""
    parser = RequestParser()
    echo = b"*2\r\n$4\r\nECHO\r\n" + element
    cmds, err = parser.feed(frame(b"PING") + b"*0\r\n" + echo + frame(b"PING"))
    assert cmds == [[b"PING"]]
    assert err is not None and err.message == f"Protocol error: {error}"
