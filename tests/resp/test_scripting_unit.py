"""Unit tests of the Lua engine (resp/scripting.py): conversions, errors, sandbox, time limit.

The engine is sans-IO: these tests give it a small dict-backed command executor, defined here
only, in place of the server's dispatcher (the end-to-end tests use the real server).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_backend.integrations.resp.scripting import (
    ERR_READONLY_WRITE,
    NOSCRIPT,
    ScriptContext,
    ScriptingEngine,
    lua_number_to_integer,
    normalize_error,
    parse_numkeys,
    parse_shebang,
    sha1hex,
)
from faster_backend.integrations.resp.types import (
    NULL_ARRAY,
    OK,
    RespError,
    SimpleString,
)

WRITES = {b"set", b"del", b"incr"}


class FakeServer:
    """A few string commands over a dict, replying with the reply types handlers use."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.calls: list[list[bytes]] = []
        self.canned: Any = None  # the reply of the "canned" command
        self.seen_resp: list[int] = []

    def __call__(self, argv: list[bytes], ctx: ScriptContext) -> Any:
        self.calls.append(argv)
        self.seen_resp.append(ctx.resp)
        name = argv[0].lower()
        if name in WRITES:
            if ctx.read_only:
                return RespError(ERR_READONLY_WRITE)
            ctx.wrote = True
        if name == b"set":
            self.data[argv[1]] = argv[2]
            return OK
        if name == b"get":
            return self.data.get(argv[1])
        if name == b"del":
            return sum(self.data.pop(k, None) is not None for k in argv[1:])
        if name == b"incr":
            try:
                v = int(self.data.get(argv[1], b"0")) + 1
            except ValueError:
                raise RespError("ERR value is not an integer or out of range") from None
            self.data[argv[1]] = b"%d" % v
            return v
        if name == b"echo":
            return argv[1]
        if name == b"ping":
            return SimpleString("PONG")
        if name == b"canned":
            return self.canned
        if name == b"wrongtype":
            return RespError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return RespError("ERR Unknown Redis command called from script")


@pytest.fixture
def engine() -> Iterator[ScriptingEngine]:
    yield ScriptingEngine(time_limit_ms=5000)


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def run(
    engine: ScriptingEngine,
    fake: FakeServer,
    src: str | bytes,
    keys: tuple[Any, ...] = (),
    args: tuple[Any, ...] = (),
    read_only: bool = False,
) -> Any:
    body = src.encode() if isinstance(src, str) else src
    enc = [k if isinstance(k, bytes) else str(k).encode() for k in keys]
    arg = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return engine.eval(body, enc, arg, fake, read_only=read_only)


def run_error(engine: ScriptingEngine, fake: FakeServer, src: str, **kw: Any) -> str:
    with pytest.raises(RespError) as info:
        run(engine, fake, src, **kw)
    return info.value.message


# -- Lua -> reply --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("return 1", 1),
        ("return 3.99", 3),
        ("return -3.99", -3),
        ("return 2^53", 2**53),
        ("return 'hello'", b"hello"),
        ("return ''", b""),
        ("return true", 1),
        ("return false", None),
        ("return nil", None),
        ("return", None),
        ("return {}", []),
        ("return {1, 'two', 3.7, {4, {5}}}", [1, b"two", 3, [4, [5]]]),
        # Arrays stop at the first nil, as Redis' conversion does.
        ("return {1, 2, nil, 4}", [1, 2]),
        ("return {1, false, true, 4}", [1, None, 1, 4]),
        ("return {ok='FINE'}", SimpleString("FINE")),
        ("return {ok='a\\r\\nb'}", SimpleString("a  b")),
        ("return redis.status_reply('QUEUED')", SimpleString("QUEUED")),
        # Only integer keys 1..n count; hash keys are ignored.
        ("return {1, 2, x='y'}", [1, 2]),
        ("return function() end", None),
        ("return 1, 2", 1),  # a script has one return value
        ("return {1, {ok='A'}, {err='B c'}}", [1, SimpleString("A"), RespError("B c")]),
    ],
)
def test_lua_values_become_redis_replies(
    engine: ScriptingEngine, fake: FakeServer, src: str, expected: Any
) -> None:
    got = run(engine, fake, src)
    if isinstance(expected, list) and any(isinstance(e, RespError) for e in expected):
        assert [type(g) for g in got] == [type(e) for e in expected]
        assert [str(g) if isinstance(g, RespError) else g for g in got] == [
            str(e) if isinstance(e, RespError) else e for e in expected
        ]
        return
    assert got == expected
    assert type(got) is type(expected)


def test_error_tables_become_error_replies(engine: ScriptingEngine, fake: FakeServer) -> None:
    reply = run(engine, fake, "return {err='My Error'}")
    assert isinstance(reply, RespError) and reply.message == "My Error"
    reply = run(engine, fake, "return redis.error_reply('My Error')")
    assert isinstance(reply, RespError) and reply.message == "My Error"
    reply = run(engine, fake, "return redis.error_reply('oops')")  # no code: ERR added
    assert isinstance(reply, RespError) and reply.message == "ERR oops"
    reply = run(engine, fake, "return redis.error_reply('-WRONGTYPE bad')")
    assert isinstance(reply, RespError) and reply.message == "WRONGTYPE bad"
    reply = run(engine, fake, "return redis.error_reply(1)")
    assert isinstance(reply, RespError)
    assert reply.message == "ERR wrong number or type of arguments"
    reply = run(engine, fake, "return redis.status_reply()")
    assert isinstance(reply, RespError)


def test_metatables_are_not_consulted(engine: ScriptingEngine, fake: FakeServer) -> None:
    src = "return setmetatable({}, {__index = function(t, k) return k == 1 and 'x' or nil end})"
    assert run(engine, fake, src) == []
    src = "return setmetatable({1}, {__index = function() error('never called') end})"
    assert run(engine, fake, src) == [1]


def test_number_conversion_matches_a_c_cast() -> None:
    assert lua_number_to_integer(3.9) == 3
    assert lua_number_to_integer(-3.9) == -3
    assert lua_number_to_integer(float("nan")) == -(2**63)
    assert lua_number_to_integer(float("inf")) == -(2**63)
    assert lua_number_to_integer(2.0**63) == -(2**63)
    assert lua_number_to_integer(-(2.0**63)) == -(2**63)
    assert lua_number_to_integer(12) == 12


def test_huge_and_odd_numbers_from_lua(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run(engine, fake, "return 0/0") == -(2**63)
    assert run(engine, fake, "return 1/0") == -(2**63)
    assert run(engine, fake, "return -2^62") == -(2**62)


def test_resp3_replies_after_setresp(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run(engine, fake, "redis.setresp(3) return true") is True
    assert run(engine, fake, "redis.setresp(3) return false") is False
    assert run(engine, fake, "redis.setresp(3) return {double=3.5}") == 3.5
    assert run(engine, fake, "redis.setresp(3) return {map={a=1}}") == {b"a": 1}
    assert run(engine, fake, "redis.setresp(3) return {set={a=true, b=true}}") == {b"a", b"b"}
    assert run(engine, fake, "redis.setresp(3) return {big_number='123'}") == b"123"
    src = "redis.setresp(3) return {verbatim_string={format='txt', string='hi'}}"
    assert run(engine, fake, src) == b"hi"
    # Each run starts at RESP2 again.
    assert run(engine, fake, "return true") == 1
    assert run_error(engine, fake, "redis.setresp(4)").startswith(
        "ERR RESP version must be 2 or 3."
    )
    assert run_error(engine, fake, "redis.setresp()").startswith(
        "ERR redis.setresp() requires one argument."
    )


# -- reply -> Lua --------------------------------------------------------------------------


def test_replies_become_lua_values(engine: ScriptingEngine, fake: FakeServer) -> None:
    probe = (
        "local r = redis.call('canned')"
        " if type(r) == 'table' then"
        "   local ks = {} for k in pairs(r) do ks[#ks + 1] = type(k) .. ':' .. tostring(k) end"
        "   table.sort(ks) return {'table', table.concat(ks, ',')}"
        " end"
        " return {type(r), tostring(r)}"
    )
    cases: list[tuple[Any, list[bytes]]] = [
        (7, [b"number", b"7"]),
        (b"bulk", [b"string", b"bulk"]),
        (None, [b"boolean", b"false"]),
        (NULL_ARRAY, [b"boolean", b"false"]),
        (True, [b"number", b"1"]),
        (1.5, [b"string", b"1.5"]),
        (3.0, [b"string", b"3"]),
        ("text", [b"string", b"text"]),
        (SimpleString("OK"), [b"table", b"string:ok"]),
        (RespError("ERR x"), [b"table", b"string:err"]),
        ([b"a", None], [b"table", b"number:1,number:2"]),
        ({b"f": b"v"}, [b"table", b"number:1,number:2"]),  # RESP2: flat array
    ]
    for value, expected in cases:
        fake.canned = value
        if isinstance(value, RespError):
            got = run(engine, fake, probe.replace("redis.call", "redis.pcall"))
        else:
            got = run(engine, fake, probe)
        assert got == expected, value


def test_resp3_replies_become_lua_values(engine: ScriptingEngine, fake: FakeServer) -> None:
    fake.canned = {b"f": 1}
    assert run(engine, fake, "redis.setresp(3) return redis.call('canned').map.f") == 1
    fake.canned = {b"m"}
    assert run(engine, fake, "redis.setresp(3) return redis.call('canned').set.m") == 1
    fake.canned = 2.5
    assert run(engine, fake, "redis.setresp(3) return redis.call('canned').double * 2") == 5
    fake.canned = None
    assert run(engine, fake, "redis.setresp(3) return redis.call('canned') == nil") == 1
    fake.canned = False
    assert run(engine, fake, "redis.setresp(3) return redis.call('canned') == false") == 1
    assert fake.seen_resp[-1] == 3


def test_status_and_error_replies_reach_lua(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run(engine, fake, "return redis.call('ping').ok") == b"PONG"
    assert run(engine, fake, "return redis.call('set', 'k', 'v')") == SimpleString("OK")
    fake.data[b"s"] = b"abc"
    assert run(engine, fake, "return redis.pcall('incr', 's').err") == (
        b"ERR value is not an integer or out of range"
    )
    assert run(engine, fake, "return redis.pcall('wrongtype').err") == (
        b"WRONGTYPE Operation against a key holding the wrong kind of value"
    )


reply_values = st.recursive(
    st.none()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.binary(max_size=20)
    | st.text(
        alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
        max_size=8,
    ).map(SimpleString),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=reply_values)
def test_replies_round_trip_through_a_script(value: Any) -> None:
    """RESP2 reply -> Lua value -> reply gives back the reply (redis.call then return)."""
    engine, fake = ROUND_TRIP
    fake.canned = value
    assert engine.eval(b"return redis.call('canned')", [], [], fake) == value


ROUND_TRIP = (ScriptingEngine(), FakeServer())


# -- arguments -------------------------------------------------------------------------------


def test_keys_argv_and_argument_conversion(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run(
        engine, fake, "return {KEYS[1], KEYS[2], ARGV[1], #KEYS, #ARGV}", ("a", "b"), ("c",)
    ) == [
        b"a",
        b"b",
        b"c",
        2,
        1,
    ]
    binary = bytes(range(256))
    assert run(engine, fake, "return ARGV[1]", (), (binary,)) == binary
    run(engine, fake, "redis.call('set', 'n', 10)")
    assert fake.data[b"n"] == b"10"
    # Numbers go through %.17g like Redis, not Lua's %.14g.
    for lua, text in [
        ("1.5", b"1.5"),
        ("0.1", b"0.10000000000000001"),
        ("1e20", b"1e+20"),
        ("-7", b"-7"),
        ("2^53", b"9007199254740992"),
    ]:
        run(engine, fake, f"redis.call('set', 'n', {lua})")
        assert fake.data[b"n"] == text, lua


@pytest.mark.parametrize("arg", ["true", "nil", "{}", "function() end"])
def test_bad_arguments(engine: ScriptingEngine, fake: FakeServer, arg: str) -> None:
    msg = run_error(engine, fake, f"return redis.call('get', {arg})")
    assert msg.startswith(
        "ERR Lua redis lib command arguments must be strings or integers script: "
    )
    reply = run(engine, fake, f"return redis.pcall('get', {arg})")
    assert isinstance(reply, RespError)
    assert reply.message == "ERR Lua redis lib command arguments must be strings or integers"


def test_call_without_arguments(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run_error(engine, fake, "return redis.call()").startswith(
        "ERR Please specify at least one argument for this redis lib call script: "
    )


# -- errors ----------------------------------------------------------------------------------


def test_redis_call_error_format(engine: ScriptingEngine, fake: FakeServer) -> None:
    fake.data[b"s"] = b"abc"
    src = "local x = 1\nreturn redis.call('incr', KEYS[1])"
    msg = run_error(engine, fake, src, keys=("s",))
    assert msg == (
        "ERR value is not an integer or out of range"
        f" script: {sha1hex(src.encode())}, on @user_script:2."
    )
    msg = run_error(engine, fake, "return redis.call('nosuchcommand')")
    assert msg.startswith("ERR Unknown Redis command called from script script: ")


def test_runtime_errors(engine: ScriptingEngine, fake: FakeServer) -> None:
    src = "local a = 1\nerror('boom')"
    assert run_error(engine, fake, src) == (
        f"ERR user_script:2: boom script: {sha1hex(src.encode())}, on @user_script:2."
    )
    msg = run_error(engine, fake, "return nil + 1")
    assert msg.startswith("ERR user_script:1: attempt to perform arithmetic on a nil value script:")
    msg = run_error(engine, fake, "error({err='CUSTOM failure'})")
    assert msg.startswith("CUSTOM failure script: ")
    msg = run_error(engine, fake, "error(redis.error_reply('MY bad'))")
    assert msg.startswith("MY bad script: ")
    msg = run_error(engine, fake, "local function f() error('deep') end\nf()")
    assert msg.startswith("ERR user_script:1: deep script: ")


def test_compile_errors(engine: ScriptingEngine, fake: FakeServer) -> None:
    msg = run_error(engine, fake, "return 'unterminated")
    assert msg == (
        "ERR Error compiling script (new function): user_script:1: unfinished string near '<eof>'"
    )
    assert len(engine) == 0  # nothing cached
    msg = run_error(engine, fake, "\x1bLua")
    assert msg.startswith("ERR Error compiling script (new function): ")


def test_lua_pcall_returns_the_error_message(engine: ScriptingEngine, fake: FakeServer) -> None:
    fake.data[b"s"] = b"x"
    src = "local ok, e = pcall(redis.call, 'incr', 's') return {tostring(ok), e}"
    assert run(engine, fake, src) == [b"false", b"ERR value is not an integer or out of range"]
    src = "local ok, e = pcall(error, {x=1}) return type(e)"
    assert run(engine, fake, src) == b"table"
    src = "return {pcall(function() return 1, 2 end)}"
    assert run(engine, fake, src) == [1, 1, 2]
    src = (
        "return select(2, xpcall(function() redis.call('incr', 's') end,"
        " function(e) return e end)).err"
    )
    assert run(engine, fake, src) == b"ERR value is not an integer or out of range"


def test_normalize_error() -> None:
    assert normalize_error("-ERR x y") == "ERR x y"
    assert normalize_error("-WRONGTYPE bad\r\n") == "WRONGTYPE bad"
    assert normalize_error("plain message") == "ERR plain message"
    assert normalize_error("-NOCODE") == "ERR NOCODE"


# -- sandbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "os.execute",
        "io",
        "loadfile",
        "dofile",
        "require",
        "module",
        "package",
        "print",
        "debug",
        "python",
        "newproxy(true)",
        "os.exit",
        "os.getenv",
    ],
)
def test_dangerous_globals_are_absent(engine: ScriptingEngine, fake: FakeServer, name: str) -> None:
    try:
        got = run(engine, fake, f"return {name}")
    except RespError as e:
        assert "nonexistent global variable" in e.message or "not allowed" in e.message
    else:
        assert got is None, name


def test_global_writes_are_refused(engine: ScriptingEngine, fake: FakeServer) -> None:
    for src in [
        "x = 1",
        "redis = nil",
        "KEYS = {}",
        "string.rep = nil",
        "redis.call = tostring",
        "_G.x = 1",
        "math.huge = 1",
        "rawset(_G, 'x', 1)",
        "local t = string; t.x = 1",
        "getmetatable('').__index.upper = nil",
        "bit.band = nil",
    ]:
        msg = run_error(engine, fake, src)
        assert "Attempt to modify a readonly table" in msg, src
    for src in [
        "setmetatable(_G, nil)",
        "setmetatable(string, {})",
        "setfenv(0, {})",
        "setfenv(redis.sha1hex, {})",
    ]:
        msg = run_error(engine, fake, src)
        assert "readonly" in msg or "protected metatable" in msg, src
    # Nothing leaked into the next script.
    msg = run_error(engine, fake, "return x")
    assert "Script attempted to access nonexistent global variable 'x'" in msg
    assert run(engine, fake, "return string.rep('a', 3)") == b"aaa"


def test_undeclared_global_read(engine: ScriptingEngine, fake: FakeServer) -> None:
    src = "return undeclared_name"
    assert run_error(engine, fake, src) == (
        "ERR user_script:1: Script attempted to access nonexistent global variable"
        f" 'undeclared_name' script: {sha1hex(src.encode())}, on @user_script:1."
    )


def test_escapes_stay_in_the_sandbox(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert run(engine, fake, "return getfenv(0) == _G") == 1
    assert run(engine, fake, "return getfenv(redis.sha1hex) == _G") == 1
    assert run(engine, fake, "return getfenv(string.rep) == _G") == 1
    assert run(engine, fake, "local f = loadstring('return os') return f() == os") == 1
    assert run_error(engine, fake, "loadstring('y = 1')()").count("readonly table") == 1
    assert run(engine, fake, "return loadstring(string.dump(function() end))") is None
    assert run(engine, fake, "return load(function() return nil end) ~= nil") == 1
    assert run(engine, fake, "return getmetatable(redis.call)") is None
    assert run(engine, fake, "return getmetatable(_G)") is None
    # Python objects expose no attributes.
    assert "attempt to index a function value" in run_error(
        engine, fake, "return redis.call.__class__"
    )
    assert run(engine, fake, "return {type(redis.call), type(redis.pcall), type(redis.log)}") == [
        b"function", b"function", b"function"
    ]
    assert run(engine, fake, "return tostring(redis.call)") == b"function: builtin"
    with pytest.raises(RespError):
        run(engine, fake, "return redis.call.__class__.__subclasses__()")
    # string methods still work through the protected metatable
    assert run(engine, fake, "return ('abc'):upper()") == b"ABC"
    # coroutines and the libraries Redis has
    src = "local co = coroutine.wrap(function() coroutine.yield(5) end) return co()"
    assert run(engine, fake, src) == 5
    assert run(engine, fake, "return {math.floor(2.5), table.concat({'a','b'}, '-')}") == [
        2,
        b"a-b",
    ]
    assert run(engine, fake, "return type(os.clock())") == b"number"


def test_scripts_do_not_share_state(engine: ScriptingEngine, fake: FakeServer) -> None:
    run(engine, fake, "local t = KEYS t[1] = 'changed'", keys=("k",))
    assert run(engine, fake, "return KEYS[1]", keys=("k",)) == b"k"
    assert run(engine, fake, "return #KEYS") == 0


# -- redis.* helpers ---------------------------------------------------------------------------


def test_helpers(
    engine: ScriptingEngine, fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert run(engine, fake, "return redis.sha1hex('abc')") == sha1hex(b"abc").encode()
    assert run(engine, fake, "return redis.sha1hex(12)") == sha1hex(b"12").encode()
    assert run(engine, fake, "return redis.sha1hex(nil)") == sha1hex(b"").encode()
    assert run_error(engine, fake, "return redis.sha1hex()").startswith(
        "ERR wrong number of arguments script:"
    )
    assert run(
        engine,
        fake,
        "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    ) == [0, 1, 2, 3]
    with caplog.at_level(logging.DEBUG, logger="faster_backend.resp.scripting"):
        run(engine, fake, "redis.log(redis.LOG_WARNING, 'disk', 'is', 3, 'quarters full')")
        run(engine, fake, "redis.log(redis.LOG_NOTICE, 'notice')")
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, "disk is 3 quarters full") in records
    assert (logging.INFO, "notice") in records
    assert run_error(engine, fake, "redis.log(1)").startswith(
        "ERR redis.log() requires two arguments or more."
    )
    assert run_error(engine, fake, "redis.log('x', 'y')").startswith(
        "ERR First argument must be a number (log level)."
    )
    assert run_error(engine, fake, "redis.log(9, 'y')").startswith("ERR Invalid debug level.")
    assert run(engine, fake, "return redis.REDIS_VERSION") == b"7.2.4"
    assert run(engine, fake, "return redis.REDIS_VERSION_NUM") == 0x070204
    assert run(engine, fake, "return redis.replicate_commands()") == 1
    assert run(engine, fake, "redis.set_repl(redis.REPL_ALL) return 1") == 1
    assert run_error(engine, fake, "redis.set_repl(9)").startswith("ERR Invalid replication flags.")


def test_bit_library(engine: ScriptingEngine, fake: FakeServer) -> None:
    src = (
        "return {bit.band(0xff, 0x0f, 0x3), bit.bor(1, 2, 4), bit.bxor(5, 1), bit.bnot(0),"
        " bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.rol(0x80000000, 1),"
        " bit.ror(1, 1), bit.tobit(2^32 + 3), bit.tohex(255), bit.tohex(-1, -4), bit.bswap(1),"
        " bit.tohex(0x1234, 2)}"
    )
    assert run(engine, fake, src) == [
        3,
        7,
        4,
        -1,
        -(2**31),
        15,
        -4,
        1,
        -(2**31),
        3,
        b"000000ff",
        b"FFFF",
        2**24,
        b"34",
    ]
    assert "number expected, got nil" in run_error(engine, fake, "return bit.band(nil)")


# -- the script cache ----------------------------------------------------------------------


def test_cache_load_exists_flush(engine: ScriptingEngine, fake: FakeServer) -> None:
    script = engine.load(b"return 'loaded'")
    assert script.sha == sha1hex(b"return 'loaded'")
    assert engine.exists(script.sha) and engine.exists(script.sha.upper())
    assert engine.evalsha(script.sha.upper().encode(), [], [], fake) == b"loaded"
    with pytest.raises(RespError, match=r"^NOSCRIPT No matching script\. Please use EVAL\.$"):
        engine.evalsha(b"f" * 40, [], [], fake)
    assert NOSCRIPT == "NOSCRIPT No matching script. Please use EVAL."
    run(engine, fake, "return 1")
    assert engine.exists(sha1hex(b"return 1"))  # EVAL caches too
    engine.flush()
    assert not engine.exists(script.sha) and len(engine) == 0
    with pytest.raises(RespError, match=r"^NOSCRIPT"):
        engine.evalsha(script.sha.encode(), [], [], fake)
    assert run(engine, fake, "return 2") == 2  # the fresh VM works


def test_eval_cache_is_bounded_but_script_load_is_kept(fake: FakeServer) -> None:
    engine = ScriptingEngine(eval_cache_size=3)
    loaded = engine.load(b"return 'pinned'")
    for i in range(10):
        engine.eval(b"return %d" % i, [], [], fake)
    assert len(engine) == 4 and engine.evicted_scripts == 7
    assert engine.exists(loaded.sha)
    assert engine.exists(sha1hex(b"return 9")) and not engine.exists(sha1hex(b"return 0"))


def test_parse_numkeys() -> None:
    assert parse_numkeys([b"s", b"2", b"a", b"b", b"c"]) == ([b"a", b"b"], [b"c"])
    assert parse_numkeys([b"s", b"0"]) == ([], [])
    for bad in (b"x", b"1.5", b"01", b"", b"+1", b" 1", b"99999999999999999999"):
        with pytest.raises(RespError, match=r"^ERR value is not an integer or out of range$"):
            parse_numkeys([b"s", bad])
    with pytest.raises(
        RespError, match=r"^ERR Number of keys can't be greater than number of args$"
    ):
        parse_numkeys([b"s", b"3", b"a"])
    with pytest.raises(RespError, match=r"^ERR Number of keys can't be negative$"):
        parse_numkeys([b"s", b"-1"])


def test_shebang(engine: ScriptingEngine, fake: FakeServer) -> None:
    assert parse_shebang(b"return 1") == (frozenset(), False, 0)
    assert parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1")[:2] == (
        frozenset({"no-writes", "allow-oom"}),
        True,
    )
    assert parse_shebang(b"#!lua flags=\nreturn 1")[:2] == (frozenset(), True)
    for body, msg in [
        (b"#!lua", "ERR Invalid script shebang"),
        (b"#!python\nreturn 1", "ERR Unexpected engine in script shebang: #!python"),
        (b"#!lua flags=bogus\nreturn 1", "ERR Unexpected flag in script shebang: bogus"),
        (b"#!lua name=x\nreturn 1", "ERR Unknown lua shebang option: name=x"),
    ]:
        with pytest.raises(RespError) as info:
            engine.load(body)
        assert info.value.message == msg
    # Line numbers stay those of the source.
    msg = run_error(engine, fake, "#!lua\nreturn nope")
    assert "user_script:2:" in msg
    # no-writes makes the script read-only; *_RO refuses scripts that may write.
    msg = run_error(engine, fake, "#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')")
    assert msg.startswith(ERR_READONLY_WRITE)
    assert (
        run(engine, fake, "#!lua flags=no-writes\nreturn redis.call('get', 'a')", read_only=True)
        is None
    )
    msg = run_error(engine, fake, "#!lua\nreturn 1", read_only=True)
    assert msg == "ERR Can not execute a script with write flag using *_ro command."
    msg = run_error(engine, fake, "return redis.call('set', 'a', 'b')", read_only=True)
    assert msg.startswith(ERR_READONLY_WRITE)


# -- time limit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src",
    [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "local co = coroutine.wrap(function() while true do end end) co()",
        "while true do xpcall(function() while true do end end,"
        " function() while true do end end) end",
        "local f = loadstring('while true do end') f()",
        "while true do local ok = pcall(redis.call, 'ping') end",
    ],
)
def test_runaway_scripts_are_killed(fake: FakeServer, src: str) -> None:
    engine = ScriptingEngine(time_limit_ms=200)
    t0 = time.monotonic()
    with pytest.raises(RespError) as info:
        engine.eval(src.encode(), [], [], fake)
    assert info.value.message.startswith(
        "ERR Script killed after exceeding lua-time-limit (200 ms) script: "
    )
    assert time.monotonic() - t0 < 30  # generous: the point is that it returns
    assert engine.killed_scripts == 1
    # The engine is usable afterwards, with hooks reset (a short script is not killed).
    assert (
        engine.eval(b"local n = 0 for i = 1, 1000 do n = n + i end return n", [], [], fake)
        == 500500
    )


def test_killed_writer_keeps_its_writes_and_logs(
    fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = ScriptingEngine(time_limit_ms=100)
    with (
        caplog.at_level(logging.WARNING, logger="faster_backend.resp.scripting"),
        pytest.raises(RespError, match="killed"),
    ):
        engine.eval(b"redis.call('set', 'w', '1') while true do end", [], [], fake)
    assert fake.data[b"w"] == b"1"
    assert any("writes it made are kept" in r.getMessage() for r in caplog.records)


def test_no_time_limit_when_zero(fake: FakeServer) -> None:
    engine = ScriptingEngine(time_limit_ms=0)
    src = b"local n = 0 for i = 1, 3000000 do n = n + 1 end return n"
    assert engine.eval(src, [], [], fake) == 3000000


def test_nested_runs_are_refused(engine: ScriptingEngine) -> None:
    def reentrant(argv: list[bytes], ctx: ScriptContext) -> Any:
        return engine.eval(b"return 1", [], [], reentrant)

    reply = engine.eval(b"return redis.pcall('x')", [], [], reentrant)
    assert isinstance(reply, RespError)
    assert "not allowed from script" in reply.message


def test_odd_values_do_not_escape_as_python_errors(
    engine: ScriptingEngine, fake: FakeServer
) -> None:
    assert run_error(engine, fake, "redis.log(0/0, 'x')").startswith("ERR Invalid debug level.")
    assert run_error(engine, fake, "redis.setresp(0/0)").startswith("ERR RESP version must be")
    assert run_error(engine, fake, "redis.set_repl(1/0)").startswith("ERR Invalid replication")
    fake.canned = object()
    reply = run(engine, fake, "return redis.pcall('canned')")
    assert isinstance(reply, RespError) and "cannot be converted" in reply.message
    fake.canned = SimpleString("\ud800")
    assert run(engine, fake, "return redis.call('canned')") == SimpleString("?")


def test_handler_bugs_become_errors(engine: ScriptingEngine) -> None:
    def broken(argv: list[bytes], ctx: ScriptContext) -> Any:
        raise ZeroDivisionError

    reply = engine.eval(b"return redis.pcall('x')", [], [], broken)
    assert isinstance(reply, RespError) and reply.message.startswith("ERR internal error")


def test_memory_limit(fake: FakeServer) -> None:
    engine = ScriptingEngine(max_memory=32 << 20)
    for src in (
        b"local t = {} for i = 1, 1e8 do t[i] = i end return #t",
        b"return #string.rep('x', 1e9)",
        b"local ok = pcall(function() local t = {} for i = 1, 1e8 do t[i] = {} end end) return 1",
    ):
        try:
            reply = engine.eval(src, [], [], fake)
        except RespError as e:
            assert e.message.endswith(", not enough memory")
        else:
            assert reply == 1  # pcall caught the memory error inside the script
        assert engine.memory() < 8 << 20  # the garbage was collected
    assert engine.eval(b"return #string.rep('x', 1000)", [], [], fake) == 1000


def test_numbers_as_lua_prints_them(engine: ScriptingEngine, fake: FakeServer) -> None:
    # redis.sha1hex and redis.log take numbers the way lua_tolstring prints them (%.14g).
    for lua, text in [("590650104619545", b"5.9065010461954e+14"), ("12", b"12"),
                      ("0.1", b"0.1"), ("1e100", b"1e+100")]:
        assert run(engine, fake, f"return redis.sha1hex({lua})") == sha1hex(text).encode(), lua
        assert run(engine, fake, f"return tostring({lua})") == text


def test_deeply_nested_reply_is_cut_not_crashed(engine: ScriptingEngine, fake: FakeServer) -> None:
    src = "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return t"
    reply = run(engine, fake, src)
    depth = 0
    while isinstance(reply, list):
        reply = reply[0]
        depth += 1
    assert isinstance(reply, RespError) and reply.message == "ERR reached lua stack limit"
    assert 100 < depth < 1000
