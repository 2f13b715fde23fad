"""The libraries scripts get besides redis.*: cjson, cmsgpack and struct.

Exact bytes and error texts are compared with redis-server in test_scripting_e2e.py; here valid
JSON is checked against Python's json module (a dict model of the same document), and the
MessagePack and struct helpers on known inputs.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.integrations.resp import lua_cjson
from faster_backend.integrations.resp.scripting import ScriptContext, ScriptingEngine
from faster_backend.integrations.resp.types import RespError

NULL = object()


def model(value: Any) -> Any:
    """What lua_cjson.decode should give for a value Python's json module produced."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        return [model(v) for v in value]
    return {k.encode("utf-8"): model(v) for k, v in value.items()}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5).filter(lambda k: "\x00" not in k), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 2]))
def test_decode_matches_python_json(value: Any, ensure_ascii: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    data = text.encode("utf-8")
    if b"\x00" in data:  # lua-cjson stops at a NUL byte, as C strings do
        return
    assert lua_cjson.decode(data, NULL) == model(json.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "Expected value but found T_END at character 1"),
        (b"[1,", "Expected value but found T_END at character 4"),
        (b"[1,]", "Expected value but found T_ARR_END at character 4"),
        (b"{", "Expected object key string but found T_END at character 2"),
        (b'{"a" 1}', "Expected colon but found T_NUMBER at character 6"),
        (b'{"a":1 "b"}', "Expected comma or object end but found T_STRING at character 8"),
        (b"[1 2]", "Expected comma or array end but found T_NUMBER at character 4"),
        (b"[1] x", "Expected the end but found invalid token at character 5"),
        (b'"abc', "Expected value but found unexpected end of string at character 5"),
        (b'"a\\qb"', "Expected value but found invalid escape code at character 3"),
        (b'"\\ud800"', "Expected value but found invalid unicode escape code at character 2"),
        (b"-", "Expected value but found invalid number at character 1"),
        (b"tru", "Expected value but found invalid token at character 1"),
        (b"[" * 1001, "Found too many nested data structures (1001) at character 1001"),
        (b"\x00[", "JSON parser does not support UTF-16 or UTF-32"),
    ],
)
def test_decode_errors(text: bytes, message: str) -> None:
    with pytest.raises(lua_cjson.CJSONError) as info:
        lua_cjson.decode(text, NULL)
    assert str(info.value) == message


def test_decode_leniencies() -> None:
    assert lua_cjson.decode(b"0x10", NULL) == 16.0
    assert lua_cjson.decode(b"+5", NULL) == 5.0
    assert lua_cjson.decode(b"-Infinity", NULL) == -math.inf
    assert math.isnan(lua_cjson.decode(b"nan", NULL))
    assert lua_cjson.decode(b'"\\ud83d\\ude00"', NULL) == "\U0001f600".encode()
    assert lua_cjson.decode(b'"\\/"', NULL) == b"/"
    with pytest.raises(lua_cjson.CJSONError, match="unexpected end of string"):
        lua_cjson.decode(b'["a\x00b"]', NULL)
    deep = b"[" * 999 + b"]" * 999
    value = lua_cjson.decode(deep, NULL)
    for _ in range(998):
        value = value[0]
    assert value == []


def test_cjson_from_lua() -> None:
    engine = ScriptingEngine()

    def no_commands(argv: list[bytes], ctx: ScriptContext) -> Any:
        raise AssertionError("no command expected")

    def run(src: str) -> Any:
        return engine.eval(src.encode(), [], [], no_commands)

    assert run("return cjson.encode({1, 'two', {three=3}, true})") == b'[1,"two",{"three":3},true]'
    assert run("return cjson.encode({})") == b"{}"
    assert run("return cjson.encode('a/\\n')") == b'"a\\/\\n"'
    assert run("return cjson.encode({1, nil, 3})") == b"[1,null,3]"
    src = "local t = cjson.decode('{\"a\":[1,2,{\"b\":null}]}') return {t.a[2], type(t.a[3].b)}"
    assert run(src) == [2, b"userdata"]
    assert run("return cjson.decode('null') == cjson.null") == 1
    assert run("return cjson.encode(cjson.decode('[1,[2,[3]]]'))") == b"[1,[2,[3]]]"
    with pytest.raises(RespError) as info:
        run("return cjson.encode(function() end)")
    assert info.value.message.startswith(
        "ERR user_script:1: Cannot serialise function: type not supported script: "
    )
    assert run("return {pcall(cjson.decode, '[')}") == [
        None,
        b"Expected value but found T_END at character 2",
    ]
    with pytest.raises(RespError, match="Attempt to modify a readonly table"):
        run("cjson.encode = nil")


# -- cmsgpack -------------------------------------------------------------------------------


def test_msgpack_decoder_types() -> None:
    from faster_backend.integrations.resp import lua_cmsgpack

    data = bytes.fromhex(
        "9f"  # fixarray of 15
        "01" "ff" "cd012c" "d1fed4" "ce00011170" "cf0000010000000000"  # 1 -1 300 -300 70000 2^40
        "d3ffffff0000000000" "ca3fc00000" "a474657874"  # -2^40 1.5 "text"
        "d903616263" "c3" "c2" "c0"  # str8 "abc" true false nil
        "81a16192" "01" "81a162c0"  # {"a": [1, {"b": nil}]}
        "90"  # []
    )
    values, end = lua_cmsgpack.decode(data, 0, None, list, dict)
    assert end == len(data)
    got = values[0]
    assert got[:8] == [1.0, -1.0, 300.0, -300.0, 70000.0, 2.0**40, -(2.0**40), 1.5]
    assert got[8:11] == [b"text", b"abc", True] and got[11] is False
    assert got[12] is lua_cmsgpack.NIL
    assert got[13] == {b"a": [1.0, {b"b": lua_cmsgpack.NIL}]}
    assert got[14] == []
    # A stream of values, read one at a time.
    assert lua_cmsgpack.decode(b"\x01\x02\x03", 1, 1, list, dict) == ([2.0], 2)


def test_msgpack_deep_nesting_is_iterative() -> None:
    from faster_backend.integrations.resp import lua_cmsgpack

    data = b"\x91" * 5000 + b"\x01"
    values, _ = lua_cmsgpack.decode(data, 0, None, list, dict)
    value = values[0]
    for _ in range(5000):
        value = value[0]
    assert value == 1.0
    with pytest.raises(lua_cmsgpack.MsgpackError, match=r"^Missing bytes in input\.$"):
        lua_cmsgpack.decode(b"\x92\x01", 0, None, list, dict)
    with pytest.raises(lua_cmsgpack.MsgpackError, match=r"^Bad data format in input\.$"):
        lua_cmsgpack.decode(b"\xc1", 0, None, list, dict)


def test_cmsgpack_from_lua() -> None:
    engine = ScriptingEngine()

    def no_commands(argv: list[bytes], ctx: ScriptContext) -> Any:
        raise AssertionError("no command expected")

    def run(src: str) -> Any:
        return engine.eval(src.encode(), [], [], no_commands)

    assert run("return cmsgpack.pack({1, 2, 3})") == b"\x93\x01\x02\x03"
    assert run("return cmsgpack.pack({a = true})") == b"\x81\xa1a\xc3"
    assert run("return cmsgpack.pack(1.5, 0.1)") == b"\xca\x3f\xc0\x00\x00" + bytes.fromhex(
        "cb3fb999999999999a"
    )
    assert run("return {cmsgpack.unpack(cmsgpack.pack({1, {2, 'x'}}, 'y'))}") == [
        [1, [2, b"x"]],
        b"y",
    ]
    assert run("return {cmsgpack.unpack_one(cmsgpack.pack(1, 2), 0)}") == [1, 1]
    assert run("return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}") == [2, 1, 2]
    with pytest.raises(RespError) as info:
        run("return cmsgpack.unpack('\\193')")
    assert info.value.message.startswith("ERR user_script:1: Bad data format in input. script: ")
    with pytest.raises(RespError, match="Attempt to modify a readonly table"):
        run("cmsgpack.pack = nil")


# -- struct ---------------------------------------------------------------------------------


def test_struct_from_lua() -> None:
    engine = ScriptingEngine()

    def no_commands(argv: list[bytes], ctx: ScriptContext) -> Any:
        raise AssertionError("no command expected")

    def run(src: str) -> Any:
        return engine.eval(src.encode(), [], [], no_commands)

    assert run("return struct.pack('>hI', -2, 7)") == b"\xff\xfe\x00\x00\x00\x07"
    assert run("return struct.pack('!4 b i', 1, 2)") == b"\x01\x00\x00\x00\x02\x00\x00\x00"
    assert run("return {struct.unpack('<hc2s', struct.pack('<hc2s', -3, 'ab', 'cd'))}") == [
        -3,
        b"ab",
        b"cd",
        8,  # the next position: 2 + 2 + 3 bytes read
    ]
    assert run("return struct.size('!8 b d')") == 16
    with pytest.raises(RespError) as info:
        run("return struct.pack('q', 1)")
    assert info.value.message.startswith(
        "ERR user_script:1: bad argument #1 to 'pack' (invalid format option 'q') script: "
    )
    with pytest.raises(RespError, match="data string too short"):
        run("return struct.unpack('i', 'ab')")
