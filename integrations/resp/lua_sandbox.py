"""The Lua side of the script sandbox (see scripting.py): the bootstrap chunk and ``bit``.

``BOOTSTRAP`` runs once per Lua VM with the real globals: it builds the sandbox environment the
scripts see (read-only proxies of the allowed globals and libraries, ``redis.*``, ``bit``,
``cjson.encode``), the error handler, the time-limit hook and the run / classify helpers, then
removes the dangerous globals. Chunk name ``INTERNAL`` marks our frames: the hook never
interrupts them and error positions skip them.
"""

from __future__ import annotations

INTERNAL = "=faster_backend"


def tobit(x: float | int) -> int:
    # LuaBitOp's normalisation: round to nearest (even), keep the low 32 bits, signed.
    v = round(x) & 0xFFFFFFFF if isinstance(x, float) else x & 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def bit(op: bytes, *args: float | int) -> int | bytes:
    xs = [tobit(a) for a in args]
    if op == b"tobit":
        return xs[0]
    if op == b"bnot":
        return tobit(~xs[0])
    if op in (b"band", b"bor", b"bxor"):
        acc = xs[0]
        for x in xs[1:]:
            acc = acc & x if op == b"band" else acc | x if op == b"bor" else acc ^ x
        return tobit(acc)
    if op == b"bswap":
        u = xs[0] & 0xFFFFFFFF
        return tobit(int.from_bytes(u.to_bytes(4, "little"), "big"))
    if op == b"tohex":
        n = xs[1] if len(xs) > 1 else 8
        upper, n = n < 0, min(abs(n), 8)
        if n == 0:
            return b""
        digits = "%0*X" if upper else "%0*x"
        return (digits % (n, xs[0] & ((1 << (4 * n)) - 1))).encode()
    u, n = xs[0] & 0xFFFFFFFF, xs[1] & 31
    if op == b"lshift":
        return tobit(u << n)
    if op == b"rshift":
        return tobit(u >> n)
    if op == b"arshift":
        return tobit(xs[0] >> n)
    if op == b"rol":
        return tobit((u << n) | (u >> (32 - n)) if n else u)
    if op == b"ror":
        return tobit((u >> n) | (u << (32 - n)) if n else u)
    raise ValueError(op)


# Our side of the Lua state: builds the sandbox, returns the functions Python drives. It runs
# with the real globals, captures what it needs as upvalues, then removes the dangerous globals.
BOOTSTRAP = r"""
local py_call, py_pcall, py_unwrap, py_sha1, py_log, py_now, py_setresp, py_set_repl, py_bit,
      py_json_encode, py_json_decode, py_msgpack, py_struct, version, version_num,
      hook_every = ...
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
                   py_json_encode, py_json_decode, py_msgpack.pack, py_msgpack.unpack,
                   py_msgpack.unpack_one, py_msgpack.unpack_limit, py_struct.pack,
                   py_struct.unpack, py_struct.size} do
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

-- cmsgpack (lua-cmsgpack 0.4.0): all in Python, see lua_cmsgpack.py.
G.cmsgpack = protect({
  pack = py_msgpack.pack,
  unpack = py_msgpack.unpack,
  unpack_one = py_msgpack.unpack_one,
  unpack_limit = py_msgpack.unpack_limit,
  _NAME = 'cmsgpack',
  _VERSION = 'lua-cmsgpack 0.4.0',
  _COPYRIGHT = 'Copyright (C) 2012, Salvatore Sanfilippo',
  _DESCRIPTION = 'MessagePack C implementation for Lua',
})

-- struct (lua_struct 0.2): in Python, see lua_struct.py.
G.struct = protect({pack = py_struct.pack, unpack = py_struct.unpack, size = py_struct.size})

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
