"""Hashes, lists, sets and sorted sets through redis-py (RESP2 and RESP3): replies as the client
library parses them, types across commands, TTLs, random commands, Lua, WATCH."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("types"))
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(srv: ServerProcess, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    c = redis.Redis(port=srv.port, protocol=request.param)
    c.flushall()
    yield c
    c.close()


def pairs(reply: list[Any]) -> list[tuple[Any, ...]]:
    """redis-py gives tuples in RESP2 and lists in RESP3 for (member, score) pairs."""
    if reply and not isinstance(reply[0], list | tuple):
        return [tuple(reply)]
    return [tuple(p) for p in reply]


def test_hashes(r: redis.Redis) -> None:
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "10") == 0
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2"}
    assert r.hmget("h", "a", "zz", "b") == [b"10", None, b"2"]
    assert not r.hsetnx("h", "a", "x") and r.hsetnx("h", "c", "3")
    assert r.hkeys("h") == [b"a", b"b", b"c"] and r.hvals("h") == [b"10", b"2", b"3"]
    assert r.hlen("h") == 3 and r.hexists("h", "a") and not r.hexists("h", "q")
    assert r.hstrlen("h", "a") == 2
    assert r.hincrby("h", "a", 5) == 15
    assert r.hincrbyfloat("h", "f", "0.1") == pytest.approx(0.1)
    assert r.hincrbyfloat("h", "f", "0.2") == pytest.approx(0.3)
    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hincrby("h", "f", 1)
    assert r.hscan("h", match="a") == (0, {b"a": b"15"})
    assert r.hrandfield("h") in r.hkeys("h")
    assert sorted(r.hrandfield("h", 10)) == sorted(r.hkeys("h"))
    assert len(r.hrandfield("h", -7)) == 7
    pairs = r.hrandfield("h", 2, withvalues=True)
    assert len(pairs) in (2, 4)
    assert r.hdel("h", "a", "b", "c", "f", "nope") == 4
    assert r.exists("h") == 0  # an emptied hash is gone


def test_lists(r: redis.Redis) -> None:
    assert r.rpush("l", "a", "b", "c") == 3 and r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r.lindex("l", -1) == b"c" and r.llen("l") == 4
    assert r.lset("l", 0, "y") and r.lpos("l", "b") == 2
    assert r.linsert("l", "BEFORE", "b", "x") == 5
    assert r.lrem("l", 0, "x") == 1 and r.ltrim("l", 1, -1)
    assert r.lpop("l") == b"a" and r.rpop("l", 5) == [b"c", b"b"]
    assert r.exists("l") == 0 and r.lpop("l") is None and r.lpop("l", 2) is None
    assert r.lpushx("l", "a") == 0 and r.rpush("l", "1", "2") == 2
    assert r.lmove("l", "m", "LEFT", "RIGHT") == b"1" and r.rpoplpush("l", "m") == b"2"
    assert r.lrange("m", 0, -1) == [b"2", b"1"] or r.lrange("m", 0, -1) == [b"1", b"2"]
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.lset("nolist", 0, "v")


def test_sets(r: redis.Redis) -> None:
    assert r.sadd("s", "a", "b", "c") == 3 and r.sadd("s", "a") == 0
    assert r.smembers("s") == {b"a", b"b", b"c"} and r.scard("s") == 3
    assert r.sismember("s", "a") and r.smismember("s", ["a", "q"]) == [True, False]
    r.sadd("t", "b", "c", "d")
    assert r.sinter("s", "t") == {b"b", b"c"} and r.sunion("s", "t") == {b"a", b"b", b"c", b"d"}
    assert r.sdiff("s", "t") == {b"a"} and r.sintercard(2, ["s", "t"]) == 2
    assert r.sinterstore("i", ["s", "t"]) == 2 and r.type("i") == b"set"
    assert r.smove("s", "t", "a") and r.sismember("t", "a")
    assert r.srandmember("s") in {b"b", b"c"}
    assert len(r.srandmember("s", -5)) == 5
    popped = r.spop("t", 2)
    assert len(popped) == 2 and r.scard("t") == 2
    assert r.sscan("i") == (0, [b"b", b"c"]) or sorted(r.sscan("i")[1]) == [b"b", b"c"]
    assert r.srem("s", "b", "c") == 2 and not r.exists("s")


def test_sorted_sets(r: redis.Redis) -> None:
    assert r.zadd("z", {"b": 1, "a": 1, "c": 0.5, "d": 2}) == 4
    # Equal scores are ordered by member.
    assert r.zrange("z", 0, -1) == [b"c", b"a", b"b", b"d"]
    assert pairs(r.zrange("z", 0, -1, withscores=True)) == [
        (b"c", 0.5), (b"a", 1.0), (b"b", 1.0), (b"d", 2.0)
    ]
    assert r.zrange("z", "+inf", "(0.5", byscore=True, desc=True, offset=0, num=2) == [b"d", b"b"]
    assert r.zrangebyscore("z", 1, 1) == [b"a", b"b"]
    assert r.zrevrangebyscore("z", "+inf", "-inf", start=1, num=2) == [b"b", b"a"]
    assert r.zadd("z", {"a": 5}, gt=True, ch=True) == 1 and r.zscore("z", "a") == 5.0
    assert r.zadd("z", {"a": 1}, gt=True) == 0 and r.zscore("z", "a") == 5.0
    assert r.zadd("z", {"a": 2}, incr=True) == 7.0
    assert r.zincrby("z", 1.5, "c") == 2.0
    assert r.zmscore("z", ["a", "nope"]) == [7.0, None]
    assert r.zrank("z", "a") == 3 and r.zrevrank("z", "a") == 0
    assert r.zcount("z", "(1", "+inf") == 3 and r.zcard("z") == 4
    assert pairs(r.zpopmin("z")) == [(b"b", 1.0)]
    assert pairs(r.zpopmax("z", 2)) == [(b"a", 7.0), (b"d", 2.0)]  # ties: highest member first
    r.zadd("lex", {m: 0 for m in ["a", "b", "c", "d"]})
    assert r.zrangebylex("lex", "[b", "(d") == [b"b", b"c"]
    assert r.zremrangebyrank("lex", 0, 0) == 1 and r.zremrangebyscore("lex", 0, 0) == 3
    assert not r.exists("lex")
    assert r.zscan("z") == (0, [(b"c", 2.0)])


def test_types_ttl_and_overwrites(r: redis.Redis) -> None:
    r.hset("h", "f", "v")
    r.rpush("l", "v")
    r.sadd("s", "v")
    r.zadd("z", {"v": 1})
    r.set("str", "v")
    assert [r.type(k) for k in ("h", "l", "s", "z", "str", "none")] == [
        b"hash", b"list", b"set", b"zset", b"string", b"none"
    ]
    assert r.dbsize() == 5 and sorted(r.keys()) == [b"h", b"l", b"s", b"str", b"z"]
    assert sorted(r.scan_iter(_type="zset")) == [b"z"]
    for k in ("h", "l", "s", "z"):
        with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
            r.get(k)
        with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
            r.incr(k)
        assert r.expire(k, 100) and 90 < r.ttl(k) <= 100
        assert r.persist(k) and r.ttl(k) == -1
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.hset("str", "f", "v")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.lpush("h", "v")
    assert r.pexpire("l", 50)
    time.sleep(0.1)
    assert r.exists("l") == 0 and r.lrange("l", 0, -1) == []
    assert r.set("h", "now a string") and r.type("h") == b"string"
    assert r.set("s", "x", nx=True) is None and r.type("s") == b"set"
    assert r.rename("z", "z2") and r.zscore("z2", "v") == 1.0 and not r.exists("z")
    assert r.delete("s", "z2", "str") == 3
    r.flushdb()
    assert r.dbsize() == 0


def test_lua_calls_every_type(r: redis.Redis) -> None:
    script = """
    redis.call('hset', KEYS[1], 'f', 'v')
    redis.call('rpush', KEYS[2], 'a', 'b')
    redis.call('sadd', KEYS[3], 'm')
    redis.call('zadd', KEYS[4], 2, 'x', 1, 'y')
    return {redis.call('hget', KEYS[1], 'f'), redis.call('lpop', KEYS[2]),
            redis.call('scard', KEYS[3]), redis.call('zrange', KEYS[4], 0, -1),
            redis.call('publish', 'chan', 'msg'), redis.call('type', KEYS[4])['ok'],
            redis.pcall('get', KEYS[1])['err']}
    """
    assert r.eval(script, 4, "h", "l", "s", "z") == [
        b"v", b"a", 1, [b"y", b"x"], 0, b"zset",
        b"WRONGTYPE Operation against a key holding the wrong kind of value",
    ]


def test_watch_sees_object_changes(srv: ServerProcess, r: redis.Redis) -> None:
    other = redis.Redis(port=srv.port)
    r.rpush("w", "1")
    with r.pipeline() as p:
        p.watch("w")
        other.rpush("w", "2")
        p.multi()
        p.lpop("w")
        with pytest.raises(redis.WatchError):
            p.execute()
    other.close()


def test_long_list_ranges_follow_every_write(srv: ServerProcess, r: redis.Redis) -> None:
    """LRANGE keeps its encoded reply until the list changes: every write must show."""
    other = redis.Redis(port=srv.port)
    model = [b"%d" % i for i in range(20)]
    r.rpush("big", *model)

    def check() -> None:
        assert r.lrange("big", 0, -1) == model
        assert r.lrange("big", 0, -1) == model  # the cached reply
        assert r.lrange("big", 2, 11) == model[2:12]

    check()
    r.lset("big", 3, "x")
    model[3] = b"x"
    check()
    r.lpush("big", "l")
    model.insert(0, b"l")
    check()
    r.rpush("big", "r")
    model.append(b"r")
    check()
    assert r.lpop("big") == b"l"
    model.pop(0)
    check()
    r.linsert("big", "AFTER", "x", "y")
    model.insert(model.index(b"x") + 1, b"y")
    check()
    r.lrem("big", 1, "y")
    model.remove(b"y")
    check()
    r.lmove("big", "big", "LEFT", "RIGHT")
    model.append(model.pop(0))
    check()
    r.ltrim("big", 1, -2)
    model = model[1:-1]
    check()
    other.rpush("big", "z")  # another connection's write
    model.append(b"z")
    check()
    assert r.eval("return redis.call('lrange', KEYS[1], 0, -1)", 1, "big") == model
    p = r.pipeline(transaction=True)
    p.lrange("big", 0, -1)
    assert p.execute() == [model]
    other.close()


def test_get_hits_misses_and_other_types_are_counted_once(r: redis.Redis) -> None:
    """GET runs inline in the server's command loop; INFO commandstats still counts each."""

    def calls() -> int:
        return int(r.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    r.set("cs", "v")
    r.rpush("cs-list", "x")
    before = calls()
    assert r.get("cs") == b"v" and r.get("cs-missing") is None
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        r.get("cs-list")
    assert calls() - before == 3
