"""Objects survive a restart: written back into their object logs at SAVE and at shutdown."""

from __future__ import annotations

from pathlib import Path

import redis

from resp.harness import start_server


def _fill(r: redis.Redis) -> None:
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.rpush("l", "x", "y", "z")
    r.expire("l", 1000)
    r.sadd("s", "m")
    r.zadd("z", {"p": 1.5, "q": -2})
    r.xadd("st", {"f": "v"}, id="5-1")
    r.set("str", "v")
    redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=3).hset("h3", "f", "v")


def _check(r: redis.Redis) -> None:
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert r.lrange("l", 0, -1) == [b"x", b"y", b"z"] and 900 < r.ttl("l") <= 1000
    assert r.smembers("s") == {b"m"}
    assert r.zrange("z", 0, -1, withscores=True) == [(b"q", -2.0), (b"p", 1.5)]
    assert r.xrange("st") == [(b"5-1", {b"f": b"v"})]
    assert r.get("str") == b"v" and r.dbsize() == 6 and r.type("z") == b"zset"
    port = r.connection_pool.connection_kwargs["port"]
    assert redis.Redis(port=port, db=3).hgetall("h3") == {b"f": b"v"}


def test_objects_survive_a_clean_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        _fill(redis.Redis(port=srv.port))
    finally:
        assert srv.stop() == 0, srv.log()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        _check(r)
        r.hset("h", "c", "3")  # changed after the restart: written back at the next stop
    finally:
        assert srv.stop() == 0, srv.log()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        assert redis.Redis(port=srv.port).hget("h", "c") == b"3"
    finally:
        assert srv.stop() == 0, srv.log()


def test_save_makes_objects_durable_before_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        _fill(r)
        assert r.save()
    finally:
        srv.proc.kill()  # no shutdown: only what SAVE wrote may survive
        srv.proc.wait()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        _check(redis.Redis(port=srv.port))
    finally:
        assert srv.stop() == 0, srv.log()


def test_periodic_durability_covers_objects_without_save(tmp_path: Path) -> None:
    """With --durability periodic, objects written without SAVE survive a kill -9 once a
    write-back second and a commit interval have passed (docs/resp.md, "Object store")."""
    import time

    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data), "--durability", "periodic")
    try:
        r = redis.Redis(port=srv.port)
        _fill(r)
        time.sleep(3.5)  # the once-a-second write-back, then the store's 1 s group commit
    finally:
        srv.proc.kill()  # no SAVE, no shutdown
        srv.proc.wait()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        _check(redis.Redis(port=srv.port))
    finally:
        assert srv.stop() == 0, srv.log()
