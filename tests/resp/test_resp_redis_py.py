"""redis-py (sync and asyncio; RESP2 and RESP3; hiredis and pure-Python parsers) against us."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis._parsers import (
    _AsyncHiredisParser,
    _AsyncRESP2Parser,
    _AsyncRESP3Parser,
    _HiredisParser,
    _RESP2Parser,
    _RESP3Parser,
)
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError, WatchError
from redis.retry import Retry

from resp.harness import ServerProcess

VARIANTS = [(2, False), (2, True), (3, False), (3, True)]
IDS = ["resp2-python", "resp2-hiredis", "resp3-python", "resp3-hiredis"]


def make_client(port: int, protocol: int, use_hiredis: bool, **kw: Any) -> redis.Redis:
    parser = _HiredisParser if use_hiredis else (_RESP3Parser if protocol == 3 else _RESP2Parser)
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=port, protocol=protocol, parser_class=parser, **kw
    )
    return redis.Redis(connection_pool=pool)


@pytest.fixture(params=VARIANTS, ids=IDS)
def r(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[redis.Redis]:
    protocol, use_hiredis = request.param
    client = make_client(server.port, protocol, use_hiredis)
    client.flushall()
    yield client
    client.close()


def test_hello_and_ping(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo(b"hi") == b"hi"
    info = r.execute_command("HELLO")
    proto = r.connection_pool.connection_kwargs["protocol"]
    if proto == 3:
        assert info[b"proto"] == 3 and info[b"server"] == b"redis"
    else:
        assert dict(zip(info[::2], info[1::2], strict=True))[b"proto"] == 2


def test_strings(r: redis.Redis) -> None:
    assert r.set("a", "1") is True
    assert r.get("a") == b"1"
    assert r.get("missing") is None
    assert r.set("a", "2", nx=True) is None
    assert r.set("b", "x", xx=True) is None
    assert r.set("a", "3", xx=True, get=True) == b"1"
    assert r.setnx("a", "z") is False
    assert r.mset({"k1": "v1", "k2": "v2"}) is True
    assert r.mget("k1", "missing", "k2") == [b"v1", None, b"v2"]
    assert r.msetnx({"k2": "x", "k3": "y"}) is False
    assert r.msetnx({"k3": "x", "k4": "y"}) is True
    assert r.append("k1", "++") == 4
    assert r.strlen("k1") == 4
    assert r.getrange("k1", 1, -2) == b"1+"
    assert r.setrange("pad", 3, "x") == 4
    assert r.get("pad") == b"\0\0\0x"
    assert r.getset("k1", "new") == b"v1++"
    assert r.getdel("k1") == b"new"
    assert r.exists("k1") == 0
    assert r.incr("n") == 1
    assert r.incrby("n", 41) == 42
    assert r.decr("n") == 41
    assert r.decrby("n", 40) == 1
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == b"10.6"


def test_string_errors(r: redis.Redis) -> None:
    r.set("s", "abc")
    with pytest.raises(ResponseError, match=r"^value is not an integer or out of range$"):
        r.incr("s")
    r.set("big", str(2**63 - 1))
    with pytest.raises(ResponseError, match=r"^increment or decrement would overflow$"):
        r.incr("big")
    for bad in ("-0", "01", "+1", " 1"):  # Redis' string2ll: canonical integers only
        with pytest.raises(ResponseError, match=r"^value is not an integer or out of range$"):
            r.execute_command("INCRBY", "n2", bad)
        r.set("n3", bad)
        with pytest.raises(ResponseError, match=r"^value is not an integer or out of range$"):
            r.incr("n3")
    with pytest.raises(ResponseError, match=r"^value is not a valid float$"):
        r.incrbyfloat("s", 1.0)
    with pytest.raises(ResponseError, match=r"^syntax error$"):
        r.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(ResponseError, match=r"^invalid expire time in 'set' command$"):
        r.execute_command("SET", "k", "v", "EX", "0")
    with pytest.raises(ResponseError, match=r"^wrong number of arguments for 'get' command$"):
        r.execute_command("GET")
    unknown = r"^unknown command 'NOPE', with args beginning with: 'a' "
    with pytest.raises(ResponseError, match=unknown):
        r.execute_command("NOPE", "a")
    assert r.get("s") == b"abc"  # nothing was lost


# redis-py marks setex deprecated; SETEX itself is a command apps still send.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_set_expiry_options(r: redis.Redis) -> None:
    r.set("ex", "v", ex=100)
    assert 98 <= r.ttl("ex") <= 100
    r.set("px", "v", px=100_000)
    assert 98_000 <= r.pttl("px") <= 100_000
    r.set("exat", "v", exat=int(time.time()) + 100)
    assert 98 <= r.ttl("exat") <= 100
    r.set("keep", "v", ex=100)
    r.set("keep", "w", keepttl=True)
    assert r.ttl("keep") > 90 and r.get("keep") == b"w"
    r.set("keep", "x")
    assert r.ttl("keep") == -1
    assert r.ttl("missing") == -2
    r.setex("se", 50, "v")
    assert 48 <= r.ttl("se") <= 50
    r.psetex("pse", 50_000, "v")
    assert 48 <= r.ttl("pse") <= 50
    assert r.getex("se", persist=True) == b"v" and r.ttl("se") == -1
    assert r.getex("se", ex=30) == b"v" and 28 <= r.ttl("se") <= 30
    r.set("gone", "v", px=1)
    time.sleep(0.05)
    assert r.get("gone") is None


def test_expire_family(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.expire("k", 100, xx=True) is False
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 200, gt=True) is True
    assert r.expire("k", 300, lt=True) is False
    assert r.expire("k", 10, lt=True) is True
    assert 8 <= r.ttl("k") <= 10
    assert r.pexpire("k", 60_000) is True
    assert 58_000 <= r.pttl("k") <= 60_000
    at = int(time.time()) + 500
    assert r.expireat("k", at) is True
    assert r.expiretime("k") == at
    assert r.pexpireat("k", at * 1000 + 5) is True
    assert r.pexpiretime("k") == at * 1000 + 5
    assert r.persist("k") is True and r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.expiretime("k") == -1 and r.expiretime("missing") == -2
    assert r.expire("missing", 10) is False
    assert r.expire("k", -1) is True and r.exists("k") == 0
    with pytest.raises(ResponseError, match=r"NX and XX, GT or LT options at the same time"):
        r.execute_command("EXPIRE", "k", "10", "NX", "GT")
    with pytest.raises(ResponseError, match=r"GT and LT options at the same time"):
        r.execute_command("EXPIRE", "k", "10", "GT", "LT")
    with pytest.raises(ResponseError, match=r"Unsupported option FOO"):
        r.execute_command("EXPIRE", "k", "10", "FOO")


def test_keys_commands(r: redis.Redis) -> None:
    for i in range(30):
        r.set(f"user:{i}", i)
    r.set("other", "x")
    assert r.dbsize() == 31
    assert sorted(r.keys("user:1*")) == sorted(
        [b"user:1"] + [f"user:{i}".encode() for i in range(10, 20)]
    )
    assert r.keys("h[ae]llo") == []
    assert set(r.scan_iter(match=r"user:*", count=7)) == {f"user:{i}".encode() for i in range(30)}
    everything = {*(f"user:{i}".encode() for i in range(30)), b"other"}
    assert set(r.scan_iter(_type="string")) == everything
    assert list(r.scan_iter(_type="hash")) == []
    assert r.type("other") == b"string" and r.type("missing") == b"none"
    assert r.exists("other", "other", "missing") == 2
    assert r.touch("other", "missing") == 1
    assert r.randomkey() is not None
    assert r.rename("other", "renamed") is True
    assert r.get("renamed") == b"x"
    with pytest.raises(ResponseError, match=r"^no such key$"):
        r.rename("other", "x")
    assert r.renamenx("renamed", "user:1") is False
    assert r.renamenx("renamed", "fresh") is True
    assert r.delete("fresh", "user:1", "missing") == 2
    assert r.unlink("user:2") == 1
    r.flushdb()
    assert r.dbsize() == 0 and r.randomkey() is None


def test_rename_keeps_ttl(r: redis.Redis) -> None:
    r.set("a", "v", ex=100)
    r.rename("a", "b")
    assert 98 <= r.ttl("b") <= 100


def test_select_databases(r: redis.Redis) -> None:
    r.set("k", "db0")
    r.execute_command("SELECT", 5)
    try:
        assert r.get("k") is None
        r.set("k", "db5")
        assert r.dbsize() == 1
    finally:
        r.execute_command("SELECT", 0)
    assert r.get("k") == b"db0"
    with pytest.raises(ResponseError, match=r"DB index is out of range"):
        r.execute_command("SELECT", 16)
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=5)
    assert other.get("k") == b"db5"
    other.close()


def test_pipeline(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"p{i}", i)
        pipe.incr("counter")
        pipe.get(f"p{i}")
    results = pipe.execute()
    assert results[-1] == b"499" and results[-2] == 500
    assert len(results) == 1500


def test_transaction_and_watch(r: redis.Redis) -> None:
    pipe = r.pipeline()
    pipe.set("t", 1).incr("t").get("t")
    assert pipe.execute() == [True, 2, b"2"]
    port = r.connection_pool.connection_kwargs["port"]
    other = redis.Redis(port=port)
    with r.pipeline() as pipe:
        pipe.watch("t")
        other.set("t", "changed")  # another client changes the watched key
        pipe.multi()
        pipe.set("t", "mine")
        with pytest.raises(WatchError):
            pipe.execute()
    assert r.get("t") == b"changed"

    def add_one(p: Any) -> None:
        v = int(p.get("t2") or 0)
        p.multi()
        p.set("t2", v + 1)

    assert r.transaction(add_one, "t2") == [True]
    assert r.get("t2") == b"1"
    other.close()


def test_watch_expired_key_aborts(r: redis.Redis) -> None:
    r.set("w", "v", px=50)
    with r.pipeline() as pipe:
        pipe.watch("w")
        time.sleep(0.1)
        pipe.multi()
        pipe.set("x", "1")
        with pytest.raises(WatchError):
            pipe.execute()


def test_exec_abort_and_errors(r: redis.Redis) -> None:
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command("MULTI")
        assert conn.read_response() == b"OK"
        conn.send_command("SET", "a", "1")
        assert conn.read_response() == b"QUEUED"
        conn.send_command("GET")
        with pytest.raises(ResponseError, match=r"wrong number of arguments"):
            conn.read_response()
        conn.send_command("EXEC")
        with pytest.raises(ResponseError, match=r"^Transaction discarded because of previous"):
            conn.read_response()
        conn.send_command("EXEC")
        with pytest.raises(ResponseError, match=r"EXEC without MULTI"):
            conn.read_response()
        conn.send_command("MULTI")
        conn.read_response()
        conn.send_command("INCR", "a")
        conn.read_response()
        conn.send_command("DISCARD")
        assert conn.read_response() == b"OK"
        # run-time errors inside EXEC are replies, the rest still runs
        conn.send_command("SET", "s", "x")
        conn.read_response()
        conn.send_command("MULTI")
        conn.read_response()
        conn.send_command("INCR", "s")
        conn.read_response()
        conn.send_command("SET", "s2", "y")
        conn.read_response()
        conn.send_command("EXEC")
        res = conn.read_response(disable_decoding=False)
        assert isinstance(res[0], ResponseError) and res[1] == b"OK"
    finally:
        r.connection_pool.release(conn)
    assert r.get("a") is None and r.get("s2") == b"y"


def test_client_and_server_commands(r: redis.Redis) -> None:
    r.client_setname("tester")
    assert r.client_getname() == b"tester" or r.client_getname() == "tester"
    cid = r.client_id()
    assert isinstance(cid, int)
    assert any(c["name"] == "tester" for c in r.client_list())
    info = r.info()
    assert info["redis_version"].startswith("7.2")
    assert "connected_clients" in info and "used_memory" in info
    assert r.info("keyspace") == {} or isinstance(r.info("keyspace"), dict)
    assert r.config_get("maxclients") == {"maxclients": "10000"} or r.config_get(
        "maxclients"
    ) == {b"maxclients": b"10000"}
    r.config_set("timeout", 0)
    with pytest.raises(ResponseError, match=r"can't set immutable config"):
        r.config_set("port", 1)
    t = r.time()
    assert abs(t[0] - time.time()) < 5
    assert r.lastsave() is not None
    assert r.command_count() > 50
    assert r.command_getkeys("MSET", "a", "1", "b", "2") in ([b"a", b"b"], ["a", "b"])
    with pytest.raises(ResponseError, match=r"checkpoints need a data directory"):
        r.save()


def test_command_info_shape(r: redis.Redis) -> None:
    cmds = r.command()
    get = cmds["get"]
    assert get["arity"] == 2 and get["first_key_pos"] == 1 and get["step_count"] == 1
    assert "readonly" in get["flags"]
    docs = r.execute_command("COMMAND DOCS", "GET")
    assert docs


def test_large_value(r: redis.Redis) -> None:
    big = b"x" * (2 << 20)
    r.set("big", big)
    assert r.get("big") == big
    assert r.strlen("big") == len(big)


@pytest.mark.parametrize(("protocol", "use_hiredis"), VARIANTS, ids=IDS)
def test_asyncio_client(server: ServerProcess, protocol: int, use_hiredis: bool) -> None:
    parser = (
        _AsyncHiredisParser
        if use_hiredis
        else (_AsyncRESP3Parser if protocol == 3 else _AsyncRESP2Parser)
    )

    async def main() -> None:
        pool = redis.asyncio.ConnectionPool(
            host="127.0.0.1", port=server.port, protocol=protocol, parser_class=parser
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        try:
            await client.delete("async-n", "ap")
            await client.set("async", "v", ex=100)
            assert await client.get("async") == b"v"
            results = await asyncio.gather(*(client.incr("async-n") for _ in range(50)))
            assert sorted(results) == list(range(1, 51))
            async with client.pipeline(transaction=True) as pipe:
                pipe.set("ap", 1).incr("ap")
                assert await pipe.execute() == [True, 2]
        finally:
            await client.aclose()
            await pool.disconnect()

    asyncio.run(main())


def test_connection_commands(server: ServerProcess) -> None:
    once = Retry(NoBackoff(), 0)
    a = redis.Redis(port=server.port, single_connection_client=True, retry=once)
    b = redis.Redis(
        port=server.port, single_connection_client=True, client_name="victim", retry=once
    )
    assert b.ping()
    victim = next(c for c in a.client_list() if c["name"] == "victim")
    assert a.client_kill_filter(_id=victim["id"]) == 1
    with pytest.raises(redis.ConnectionError):
        b.execute_command("PING")
    assert a.client_info()["id"] == a.client_id()
    assert a.execute_command("RESET") in ("RESET", b"RESET")
    hello = a.execute_command("HELLO", "3", "SETNAME", "renamed")
    assert hello[b"proto"] == 3 and hello[b"id"] == a.client_id()
    assert a.client_getname() in ("renamed", b"renamed")
    with pytest.raises(ResponseError, match=r"^NOPROTO unsupported protocol version"):
        a.execute_command("HELLO", "4")
    with pytest.raises(redis.AuthenticationError, match=r"without any password configured"):
        a.execute_command("AUTH", "x")
    assert a.execute_command("AUTH", "default", "anything") in (True, b"OK")
    with pytest.raises(redis.AuthenticationError, match=r"^invalid username-password pair"):
        a.execute_command("AUTH", "bob", "x")
    with pytest.raises(ResponseError, match=r"^unknown subcommand 'NOPE'. Try CLIENT HELP."):
        a.execute_command("CLIENT", "NOPE")
    with pytest.raises(ResponseError, match=r"^wrong number of arguments for 'config\|get'"):
        a.execute_command("CONFIG", "GET")
    with pytest.raises(ResponseError, match=r"^MULTI calls can not be nested"):
        a.execute_command("MULTI")
        a.execute_command("MULTI")
    assert a.execute_command("DISCARD") in (True, b"OK")
    assert a.execute_command("QUIT") in (True, b"OK")
    a.close()
    b.close()


def test_updates_keep_the_expiry(r: redis.Redis) -> None:
    r.flushdb()  # no key with an expiry: updates take the read + upsert path
    r.set("plain", 1)
    assert r.incr("plain") == 2 and r.ttl("plain") == -1
    r.set("t", 5, ex=100)  # from now on they must keep expiries
    assert r.incr("t") == 6
    assert r.append("t", "0") == 2
    assert r.setrange("t", 0, "7") == 2
    assert r.incrbyfloat("t", 0.5) == 70.5
    assert 98 <= r.ttl("t") <= 100
    assert r.get("t") == b"70.5"
