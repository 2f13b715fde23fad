"""Lua scripting for the RESP listener: EVAL / EVALSHA / SCRIPT on a sandboxed Lua 5.1 (lupa).

Sans-IO: the engine compiles and caches scripts and runs them; every ``redis.call`` goes to a
callable the caller supplies (argv, context) -> reply value, using the reply types of
:mod:`faster_backend.integrations.resp.types`. Conversions and error texts follow Redis 7.2
(script_lua.c / eval.c); docs/resp.md lists the differences.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from faster_backend.integrations.resp import lua_cjson, lua_cmsgpack, lua_sandbox, lua_struct
from faster_backend.integrations.resp.types import NULL_ARRAY, Push, RespError, SimpleString

log = logging.getLogger("faster_backend.resp.scripting")

NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
NOTBUSY = "NOTBUSY No scripts in execution right now."
ERR_NOT_ALLOWED = "ERR This Redis command is not allowed from script"
ERR_READONLY_WRITE = "ERR Write commands are not allowed from read-only scripts."
ERR_RO_WITH_WRITE_FLAG = "ERR Can not execute a script with write flag using *_ro command."

# Flags a `#!lua flags=...` shebang may carry (Redis' scripts_flags_def).
SHEBANG_FLAGS = frozenset(
    {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}
)
DEFAULT_TIME_LIMIT_MS = 5000
# Redis does not bound the Lua heap; a runaway table in a Python server would take the process
# down with it, so the VM gets a cap (scripts beyond it fail with "not enough memory").
DEFAULT_MAX_MEMORY = 1 << 30
EVAL_CACHE_SIZE = 500  # Redis 7.4 evicts EVAL-loaded scripts beyond 500 (LRU); SCRIPT LOAD stays

_HOOK_EVERY = 100_000  # VM instructions between time-limit checks, as Redis does
_MAX_REPLY_DEPTH = 200  # nesting of a script's reply (Redis: the Lua C stack limit)
_LLONG_MIN = -(2**63)
_INT_RE = re.compile(rb"(?:0|-?[1-9][0-9]*)\Z")


@dataclass
class ScriptContext:
    """State of one script run, passed to the command callable with every redis.call."""

    script: Script
    read_only: bool
    resp: int = 2
    wrote: bool = False  # the callable sets this when a write command ran


CommandCall = Callable[[list[bytes], ScriptContext], object]


@dataclass
class Script:
    sha: str
    body: bytes
    flags: frozenset[str]  # shebang flags; empty without a shebang
    shebang: bool  # True: "#!lua" script (not in EVAL compatibility mode)
    fn: Any  # the compiled Lua function


def sha1hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def parse_numkeys(argv: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split EVAL-style ``script numkeys key... arg...`` (argv without the command name)."""
    raw = bytes(argv[1])
    if not _INT_RE.match(raw) or not -(2**63) <= int(raw) < 2**63:
        raise RespError("ERR value is not an integer or out of range")
    numkeys = int(raw)
    rest = list(argv[2:])
    if numkeys > len(rest):
        raise RespError("ERR Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise RespError("ERR Number of keys can't be negative")
    return rest[:numkeys], rest[numkeys:]


def parse_shebang(body: bytes) -> tuple[frozenset[str], bool, int]:
    """(flags, has_shebang, length of the shebang line) of a script body."""
    if not body.startswith(b"#!"):
        return frozenset(), False, 0
    end = body.find(b"\n")
    if end < 0:
        raise RespError("ERR Invalid script shebang")
    parts = body[:end].split()
    if not parts:
        raise RespError("ERR Invalid engine in script shebang")
    if parts[0] != b"#!lua":
        raise RespError(f"ERR Unexpected engine in script shebang: {_text(parts[0])}")
    flags: set[str] = set()
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise RespError(f"ERR Unknown lua shebang option: {_text(part)}")
        for flag in part[6:].split(b",") if part[6:] else ():
            name = _text(flag)
            if not flag or name not in SHEBANG_FLAGS:
                raise RespError(f"ERR Unexpected flag in script shebang: {name}")
            flags.add(name)
    return frozenset(flags), True, end


def normalize_error(text: str) -> str:
    """Redis' luaPushErrorBuff: a "-CODE msg" or "msg" text -> "CODE msg" (default code ERR)."""
    if text.startswith("-"):
        code, sep, msg = text[1:].partition(" ")
        if not sep:
            code, msg = "ERR", text[1:]
    else:
        code, msg = "ERR", text
    return f"{code} {msg.strip(chr(13) + chr(10))}"


def lua_number_to_integer(value: float | int) -> int:
    """C's (long long) cast of a Lua number as Redis does it (x86: out of range -> LLONG_MIN)."""
    if isinstance(value, int):
        return value if _LLONG_MIN <= value < 2**63 else _LLONG_MIN
    if math.isnan(value) or not -9.223372036854776e18 <= value < 9.223372036854776e18:
        return _LLONG_MIN
    return int(value)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _one_line(data: bytes | str) -> str:
    text = data if isinstance(data, str) else _text(data)
    return text.replace("\r", " ").replace("\n", " ")


def _format_double(value: float) -> bytes:
    # Redis 7.2 formats doubles for RESP2 / Lua strings as the shortest round-trip text.
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value.is_integer() and abs(value) < 1e17:
        return b"%d" % int(value)
    return repr(value).encode()


class ScriptingEngine:
    """The script cache and the Lua VM. One per server; not thread-safe (the loop is single)."""

    def __init__(
        self,
        *,
        time_limit_ms: int = DEFAULT_TIME_LIMIT_MS,
        redis_version: str = "7.2.4",
        eval_cache_size: int = EVAL_CACHE_SIZE,
        max_memory: int = DEFAULT_MAX_MEMORY,
    ) -> None:
        self.time_limit_ms = time_limit_ms
        self.max_memory = max_memory
        self.redis_version = redis_version
        self.eval_cache_size = eval_cache_size
        self._scripts: dict[str, Script] = {}
        self._eval_lru: OrderedDict[str, None] = OrderedDict()
        self._ctx: ScriptContext | None = None
        self._call: CommandCall | None = None
        self.evicted_scripts = 0
        self.killed_scripts = 0
        self._new_vm()

    # -- the VM -------------------------------------------------------------------------------

    def _new_vm(self) -> None:
        from lupa import lua51

        def deny(obj: object, name: object, setting: bool) -> object:
            raise AttributeError("access to Python attributes is disabled")

        lua = lua51.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=deny,
            max_memory=self.max_memory or None,
        )
        major, minor, patch = (int(p) for p in [*self.redis_version.split("."), "0", "0"][:3])
        name = lua_sandbox.INTERNAL.encode()
        loader = lua.execute(b"return function(src) return loadstring(src, '" + name + b"') end")
        chunk = loader(lua_sandbox.BOOTSTRAP.encode())
        if isinstance(chunk, tuple):  # pragma: no cover - (nil, message): our own Lua is broken
            raise RuntimeError(f"Lua bootstrap failed to compile: {chunk[1]!r}")
        compile_, run, classify, json_null, json_encode, where = chunk(
            self._guard(self._bridge_call),
            self._guard(self._bridge_pcall),
            _unwrap,
            self._guard(self._bridge_sha1hex),
            self._guard(self._bridge_log),
            time.monotonic,
            self._guard(self._bridge_setresp),
            self._guard(self._bridge_set_repl),
            self._guard(lua_sandbox.bit),
            self._guard(self._bridge_json_encode),
            self._guard(self._bridge_json_decode),
            lua.table_from(
                {
                    b"pack": self._guard(self._bridge_msgpack_pack),
                    b"unpack": self._guard(self._bridge_msgpack_unpack),
                    b"unpack_one": self._guard(self._bridge_msgpack_unpack_one),
                    b"unpack_limit": self._guard(self._bridge_msgpack_unpack_limit),
                }
            ),
            lua.table_from(
                {
                    b"pack": self._guard(self._bridge_struct_pack),
                    b"unpack": self._guard(self._bridge_struct_unpack),
                    b"size": self._guard(self._bridge_struct_size),
                }
            ),
            self.redis_version.encode(),
            (major << 16) | (minor << 8) | patch,
            _HOOK_EVERY,
        )
        self._lua = lua
        self._gc = lua.globals()[b"collectgarbage"]
        self._compile = compile_
        self._run = run
        self._classify = classify
        self._json_null = json_null
        self._json_encode = json_encode
        self._where = where

    # -- script cache -------------------------------------------------------------------------

    def load(self, body: bytes, *, from_eval: bool = False) -> Script:
        """Compile and cache ``body`` (SCRIPT LOAD, or EVAL with ``from_eval``)."""
        sha = sha1hex(body)
        script = self._scripts.get(sha)
        if script is not None:
            if sha in self._eval_lru:
                if from_eval:
                    self._eval_lru.move_to_end(sha)
                else:  # SCRIPT LOAD pins a script EVAL had cached
                    del self._eval_lru[sha]
            return script
        flags, shebang, offset = parse_shebang(body)
        # Keep the shebang's newline so line numbers in errors match the user's source.
        compiled = self._compile(body[offset:])
        fn, err = compiled if isinstance(compiled, tuple) else (compiled, None)
        if fn is None:
            message = _one_line(err if isinstance(err, bytes | str) else str(err))
            raise RespError(f"ERR Error compiling script (new function): {message}")
        script = Script(sha=sha, body=body, flags=flags, shebang=shebang, fn=fn)
        self._scripts[sha] = script
        if from_eval:
            self._eval_lru[sha] = None
            while len(self._eval_lru) > self.eval_cache_size:
                old, _ = self._eval_lru.popitem(last=False)
                del self._scripts[old]
                self.evicted_scripts += 1
        return script

    def get(self, sha: bytes | str) -> Script | None:
        key = sha.decode("latin-1") if isinstance(sha, bytes) else sha
        if len(key) != 40:
            return None
        script = self._scripts.get(key.lower())
        if script is not None and script.sha in self._eval_lru:
            self._eval_lru.move_to_end(script.sha)
        return script

    def exists(self, sha: bytes | str) -> bool:
        key = sha.decode("latin-1") if isinstance(sha, bytes) else sha
        return key.lower() in self._scripts

    def flush(self) -> None:
        """SCRIPT FLUSH: forget every script and start a fresh Lua VM, as Redis does."""
        if self._ctx is not None:
            raise RespError("ERR SCRIPT FLUSH is not allowed while a script runs")
        self._scripts.clear()
        self._eval_lru.clear()
        self._new_vm()

    def __len__(self) -> int:
        return len(self._scripts)

    @property
    def running(self) -> bool:
        return self._ctx is not None

    def _collect(self) -> None:
        # Give back what a failed script left behind now rather than at some later GC step
        # (Lua 5.1 does no emergency collection when an allocation fails).
        self._gc()

    def memory(self) -> int:
        """Bytes the Lua VM uses (INFO used_memory_lua)."""
        return int(float(self._gc(b"count")) * 1024)

    # -- running ------------------------------------------------------------------------------

    def eval(
        self,
        body: bytes,
        keys: Sequence[bytes],
        args: Sequence[bytes],
        call: CommandCall,
        *,
        read_only: bool = False,
    ) -> object:
        """EVAL / EVAL_RO."""
        return self.run(self.load(body, from_eval=True), keys, args, call, read_only=read_only)

    def evalsha(
        self,
        sha: bytes,
        keys: Sequence[bytes],
        args: Sequence[bytes],
        call: CommandCall,
        *,
        read_only: bool = False,
    ) -> object:
        """EVALSHA / EVALSHA_RO."""
        script = self.get(sha)
        if script is None:
            raise RespError(NOSCRIPT)
        return self.run(script, keys, args, call, read_only=read_only)

    def run(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[bytes],
        call: CommandCall,
        *,
        read_only: bool = False,
    ) -> object:
        """Run a cached script; returns its reply value, raises RespError for script errors."""
        if self._ctx is not None:
            raise RespError(ERR_NOT_ALLOWED)
        if script.shebang and read_only and "no-writes" not in script.flags:
            raise RespError(ERR_RO_WITH_WRITE_FLAG)
        ro = read_only or "no-writes" in script.flags
        ctx = ScriptContext(script=script, read_only=ro)
        self._ctx, self._call = ctx, call
        deadline = time.monotonic() + self.time_limit_ms / 1000 if self.time_limit_ms > 0 else 0
        try:
            try:
                out = self._run(script.fn, deadline, len(keys), *keys, *args)
            except lupa_errors() as e:  # outside the script's own protected call: memory
                self._collect()
                raise RespError(f"ERR Error running script {script.sha}, {e}") from None
            status, killed = out[0], out[1]
            if killed:
                self.killed_scripts += 1
                log.warning(
                    "Lua script %s killed after exceeding lua-time-limit (%d ms)%s",
                    script.sha,
                    self.time_limit_ms,
                    "; the writes it made are kept" if ctx.wrote else "",
                )
                raise RespError(
                    f"ERR Script killed after exceeding lua-time-limit ({self.time_limit_ms} ms)"
                    f" script: {script.sha}"
                )
            if status == b"ok":
                return self._reply_parts(out[2:], ctx.resp)
            if status == b"table":
                result, source, line = (*out[2:], None, None, None)[:3]
                message = _one_line(result) if result is not None else "ERR unknown error"
                if source is not None and line is not None:
                    message += f" script: {script.sha}, on {_text(source)}:{_text(line)}."
                raise RespError(message)
            text = _one_line(out[2]) if len(out) > 2 and out[2] is not None else "failure"
            if text == "not enough memory":
                self._collect()
                log.warning("Lua script %s ran out of memory (limit %d bytes)",
                            script.sha, self.max_memory)
            raise RespError(f"ERR Error running script {script.sha}, {text[:100]}")
        finally:
            self._ctx, self._call = None, None
            if self.max_memory and self._lua.get_memory_used() > self.max_memory // 2:
                self._collect()

    # -- Lua -> reply -------------------------------------------------------------------------

    def _reply(self, value: object, resp: int, depth: int) -> object:
        if depth > _MAX_REPLY_DEPTH:
            return RespError("ERR reached lua stack limit")
        res = self._classify(value)
        return self._reply_parts(res if isinstance(res, tuple) else (res,), resp, depth)

    def _reply_parts(self, parts: tuple[Any, ...], resp: int, depth: int = 0) -> object:
        kind = parts[0]
        if kind == b"nil":
            return None
        if kind == b"boolean":
            if resp == 2:
                return 1 if parts[1] else None
            return bool(parts[1])
        if kind == b"number":
            return lua_number_to_integer(parts[1])
        if kind == b"string":
            return bytes(parts[1])
        if kind == b"err":
            return RespError(_one_line(parts[1]))
        if kind == b"ok":
            return SimpleString(_one_line(parts[1]))
        if kind == b"double":
            return float(parts[1])
        if kind in (b"big_number", b"verbatim"):
            return bytes(parts[1]).replace(b"\r", b" ").replace(b"\n", b" ")
        if kind == b"array":
            table, n = parts[1], int(parts[2])
            return [self._reply(table[i], resp, depth + 1) for i in range(1, n + 1)]
        if kind == b"map":
            ks, vs, n = parts[1], parts[2], int(parts[3])
            out: dict[Any, object] = {}
            for i in range(1, n + 1):
                k = self._reply(ks[i], resp, depth + 1)
                out[_hashable(k)] = self._reply(vs[i], resp, depth + 1)
            return out
        if kind == b"set":
            ks, n = parts[1], int(parts[2])
            return {_hashable(self._reply(ks[i], resp, depth + 1)) for i in range(1, n + 1)}
        return None  # functions, userdata, threads: Redis replies null

    # -- reply -> Lua -------------------------------------------------------------------------

    def _to_lua(self, value: object, resp: int) -> object:
        if isinstance(value, bytes):
            return value
        if isinstance(value, SimpleString):
            return self._lua.table_from({b"ok": value.encode("utf-8", "replace")})
        if isinstance(value, RespError):
            return self._lua.table_from({b"err": normalize_error("-" + value.message).encode()})
        if isinstance(value, bool):
            return value if resp == 3 else int(value)
        if isinstance(value, int):
            return value
        if value is None or value is NULL_ARRAY:
            return None if resp == 3 else False
        if isinstance(value, float):
            if resp == 3:
                return self._lua.table_from({b"double": value})
            return _format_double(value)
        if isinstance(value, str):
            return value.encode("utf-8", "replace")
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if isinstance(value, dict):
            if resp == 3:
                inner = self._lua.table()
                for k, v in value.items():
                    inner[self._to_lua(k, resp)] = self._to_lua(v, resp)
                return self._lua.table_from({b"map": inner})
            flat: list[object] = []
            for k, v in value.items():
                flat.extend((k, v))
            return self._array(flat, resp)
        if isinstance(value, set | frozenset):
            if resp == 3:
                inner = self._lua.table()
                for member in value:
                    inner[self._to_lua(member, resp)] = True
                return self._lua.table_from({b"set": inner})
            return self._array(value, resp)
        if isinstance(value, list | tuple | Push):
            return self._array(value, resp)
        raise TypeError(f"cannot convert {type(value).__name__} reply for Lua")

    def _array(self, items: Iterable[object], resp: int) -> object:
        return self._lua.table_from([self._to_lua(v, resp) for v in items])

    # -- callbacks from Lua -------------------------------------------------------------------

    def _error_table(self, text: str) -> object:
        return self._lua.table_from({b"err": normalize_error(text).encode()})

    def _bridge_call(self, *args: object) -> object:
        reply, failed = self._execute(args)
        if failed:
            raise _LuaRaise(reply)
        return reply

    def _bridge_pcall(self, *args: object) -> object:
        return self._execute(args)[0]

    def _execute(self, args: tuple[object, ...]) -> tuple[object, bool]:
        ctx, call = self._ctx, self._call
        if ctx is None or call is None:
            return (
                self._error_table("redis.call/pcall can only be called inside a script invocation"),
                True,
            )
        if not args:
            message = "Please specify at least one argument for this redis lib call"
            return self._error_table(message), True
        argv: list[bytes] = []
        for a in args:
            if isinstance(a, bytes):
                argv.append(a)
            elif isinstance(a, int | float) and not isinstance(a, bool):
                # Redis formats numbers with %.17g (lua_tolstring would lose precision).
                argv.append(b"%.17g" % float(a))
            else:
                message = "Lua redis lib command arguments must be strings or integers"
                return self._error_table(message), True
        try:
            reply = call(argv, ctx)
        except RespError as e:
            return self._error_table("-" + e.message), True
        except Exception:  # a bug in a handler must not take the script engine down
            log.exception("command %r failed inside a script", argv[0])
            return self._error_table("-ERR internal error running the command from script"), True
        if isinstance(reply, RespError):
            return self._error_table("-" + reply.message), True
        try:
            return self._to_lua(reply, ctx.resp), False
        except Exception:
            log.exception("the reply of %r cannot be converted for Lua", argv[0])
            return self._error_table("-ERR reply cannot be converted for Lua"), True

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Our Python code called from Lua raises only Lua error tables, never Python errors."""

        def guarded(*args: Any) -> Any:
            try:
                return fn(*args)
            except _LuaRaise:
                raise
            except Exception as e:
                log.exception("Lua bridge function %s failed", getattr(fn, "__name__", fn))
                raise _LuaRaise(self._error_table(f"internal error: {e}")) from None

        return guarded

    def _lua_error(self, message: str | bytes) -> NoReturn:
        """Raise a string error the way a C library function does (caller's position first)."""
        text = message.encode() if isinstance(message, str) else message
        raise _LuaRaise(bytes(self._where()) + text)

    def _bridge_json_encode(self, *args: object) -> object:
        if len(args) != 1:
            self._lua_error("bad argument #1 to 'encode' (expected 1 argument)")
        ok, value = self._json_encode(args[0])
        if not ok:
            if isinstance(value, bytes):
                self._lua_error(value)
            raise _LuaRaise(value)  # not ours (the time limit's kill): pass it on
        return value

    def _bridge_json_decode(self, *args: object) -> object:
        if len(args) != 1:
            self._lua_error("bad argument #1 to 'decode' (expected 1 argument)")
        text = _lua_tostring(args[0])
        if text is None:
            got = _lua_typename(args[0])
            self._lua_error(f"bad argument #1 to 'decode' (string expected, got {got})")
        try:
            return lua_cjson.decode(
                text, self._json_null, array=self._lua.table_from, obj=self._lua.table_from
            )
        except lua_cjson.CJSONError as e:
            self._lua_error(str(e))

    # cmsgpack ---------------------------------------------------------------------------------

    def _bridge_msgpack_pack(self, *args: object) -> bytes:
        if not args:
            self._lua_error("bad argument #0 to 'pack' (MessagePack pack needs input.)")
        out = bytearray()
        for arg in args:
            self._msgpack_encode(arg, 0, out)
        return bytes(out)

    def _msgpack_encode(self, value: object, level: int, out: bytearray) -> None:
        if isinstance(value, bytes):
            lua_cmsgpack.encode_bytes(value, out)
        elif isinstance(value, bool):
            out.append(0xC3 if value else 0xC2)
        elif isinstance(value, int | float):
            lua_cmsgpack.encode_number(value, out)
        elif lupa_type(value) == "table" and level < lua_cmsgpack.MAX_NESTING:
            table: Any = value
            if self._msgpack_is_array(table):
                n = len(table)
                lua_cmsgpack.encode_array_header(n, out)
                for j in range(1, n + 1):
                    self._msgpack_encode(table[j], level + 1, out)
            else:
                items = list(table.items())
                lua_cmsgpack.encode_map_header(len(items), out)
                for k, v in items:
                    self._msgpack_encode(k, level + 1, out)
                    self._msgpack_encode(v, level + 1, out)
        else:  # nil, functions, userdata, threads, and tables nested too deep
            out.append(0xC0)

    @staticmethod
    def _msgpack_is_array(table: Any) -> bool:
        count = top = 0
        for key in table:
            if isinstance(key, bool) or not isinstance(key, int | float):
                return False
            if key <= 0 or not lua_cmsgpack.is_int_equivalent(float(key)):
                return False
            top = max(top, int(key))
            count += 1
        return top == count

    def _msgpack_unpack(self, name: str, args: tuple[object, ...], limit: int, offset: int) -> Any:
        data = _lua_tostring(args[0]) if args else None
        if data is None:
            got = _lua_typename(args[0]) if args else "no value"
            self._lua_error(f"bad argument #1 to '{name}' (string expected, got {got})")
        decode_all = not limit and not offset
        if offset < 0 or limit < 0:
            self._lua_error(
                f"Invalid request to unpack with offset of {offset} and limit of {len(data)}."
            )
        if offset > len(data):
            self._lua_error(f"Start offset {offset} greater than input length {len(data)}.")
        try:
            values, end = lua_cmsgpack.decode(
                data,
                offset,
                None if decode_all else limit,
                self._msgpack_array,
                self._msgpack_map,
            )
        except lua_cmsgpack.MsgpackError as e:
            self._lua_error(str(e))
        out = [None if v is lua_cmsgpack.NIL else v for v in values]
        if not decode_all:
            out.insert(0, -1 if end == len(data) else end)
        return tuple(out)

    def _msgpack_array(self, items: list[Any]) -> object:
        return self._lua.table_from([None if v is lua_cmsgpack.NIL else v for v in items])

    def _msgpack_map(self, pairs: list[tuple[Any, Any]]) -> object:
        table = self._lua.table()
        for k, v in pairs:
            if k is lua_cmsgpack.NIL:
                raise _LuaRaise(b"table index is nil")
            if isinstance(k, float) and math.isnan(k):
                raise _LuaRaise(b"table index is NaN")
            table[k] = None if v is lua_cmsgpack.NIL else v
        return table

    def _int_arg(self, name: str, args: tuple[object, ...], n: int, default: int | None) -> int:
        value = args[n - 1] if len(args) >= n else None
        if value is None and default is not None:
            return default
        number = _lua_tonumber(value)
        if number is None or math.isnan(number) or math.isinf(number):
            got = _lua_typename(value) if len(args) >= n else "no value"
            self._lua_error(f"bad argument #{n} to '{name}' (number expected, got {got})")
        return int(number)

    def _bridge_msgpack_unpack(self, *args: object) -> Any:
        return self._msgpack_unpack("unpack", args, 0, 0)

    def _bridge_msgpack_unpack_one(self, *args: object) -> Any:
        offset = self._int_arg("unpack_one", args, 2, 0)
        return self._msgpack_unpack("unpack_one", args[:1], 1, offset)

    def _bridge_msgpack_unpack_limit(self, *args: object) -> Any:
        limit = self._int_arg("unpack_limit", args, 2, None)
        offset = self._int_arg("unpack_limit", args, 3, 0)
        return self._msgpack_unpack("unpack_limit", args[:1], limit, offset)

    # struct -----------------------------------------------------------------------------------

    def _string_arg(self, name: str, args: tuple[object, ...], n: int) -> bytes:
        text = _lua_tostring(args[n - 1]) if len(args) >= n else None
        if text is None:
            got = _lua_typename(args[n - 1]) if len(args) >= n else "no value"
            self._lua_error(f"bad argument #{n} to '{name}' (string expected, got {got})")
        return text

    def _bridge_struct_pack(self, *args: object) -> bytes:
        fmt = self._string_arg("pack", args, 1)
        try:
            return lua_struct.pack(fmt, args[1:], _lua_tonumber, _lua_tostring)
        except lua_struct.StructError as e:
            self._lua_error(str(e))

    def _bridge_struct_unpack(self, *args: object) -> Any:
        fmt = self._string_arg("unpack", args, 1)
        data = self._string_arg("unpack", args, 2)
        pos = self._int_arg("unpack", args, 3, 1)
        try:
            return tuple(lua_struct.unpack(fmt, data, pos))
        except lua_struct.StructError as e:
            self._lua_error(str(e))

    def _bridge_struct_size(self, *args: object) -> int:
        fmt = self._string_arg("size", args, 1)
        try:
            return lua_struct.size(fmt)
        except lua_struct.StructError as e:
            self._lua_error(str(e))

    def _raise(self, text: str) -> NoReturn:
        raise _LuaRaise(self._error_table(text))

    def _bridge_sha1hex(self, *args: object) -> bytes:
        if len(args) != 1:
            self._raise("wrong number of arguments")
        return sha1hex(_lua_tostring(args[0]) or b"").encode()

    def _bridge_log(self, *args: object) -> None:
        if len(args) < 2:
            self._raise("redis.log() requires two arguments or more.")
        level = _lua_tonumber(args[0])
        if level is None:
            self._raise("First argument must be a number (log level).")
        if not 0 <= level < 4:
            self._raise("Invalid debug level.")
        parts: list[bytes] = []
        for j, arg in enumerate(args[1:], 1):
            text = _lua_tostring(arg)
            if text is not None:
                parts.append(text if j == 1 else b" " + text)
        py_level = (logging.DEBUG, logging.DEBUG, logging.INFO, logging.WARNING)[int(level)]
        log.log(py_level, "%s", _text(b"".join(parts)))

    def _bridge_setresp(self, *args: object) -> None:
        if self._ctx is None:
            self._raise("redis.setresp can only be called inside a script invocation")
        if len(args) != 1:
            self._raise("redis.setresp() requires one argument.")
        resp = _lua_tonumber(args[0])
        if resp not in (2.0, 3.0) or resp is None:
            self._raise("RESP version must be 2 or 3.")
        self._ctx.resp = int(resp)

    def _bridge_set_repl(self, *args: object) -> None:
        if len(args) != 1:
            self._raise("redis.set_repl() requires two arguments.")
        flags = _lua_tonumber(args[0])
        if flags is None or not 0 <= flags < 4:
            self._raise(
                "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
            )


def lupa_errors() -> tuple[type[BaseException], ...]:
    from lupa import lua51

    return (lua51.LuaError,)


def lupa_type(value: object) -> str | None:
    from lupa import lua51

    kind = lua51.lua_type(value)
    return kind if isinstance(kind, str) else None


def _lua_typename(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, bytes):
        return "string"
    return lupa_type(value) or "userdata"


def _lua_tostring(value: object) -> bytes | None:
    """lua_tolstring: strings as they are, numbers as Lua prints them (%.14g), else None."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return b"%.14g" % float(value)
    return None


def _lua_tonumber(value: object) -> float | None:
    """lua_isnumber / lua_tonumber: numbers and numeric strings."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bytes):
        text = value.strip()
        try:
            return float(int(text, 16)) if text.lower().startswith(b"0x") else float(text)
        except ValueError:
            return None
    return None


class _LuaRaise(Exception):  # carries a Lua error value (table or string) through lupa
    def __init__(self, value: object) -> None:
        super().__init__("Lua error raised from Python")
        self.value = value


def _unwrap(error: object) -> object:
    return error.value if isinstance(error, _LuaRaise) else None


def _hashable(value: object) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict | set):
        return repr(value)
    return value
