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
from dataclasses import dataclass, field
from typing import Any, NoReturn

from faster_backend.integrations.resp import lua_cjson
from faster_backend.integrations.resp.types import NULL_ARRAY, Push, RespError, SimpleString

log = logging.getLogger("faster_backend.resp.scripting")

NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
NOTBUSY = "NOTBUSY No scripts in execution right now."
ERR_UNKNOWN_COMMAND = "ERR Unknown Redis command called from script"
ERR_WRONG_ARITY = "ERR Wrong number of args calling Redis command from script"
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

_INTERNAL = "=faster_backend"  # chunk name of our own Lua code: never interrupted, never blamed
_HOOK_EVERY = 100_000  # VM instructions between time-limit checks, as Redis does
_LLONG_MIN = -(2**63)
_INT_RE = re.compile(rb"(?:0|-?[1-9][0-9]*)\Z")


@dataclass
class ScriptContext:
    """State of one script run, passed to the command callable with every redis.call."""

    script: Script
    read_only: bool
    resp: int = 2
    wrote: bool = False  # the callable sets this when a write command ran
    extra: dict[str, Any] = field(default_factory=dict)  # room for the host's per-run state


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


def _tobit(x: float | int) -> int:
    # LuaBitOp's normalisation: round to nearest (even), keep the low 32 bits, signed.
    v = round(x) & 0xFFFFFFFF if isinstance(x, float) else x & 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _bit(op: bytes, *args: float | int) -> int | bytes:
    xs = [_tobit(a) for a in args]
    if op == b"tobit":
        return xs[0]
    if op == b"bnot":
        return _tobit(~xs[0])
    if op in (b"band", b"bor", b"bxor"):
        acc = xs[0]
        for x in xs[1:]:
            acc = acc & x if op == b"band" else acc | x if op == b"bor" else acc ^ x
        return _tobit(acc)
    if op == b"bswap":
        u = xs[0] & 0xFFFFFFFF
        return _tobit(int.from_bytes(u.to_bytes(4, "little"), "big"))
    if op == b"tohex":
        n = xs[1] if len(xs) > 1 else 8
        upper, n = n < 0, min(abs(n), 8)
        if n == 0:
            return b""
        digits = "%0*X" if upper else "%0*x"
        return (digits % (n, xs[0] & ((1 << (4 * n)) - 1))).encode()
    u, n = xs[0] & 0xFFFFFFFF, xs[1] & 31
    if op == b"lshift":
        return _tobit(u << n)
    if op == b"rshift":
        return _tobit(u >> n)
    if op == b"arshift":
        return _tobit(xs[0] >> n)
    if op == b"rol":
        return _tobit((u << n) | (u >> (32 - n)) if n else u)
    if op == b"ror":
        return _tobit((u >> n) | (u << (32 - n)) if n else u)
    raise ValueError(op)


# Our side of the Lua state: builds the sandbox, returns the functions Python drives. It runs
# with the real globals, captures what it needs as upvalues, then removes the dangerous globals.
_BOOTSTRAP = r"""
local py_call, py_pcall, py_unwrap, py_sha1, py_log, py_now, py_setresp, py_set_repl, py_bit,
      py_json_encode, py_json_decode, version, version_num, hook_every = ...
local INTERNAL = '=faster_backend'
local _G = _G
local type, error, tostring, tonumber = type, error, tostring, tonumber
local select, unpack, next = select, unpack, next
local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local pcall, xpcall, loadstring, getfenv, setfenv = pcall, xpcall, loadstring, getfenv, setfenv
local newproxy = newproxy
local dbg, concat = debug, table.concat
local sbyte, ssub, sfind, sgsub = string.byte, string.sub, string.find, string.gsub
local co_create, co_resume = coroutine.create, coroutine.resume

local function pack(...) return {n = select('#', ...), ...} end

-- redis.call is the Python callable itself (a C-level call, so `return redis.call(...)` keeps
-- the script's frame for error positions); it raises its error table wrapped in a Python
-- exception, which every place that sees Lua errors unwraps.
local function unwrap(e)
  if type(e) == 'userdata' then
    local t = py_unwrap(e)
    if t ~= nil then return t end
  end
  return e
end

local readonly = setmetatable({}, {__mode = 'k'})
local function ro_error() error('Attempt to modify a readonly table', 2) end
local function protect(t)
  local proxy = setmetatable({}, {__index = t, __newindex = ro_error, __metatable = false})
  readonly[proxy] = true
  return proxy
end
local function copy(t) local c = {} for k, v in next, t do c[k] = v end return c end

-- Error tables in the form redis.pcall returns them.
local function norm_error(s)
  local code, msg
  if ssub(s, 1, 1) == '-' then
    local sp = sfind(s, ' ', 1, true)
    if sp then
      code, msg = ssub(s, 2, sp - 1), ssub(s, sp + 1)
    else
      code, msg = 'ERR', ssub(s, 2)
    end
  else
    code, msg = 'ERR', s
  end
  msg = (sgsub(sgsub(msg, '^[\r\n]+', ''), '[\r\n]+$', ''))
  return code .. ' ' .. msg
end
local function err_table(s) return {err = norm_error(s)} end

-- Time limit: a count hook on every thread the script runs on.
local deadline, hook_count, killed = nil, 0, false
local function hook()
  local info = dbg.getinfo(2, 'S')
  if info and info.source == INTERNAL then return end
  if not killed then
    if deadline == nil or py_now() < deadline then return end
    killed = true
  end
  -- Fire on every instruction from now on so pcall loops cannot swallow the kill.
  dbg.sethook(hook, '', 1)
  error({err = 'ERR Script killed after exceeding the time limit (lua-time-limit)'}, 0)
end

local ENV  -- the sandbox globals proxy, set below

local G = {}
for _, k in next, {'assert', 'collectgarbage', 'error', 'gcinfo', 'ipairs', 'next',
                   'pairs', 'rawequal', 'rawget', 'select', 'getmetatable',
                   'tonumber', 'tostring', 'unpack', '_VERSION'} do
  G[k] = _G[k]
end

-- A new metatable could carry __gc, which Lua runs with hooks off (no time limit).
G.newproxy = function(x)
  if x == true then error('newproxy(true) is not allowed in scripts', 2) end
  return newproxy(x)
end

-- redis.call & co. are Python callables (C-level calls, so `return redis.call(...)` keeps the
-- script's frame for error positions). They share lupa's metatable: make them look like
-- functions and hide everything Python behind them.
local pyfuncs = setmetatable({}, {__mode = 'k'})
for _, f in next, {py_call, py_pcall, py_sha1, py_log, py_setresp, py_set_repl,
                   py_json_encode, py_json_decode} do
  pyfuncs[f] = true
end
local function not_indexable() error('attempt to index a function value', 2) end
local pmt = getmetatable(py_call)
rawset(pmt, '__index', not_indexable)
rawset(pmt, '__newindex', not_indexable)
rawset(pmt, '__tostring', function(o)
  if pyfuncs[o] then return 'function: builtin' end
  return 'userdata: host object'
end)
rawset(pmt, '__metatable', false)
G.type = function(v)
  local t = type(v)
  if t == 'userdata' and pyfuncs[v] then return 'function' end
  return t
end

-- Level 0: like Redis' VM check, the message carries no position (the handler adds it).
G.rawset = function(t, k, v)
  if readonly[t] then error('Attempt to modify a readonly table', 0) end
  return rawset(t, k, v)
end
G.setmetatable = function(t, mt)
  if readonly[t] then error('Attempt to modify a readonly table', 0) end
  return setmetatable(t, mt)
end

-- Redis' pcall hands back the message of error tables rather than the table.
G.pcall = function(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] then
    local e = unwrap(r[2])
    if type(e) == 'table' then
      local m = e.err
      if type(m) == 'string' or type(m) == 'number' then return false, m end
    end
    return false, e
  end
  return unpack(r, 1, r.n)
end
-- After a kill, Lua runs error handlers with hooks off: never hand the kill to user code.
G.xpcall = function(f, h)
  return xpcall(f, function(e)
    if killed then return e end
    return h(unwrap(e))
  end)
end

G.loadstring = function(s, name)
  if type(s) == 'string' and sbyte(s, 1) == 27 then return nil, 'binary chunks are not allowed' end
  if (name or s) == INTERNAL then name = '=?' end
  local f, e = loadstring(s, name)
  if f then setfenv(f, ENV) end
  return f, e
end
G.load = function(fn, name)
  if type(fn) ~= 'function' then
    error("bad argument #1 to 'load' (function expected, got " .. type(fn) .. ')', 2)
  end
  local parts = {}
  while true do
    local p = fn()
    if p == nil or p == '' then break end
    if type(p) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = p
  end
  return G.loadstring(concat(parts), name or '=(load)')
end
G.getfenv = function(f)
  if f == nil then f = 1 end
  if pyfuncs[f] then return ENV end
  if type(f) == 'number' and f > 0 then f = f + 1 end
  local e = getfenv(f)
  if e == _G then return ENV end
  return e
end
G.setfenv = function(f, t)
  if pyfuncs[f] then error('Attempt to modify a readonly table', 0) end
  if type(f) == 'number' then
    if f == 0 then error('Attempt to modify a readonly table', 0) end
    if f > 0 then f = f + 1 end
  end
  if getfenv(f) == _G then error('Attempt to modify a readonly table', 0) end
  return setfenv(f, t)
end

local lstring = copy(string)
G.string = protect(lstring)
G.table = protect(copy(table))
G.math = protect(copy(math))
G.os = protect({clock = os.clock})
local string_mt = getmetatable('')
string_mt.__metatable = protect({__index = G.string})

local coro = copy(coroutine)
coro.create = function(f)
  local co = co_create(f)
  if hook_count > 0 then dbg.sethook(co, hook, '', hook_count) end
  return co
end
coro.resume = function(co, ...)
  local r = pack(co_resume(co, ...))
  if not r[1] then return false, unwrap(r[2]) end
  return unpack(r, 1, r.n)
end
coro.wrap = function(f)
  local co = coro.create(f)
  return function(...)
    local r = pack(co_resume(co, ...))
    if r[1] then return unpack(r, 2, r.n) end
    if type(r[2]) == 'string' then error(r[2], 2) end
    error(unwrap(r[2]), 0)
  end
end
G.coroutine = protect(coro)

local function checknum(x, i, name)
  local v = tonumber(x)
  if v == nil then
    error("bad argument #" .. i .. " to '" .. name .. "' (number expected, got "
          .. type(x) .. ')', 3)
  end
  return v
end
local bit = {}
for _, name in next, {'tobit', 'bnot', 'bswap'} do
  bit[name] = function(x) return py_bit(name, checknum(x, 1, name)) end
end
for _, name in next, {'lshift', 'rshift', 'arshift', 'rol', 'ror'} do
  bit[name] = function(x, n) return py_bit(name, checknum(x, 1, name), checknum(n, 2, name)) end
end
for _, name in next, {'band', 'bor', 'bxor'} do
  bit[name] = function(...)
    local args = pack(...)
    for i = 1, args.n do args[i] = checknum(args[i], i, name) end
    if args.n == 0 then checknum(nil, 1, name) end
    return py_bit(name, unpack(args, 1, args.n))
  end
end
bit.tohex = function(x, n)
  if n == nil then return py_bit('tohex', checknum(x, 1, 'tohex')) end
  return py_bit('tohex', checknum(x, 1, 'tohex'), checknum(n, 2, 'tohex'))
end
G.bit = protect(bit)

-- cjson (lua-cjson 2.1 as Redis ships it): encode here, decode through Python's json module.
local cjson = {}
local cjson_null = newproxy(false)
cjson.null = cjson_null
local huge, floor, sformat, schar = math.huge, math.floor, string.format, string.char
local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['/'] = '\\/', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t', [schar(127)] = '\\u007f'}
for i = 0, 31 do
  local c = schar(i)
  if escapes[c] == nil then escapes[c] = sformat('\\u%04x', i) end
end
local function json_string(s) return '"' .. sgsub(s, '[%c"\\/]', escapes) .. '"' end
local function json_number(n)
  if n ~= n or n == huge or n == -huge then
    error('Cannot serialise number: must not be NaN or Inf', 0)
  end
  return sformat('%.14g', n)
end
local function encode_value(v, depth, out)
  local t = type(v)
  if t == 'string' then
    out[#out + 1] = json_string(v)
  elseif t == 'number' then
    out[#out + 1] = json_number(v)
  elseif t == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif v == nil or v == cjson_null then
    out[#out + 1] = 'null'
  elseif t == 'table' then
    depth = depth + 1
    if depth > 1000 then error('Cannot serialise, excessive nesting (' .. depth .. ')', 0) end
    local max, items, array = 0, 0, true
    for k in next, v do
      if type(k) == 'number' and k >= 1 and floor(k) == k then
        if k > max then max = k end
        items = items + 1
      else
        array = false
        break
      end
    end
    if array and max > items * 2 and max > 10 then
      error('Cannot serialise table: excessively sparse array', 0)
    end
    if array and max > 0 then
      out[#out + 1] = '['
      for i = 1, max do
        if i > 1 then out[#out + 1] = ',' end
        encode_value(rawget(v, i), depth, out)
      end
      out[#out + 1] = ']'
    else
      out[#out + 1] = '{'
      local first = true
      for k, val in next, v do
        if not first then out[#out + 1] = ',' end
        first = false
        local kt = type(k)
        if kt == 'string' then
          out[#out + 1] = json_string(k)
        elseif kt == 'number' then
          out[#out + 1] = '"' .. json_number(k) .. '"'
        else
          error('Cannot serialise ' .. kt .. ': table key must be a number or string', 0)
        end
        out[#out + 1] = ':'
        encode_value(val, depth, out)
      end
      out[#out + 1] = '}'
    end
  else
    error('Cannot serialise ' .. t .. ': type not supported', 0)
  end
end
-- The user-facing cjson functions are Python (C-level) calls, like redis.call; Python calls
-- this back and raises what it returns as the error.
local function json_encode(v)
  local out = {}
  local ok, err = pcall(encode_value, v, 0, out)
  if not ok then return false, err end
  return true, concat(out)
end
cjson.encode = py_json_encode
cjson.decode = py_json_decode
G.cjson = protect(cjson)

local redis = {}
redis.call = py_call
redis.pcall = py_pcall
redis.sha1hex = py_sha1
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  if ssub(e, 1, 1) ~= '-' then e = '-' .. e end
  return err_table(e)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  return {ok = s}
end
redis.log = py_log
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.setresp = py_setresp
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_ALL = 0, 1, 3
redis.REPL_SLAVE, redis.REPL_REPLICA = 2, 2
redis.set_repl = py_set_repl
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num
G.redis = protect(redis)

setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end, __metatable = false})
ENV = protect(G)
G._G = ENV

-- Remove what a sandbox escape could use; our code above holds its own references.
for _, k in next, {'python', 'io', 'os', 'package', 'require', 'module', 'dofile', 'loadfile',
                   'print', 'debug', 'load', 'loadstring', 'getfenv', 'setfenv'} do
  _G[k] = nil
end

local function handler(err)
  local level, info = 2, nil
  while true do
    info = dbg.getinfo(level, 'Sl')
    if info == nil or (info.what ~= 'C' and info.source ~= INTERNAL) then break end
    level = level + 1
  end
  err = unwrap(err)
  if type(err) ~= 'table' or readonly[err] then err = {err = 'ERR ' .. tostring(err)} end
  if info then
    rawset(err, 'source', info.source)
    rawset(err, 'line', info.currentline)
  end
  return err
end

local function compile(body)
  if sbyte(body, 1) == 27 then return nil, 'user_script: binary chunks are not allowed' end
  local f, e = loadstring(body, '@user_script')
  if not f then return nil, e end
  setfenv(f, ENV)
  return f
end

-- classify (below) turns the script's value into one reply level for Python.
local classify

local function run(fn, deadline_at, nkeys, ...)
  local n = select('#', ...)
  local keys, argv = {}, {}
  for i = 1, nkeys do keys[i] = (select(i, ...)) end
  for i = nkeys + 1, n do argv[i - nkeys] = (select(i, ...)) end
  rawset(G, 'KEYS', keys)
  rawset(G, 'ARGV', argv)
  killed = false
  if deadline_at > 0 then
    deadline, hook_count = deadline_at, hook_every
    dbg.sethook(hook, '', hook_every)
  end
  local ok, res = xpcall(fn, handler)
  if hook_count > 0 then
    dbg.sethook()
    deadline, hook_count = nil, 0
  end
  local was_killed = killed
  killed = false
  if ok then return 'ok', was_killed, classify(res) end
  if type(res) == 'table' then
    local e, src, line = rawget(res, 'err'), rawget(res, 'source'), rawget(res, 'line')
    if type(e) ~= 'string' then e = nil end
    if type(src) ~= 'string' then src = nil end
    if line ~= nil then line = tostring(line) end
    return 'table', was_killed, e, src, line
  end
  return 'string', was_killed, tostring(res)
end

-- One reply level of a script's return value, read with rawget as Redis does.
function classify(v)
  local t = type(v)
  if t ~= 'table' then return t, v end
  local x = rawget(v, 'err')
  if type(x) == 'string' then return 'err', x end
  x = rawget(v, 'ok')
  if type(x) == 'string' then return 'ok', x end
  x = rawget(v, 'double')
  if type(x) == 'number' then return 'double', x end
  x = rawget(v, 'big_number')
  if type(x) == 'string' then return 'big_number', x end
  x = rawget(v, 'verbatim_string')
  if type(x) == 'table' then
    local f, s = rawget(x, 'format'), rawget(x, 'string')
    if type(f) == 'string' and type(s) == 'string' then return 'verbatim', s, f end
  end
  x = rawget(v, 'map')
  if type(x) == 'table' then
    local ks, vs, n = {}, {}, 0
    for k, val in next, x do n = n + 1; ks[n] = k; vs[n] = val end
    return 'map', ks, vs, n
  end
  x = rawget(v, 'set')
  if type(x) == 'table' then
    local ks, n = {}, 0
    for k in next, x do n = n + 1; ks[n] = k end
    return 'set', ks, n
  end
  local a, n = {}, 0
  while true do
    local e = rawget(v, n + 1)
    if e == nil then break end
    n = n + 1
    a[n] = e
  end
  return 'array', a, n
end

-- Where a C library function would say its caller is ("user_script:3: "), for error messages
-- raised from Python: level 3 is the caller of the Python function that called us.
local function where()
  local info = dbg.getinfo(3, 'Sl')
  if info and info.what ~= 'C' and info.currentline > 0 then
    return info.short_src .. ':' .. info.currentline .. ': '
  end
  return ''
end

return compile, run, classify, cjson_null, json_encode, where
"""


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
        loader = lua.execute(
            b"return function(src) return loadstring(src, '" + _INTERNAL.encode() + b"') end"
        )
        chunk = loader(_BOOTSTRAP.encode())
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
            self._guard(_bit),
            self._guard(self._bridge_json_encode),
            self._guard(self._bridge_json_decode),
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
        kib = self._lua.eval(b"collectgarbage('count')")
        return int(float(kib) * 1024)

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
            raise RespError("ERR This Redis command is not allowed from script")
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

    def _reply(self, value: object, resp: int) -> object:
        res = self._classify(value)
        return self._reply_parts(res if isinstance(res, tuple) else (res,), resp)

    def _reply_parts(self, parts: tuple[Any, ...], resp: int) -> object:
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
            return [self._reply(table[i], resp) for i in range(1, n + 1)]
        if kind == b"map":
            ks, vs, n = parts[1], parts[2], int(parts[3])
            out: dict[Any, object] = {}
            for i in range(1, n + 1):
                k = self._reply(ks[i], resp)
                out[_hashable(k)] = self._reply(vs[i], resp)
            return out
        if kind == b"set":
            ks, n = parts[1], int(parts[2])
            return {_hashable(self._reply(ks[i], resp)) for i in range(1, n + 1)}
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
            kind = "nil" if args[0] is None else "boolean" if isinstance(args[0], bool) else (
                lupa_type(args[0]) or "userdata"
            )
            self._lua_error(f"bad argument #1 to 'decode' (string expected, got {kind})")
        try:
            return lua_cjson.decode(
                text, self._json_null, array=self._lua.table_from, obj=self._lua.table_from
            )
        except lua_cjson.CJSONError as e:
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


def _lua_tostring(value: object) -> bytes | None:
    """lua_tolstring: strings as they are, numbers as Lua prints them (%.14g), else None."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        f = float(value)
        if f.is_integer() and abs(f) < 1e15:
            return b"%d" % int(f)
        return (b"%.14g" % f).replace(b"inf", b"inf")
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
