"""Random command sequences per data type, against our server and Debian's redis-server.

Every reply (errors included, with their text) must be the same; replies whose order Redis
leaves unspecified (set members, hash fields) are compared sorted. Random commands (SPOP,
SRANDMEMBER, HRANDFIELD) are checked for shape in test_types_commands.py instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resp.harness import ServerProcess, start_server
from resp.typeharness import Raw, redis_server_process

KEYS = [b"k1", b"k2", b"str"]
key = st.sampled_from(KEYS)
member = st.sampled_from([b"a", b"b", b"c", b"d", b"aa", b""])
value = st.sampled_from([b"1", b"-2", b"x", b"10", b"1.5", b"", b"9223372036854775807"])
index = st.integers(-6, 6).map(lambda i: str(i).encode())
count = st.integers(-3, 4).map(lambda i: str(i).encode())
# Out of a double's range: ZADD refuses them (strtod's ERANGE), a range bound reads inf or 0.
HUGE = [b"1e400", b"9" * 400, b"-1e400", b"1e-400"]
score = st.sampled_from(
    [b"0", b"1", b"-1", b"1.5", b"2", b"-inf", b"+inf", b"3", b"x", b"nan", *HUGE]
)
bound = st.sampled_from(
    [b"0", b"1", b"(1", b"1.5", b"(1.5", b"-inf", b"+inf", b"(2", b"3", b"x", b"(1e400", *HUGE]
)
lexb = st.sampled_from([b"-", b"+", b"[a", b"(a", b"[b", b"(c", b"[aa", b"x"])


def cmd(*parts: Any) -> Any:
    return st.tuples(*[p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts])


def many(s: st.SearchStrategy[bytes], lo: int = 1, hi: int = 3) -> Any:
    return st.lists(s, min_size=lo, max_size=hi)


def flat(*parts: Any) -> st.SearchStrategy[list[bytes]]:
    """A command line from parts: bytes, strategies of bytes, or strategies of lists."""

    def build(values: tuple[Any, ...]) -> list[bytes]:
        out: list[bytes] = []
        for v in values:
            if isinstance(v, list | tuple):
                out.extend(v)
            else:
                out.append(v)
        return out

    return cmd(*parts).map(build)


common = st.one_of(
    flat(b"TYPE", key),
    flat(b"EXISTS", many(key)),
    flat(b"DEL", many(key)),
    flat(b"GET", key),
    flat(b"SET", key, value),
    flat(b"MSET", key, value, key, value),
    flat(b"INCR", key),
    flat(b"APPEND", key, value),
    flat(b"RENAME", key, key),
    flat(b"EXPIRE", key, st.sampled_from([b"100", b"0", b"-1"])),
    flat(b"TTL", key),
    flat(b"PERSIST", key),
    flat(b"DBSIZE"),
)

hash_cmds = st.one_of(
    flat(b"HSET", key, many(cmd(member, value), 1, 3).map(lambda ps: [x for p in ps for x in p])),
    flat(b"HSET", key, member),
    flat(b"HMSET", key, member, value),
    flat(b"HSETNX", key, member, value),
    flat(b"HGET", key, member),
    flat(b"HMGET", key, many(member)),
    flat(b"HDEL", key, many(member)),
    flat(b"HEXISTS", key, member),
    flat(b"HGETALL", key),
    flat(b"HKEYS", key),
    flat(b"HVALS", key),
    flat(b"HLEN", key),
    flat(b"HSTRLEN", key, member),
    flat(b"HINCRBY", key, member, st.sampled_from([b"1", b"-5", b"x", b"9223372036854775807"])),
    flat(b"HINCRBYFLOAT", key, member, st.sampled_from([b"1.5", b"-2", b"x", b"inf"])),
    flat(b"HSCAN", key, b"0"),
    flat(b"HSCAN", key, b"0", b"MATCH", st.sampled_from([b"a*", b"?", b"*"])),
    flat(b"HRANDFIELD", key, b"0"),
    common,
)

list_cmds = st.one_of(
    flat(st.sampled_from([b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX"]), key, many(member)),
    flat(st.sampled_from([b"LPOP", b"RPOP"]), key),
    flat(st.sampled_from([b"LPOP", b"RPOP"]), key, count),
    flat(b"LLEN", key),
    flat(b"LRANGE", key, index, index),
    flat(b"LINDEX", key, index),
    flat(b"LSET", key, index, member),
    flat(b"LREM", key, count, member),
    flat(b"LTRIM", key, index, index),
    flat(b"LINSERT", key, st.sampled_from([b"BEFORE", b"AFTER", b"x"]), member, member),
    flat(b"LPOS", key, member),
    flat(b"LPOS", key, member, b"RANK", st.sampled_from([b"1", b"-1", b"2", b"0"])),
    flat(b"LPOS", key, member, b"COUNT", st.sampled_from([b"0", b"1", b"2", b"-1"])),
    flat(b"LPOS", key, member, b"RANK", b"-2", b"COUNT", b"0", b"MAXLEN", b"3"),
    flat(b"LMOVE", key, key, st.sampled_from([b"LEFT", b"RIGHT"]),
         st.sampled_from([b"LEFT", b"RIGHT", b"UP"])),
    flat(b"RPOPLPUSH", key, key),
    flat(st.sampled_from([b"BLPOP", b"BRPOP"]), many(key), b"0.01"),
    flat(b"BLMOVE", key, key, b"LEFT", b"RIGHT", b"0.01"),
    flat(b"BRPOPLPUSH", key, key, b"0.01"),
    common,
)

set_cmds = st.one_of(
    flat(b"SADD", key, many(member)),
    flat(b"SREM", key, many(member)),
    flat(b"SMEMBERS", key),
    flat(b"SISMEMBER", key, member),
    flat(b"SMISMEMBER", key, many(member)),
    flat(b"SCARD", key),
    flat(b"SMOVE", key, key, member),
    flat(st.sampled_from([b"SINTER", b"SUNION", b"SDIFF"]), many(key)),
    flat(st.sampled_from([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"]), key, many(key)),
    flat(b"SINTERCARD", st.sampled_from([b"1", b"2", b"0", b"5"]), key, key),
    flat(b"SINTERCARD", b"2", key, key, b"LIMIT", st.sampled_from([b"0", b"1", b"-1"])),
    flat(b"SSCAN", key, b"0"),
    flat(b"SPOP", key, b"0"),
    flat(b"SRANDMEMBER", key, b"0"),
    common,
)

zset_cmds = st.one_of(
    flat(b"ZADD", key, many(cmd(score, member), 1, 3).map(lambda ps: [x for p in ps for x in p])),
    flat(b"ZADD", key,
         st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"]), max_size=2,
                  unique=True),
         score, member),
    flat(b"ZINCRBY", key, score, member),
    flat(b"ZREM", key, many(member)),
    flat(b"ZSCORE", key, member),
    flat(b"ZMSCORE", key, many(member)),
    flat(b"ZCARD", key),
    flat(b"ZCOUNT", key, bound, bound),
    flat(b"ZLEXCOUNT", key, lexb, lexb),
    flat(st.sampled_from([b"ZRANK", b"ZREVRANK"]), key, member),
    flat(b"ZRANGE", key, index, index),
    flat(b"ZRANGE", key, index, index, b"WITHSCORES"),
    flat(b"ZRANGE", key, index, index, b"REV", b"WITHSCORES"),
    flat(b"ZRANGE", key, bound, bound, b"BYSCORE"),
    flat(b"ZRANGE", key, bound, bound, b"BYSCORE", b"REV", b"WITHSCORES"),
    flat(b"ZRANGE", key, bound, bound, b"BYSCORE", b"LIMIT", index, count),
    flat(b"ZRANGE", key, bound, bound, b"BYSCORE", b"REV", b"LIMIT", index, count),
    flat(b"ZRANGE", key, lexb, lexb, b"BYLEX"),
    flat(b"ZRANGE", key, lexb, lexb, b"BYLEX", b"REV", b"LIMIT", index, count),
    flat(b"ZRANGE", key, index, index, b"LIMIT", b"0", b"1"),
    flat(b"ZRANGEBYSCORE", key, bound, bound),
    flat(b"ZRANGEBYSCORE", key, bound, bound, b"WITHSCORES", b"LIMIT", index, count),
    flat(b"ZREVRANGEBYSCORE", key, bound, bound, b"WITHSCORES"),
    flat(b"ZREVRANGEBYSCORE", key, bound, bound, b"LIMIT", index, count),
    flat(b"ZRANGEBYLEX", key, lexb, lexb),
    flat(b"ZRANGEBYLEX", key, lexb, lexb, b"LIMIT", index, count),
    flat(b"ZREMRANGEBYSCORE", key, bound, bound),
    flat(b"ZREMRANGEBYRANK", key, index, index),
    flat(st.sampled_from([b"ZPOPMIN", b"ZPOPMAX"]), key),
    flat(st.sampled_from([b"ZPOPMIN", b"ZPOPMAX"]), key, count),
    flat(b"ZSCAN", key, b"0"),
    common,
)

sid = st.sampled_from([b"1-1", b"1-2", b"2", b"3-0", b"0-0", b"1", b"x", b"5-*", b"0-1"])
rng = st.sampled_from([b"-", b"+", b"1-1", b"(1-1", b"2", b"(3", b"0", b"x"])
stream_cmds = st.one_of(
    flat(b"XADD", key, sid,
         many(cmd(member, value), 1, 2).map(lambda ps: [x for p in ps for x in p])),
    flat(b"XADD", key, b"NOMKSTREAM", sid, member, value),
    flat(b"XADD", key, b"MAXLEN", st.sampled_from([b"=", b"~"]), st.sampled_from([b"1", b"2"]),
         sid, member, value),
    flat(b"XADD", key, sid, member),
    flat(b"XLEN", key),
    flat(b"XRANGE", key, rng, rng),
    flat(b"XRANGE", key, rng, rng, b"COUNT", st.sampled_from([b"1", b"2", b"0"])),
    flat(b"XREVRANGE", key, rng, rng),
    flat(b"XREVRANGE", key, rng, rng, b"COUNT", b"1"),
    flat(b"XDEL", key, many(sid)),
    flat(b"XTRIM", key, st.sampled_from([b"MAXLEN", b"MINID"]), st.sampled_from([b"1", b"2-0"])),
    flat(b"XREAD", b"COUNT", b"2", b"STREAMS", key, st.sampled_from([b"0", b"1-1", b"$"])),
    flat(b"XREAD", b"STREAMS", key, key, b"0", b"1-1"),
    flat(b"XREAD", b"BLOCK", b"10", b"STREAMS", key, b"$"),
    flat(b"XREAD", b"STREAMS", key),
    common,
)

UNORDERED = {b"SMEMBERS", b"SINTER", b"SUNION", b"SDIFF", b"HKEYS", b"HVALS"}
PAIRS = {b"HGETALL"}
SCANS = {b"HSCAN", b"SSCAN"}


def normalize(argv: list[bytes], reply: Any) -> Any:
    name = argv[0].upper()
    if isinstance(reply, list):
        if name in UNORDERED:
            return sorted(reply)
        if name in PAIRS:
            return sorted(zip(reply[::2], reply[1::2], strict=True))
        if name in SCANS and len(reply) == 2 and isinstance(reply[1], list):
            items = reply[1]
            if name == b"HSCAN":
                return [reply[0], sorted(zip(items[::2], items[1::2], strict=True))]
            return [reply[0], sorted(items)]
    return reply


@pytest.fixture(scope="module", params=[2, 3], ids=["resp2", "resp3"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Raw, Raw]]:
    tmp: Path = tmp_path_factory.mktemp("types-diff")
    ours: ServerProcess = start_server(tmp)
    try:
        with redis_server_process(tmp) as port:
            if port is None:
                pytest.skip("redis-server is not installed (Debian package redis-server)")
            a, b = Raw(ours.port, request.param), Raw(port, request.param)
            yield a, b
            a.close()
            b.close()
    finally:
        assert ours.stop() == 0, ours.log()


def run_both(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    ours, theirs = servers
    for conn in (ours, theirs):
        conn("FLUSHALL")
        conn("SET", "str", "hello")
    for i, argv in enumerate(seq):
        got = normalize(argv, ours(*argv))
        want = normalize(argv, theirs(*argv))
        assert got == want, f"step {i}: {argv!r}\nours:  {got!r}\nredis: {want!r}\n{seq[:i + 1]}"


SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(seq=st.lists(hash_cmds, min_size=1, max_size=25))
def test_hashes_match_redis(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    run_both(servers, seq)


@SETTINGS
@given(seq=st.lists(list_cmds, min_size=1, max_size=25))
def test_lists_match_redis(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    run_both(servers, seq)


@SETTINGS
@given(seq=st.lists(set_cmds, min_size=1, max_size=25))
def test_sets_match_redis(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    run_both(servers, seq)


@SETTINGS
@given(seq=st.lists(stream_cmds, min_size=1, max_size=25))
def test_streams_match_redis(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    run_both(servers, seq)


@SETTINGS
@given(seq=st.lists(zset_cmds, min_size=1, max_size=25))
def test_zsets_match_redis(servers: tuple[Raw, Raw], seq: list[list[bytes]]) -> None:
    run_both(servers, seq)


def test_scores_out_of_a_doubles_range_match_redis(servers: tuple[Raw, Raw]) -> None:
    seq = [[b"ZADD", b"k1", b"1", b"a"]]
    for huge in HUGE:
        seq += [
            [b"ZADD", b"k1", huge, b"b"],
            [b"ZINCRBY", b"k1", huge, b"a"],
            [b"ZCOUNT", b"k1", huge, b"+inf"],
            [b"ZRANGEBYSCORE", b"k1", b"-inf", b"(" + huge],
        ]
    run_both(servers, seq)
