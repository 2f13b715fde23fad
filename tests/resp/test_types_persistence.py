"""Objects survive a restart: written back into their object logs at SAVE and at shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
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


def _kill_then_check(
    tmp_path: Path, before_kill: Callable[[redis.Redis], None], *args: str
) -> None:
    """Fill a server started with ``args``, run ``before_kill``, kill -9 it (no SAVE, no
    shutdown), then check that a new server on the same directory has everything."""
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data), *args)
    try:
        r = redis.Redis(port=srv.port)
        _fill(r)
        before_kill(r)
    finally:
        srv.proc.kill()
        srv.proc.wait()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        _check(redis.Redis(port=srv.port))
    finally:
        assert srv.stop() == 0, srv.log()


def test_save_makes_objects_durable_before_a_crash(tmp_path: Path) -> None:
    def save(r: redis.Redis) -> None:
        assert r.save()

    _kill_then_check(tmp_path, save)  # only what SAVE wrote may survive


def test_periodic_durability_covers_objects_without_save(tmp_path: Path) -> None:
    """With --durability periodic, objects written without SAVE survive a kill -9 once a
    write-back second and a commit interval have passed (docs/resp.md, "Object store")."""
    import time

    def wait(r: redis.Redis) -> None:
        time.sleep(3.5)  # the once-a-second write-back, then the store's 1 s group commit

    _kill_then_check(tmp_path, wait, "--durability", "periodic")


def test_always_durability_keeps_every_acknowledged_object_write(tmp_path: Path) -> None:
    """With --durability always an acknowledged HSET / RPUSH / SADD / ZADD / RPOP (and SET /
    INCR) survives a kill -9 that comes right after its reply: no write-back second to wait
    for."""
    import threading

    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data), "--durability", "always")
    acked: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        r = redis.Redis(port=srv.port)
        i = 0
        try:
            while not stop.is_set():
                p = r.pipeline(transaction=i % 3 == 0)  # plain pipelines and MULTI/EXEC
                for j in range(i, i + 1 + i % 4):
                    p.hset("h", f"f{j}", j)
                    p.rpush("l", j)
                    p.sadd("s", j)
                    p.zadd("z", {f"m{j}": j})
                    p.rpush("q", j, "gone")
                    p.rpop("q")
                    p.set(f"s{j}", j)
                    p.incr("n")
                p.execute()
                acked.extend(range(i, i + 1 + i % 4))
                i += 1 + i % 4
        except redis.ConnectionError:
            pass  # killed

    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        srv.proc.kill()  # mid-stream: no SAVE, no shutdown, no write-back second
        srv.proc.wait()
        stop.set()
        t.join()
    assert len(acked) >= 300
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        h = r.hgetall("h")
        lst = r.lrange("l", 0, -1)
        members = r.smembers("s")
        z = r.zrange("z", 0, -1, withscores=True)
        q = r.lrange("q", 0, -1)
        strings = r.mget([f"s{j}" for j in acked])
        n_incr = int(r.get("n") or 0)
    finally:
        assert srv.stop() == 0, srv.log()
    n = len(acked)
    assert acked == list(range(n))
    for j in acked:
        assert h[b"f%d" % j] == b"%d" % j
    assert [int(v) for v in lst[:n]] == acked  # in order, maybe followed by unacknowledged ones
    assert {b"%d" % j for j in acked} <= members
    assert [(b"m%d" % j, float(j)) for j in acked] == z[:n]
    assert [int(v) for v in q[:n]] == acked and b"gone" not in q[:n]
    assert strings == [b"%d" % j for j in acked] and n_incr >= n


def test_bgsave_is_one_point_for_strings_and_objects(tmp_path: Path) -> None:
    """Commands pipelined right after BGSAVE run after the cut of every store (strings and
    objects alike): after a kill -9 the restart shows the state at BGSAVE, all of it."""
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        r.mset({f"big{i}": b"x" * 100_000 for i in range(200)})  # database 0 saves slowly
        r.set("s", "1")
        r.hset("h", "f", "1")
        r2 = redis.Redis(port=srv.port, db=2)
        r2.set("s2", "1")
        r2.rpush("l", "1")
        p = r.pipeline(transaction=False)
        p.bgsave()
        p.set("s", "2")
        p.hset("h", "f", "2")
        p.execute_command("SELECT", "2")
        p.set("s2", "2")
        p.rpush("l", "2")
        p.execute()
        deadline = time.monotonic() + 30
        while r.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.info("persistence")["rdb_bgsave_in_progress"] == 0
    finally:
        srv.proc.kill()
        srv.proc.wait()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        assert (r.get("s"), r.hget("h", "f")) == (b"1", b"1")
        r2 = redis.Redis(port=srv.port, db=2)
        assert (r2.get("s2"), r2.lrange("l", 0, -1)) == (b"1", [b"1"])
    finally:
        assert srv.stop() == 0, srv.log()


@pytest.mark.parametrize("always", [False, True], ids=["in-memory", "always"])
def test_object_cache_is_bounded_by_estimated_bytes(tmp_path: Path, always: bool) -> None:
    """CONFIG SET object-cache-size: beyond it the oldest objects are written back, dropped
    from memory (INFO memory object_cache_bytes) and read back intact on use; once a second,
    and with --durability always at the end of every batch."""
    args = ["--data-dir", str(tmp_path / "data"), "--durability", "always"] if always else []
    srv = start_server(tmp_path, *args)
    try:
        r = redis.Redis(port=srv.port)
        assert int(r.config_get("object-cache-size")["object-cache-size"]) == 256 << 20
        assert r.config_set("object-cache-size", "1mb")
        for i in range(30):  # about 3 MiB of hashes
            r.hset(f"h{i}", mapping={f"f{j}": f"{i}-{j}-" + "x" * 80 for j in range(800)})
        if always:  # no second to wait for
            info = r.info("memory")
            assert 0 < info["object_cache_bytes"] <= 1 << 20, info
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = r.info("memory")
            if 0 < info["object_cache_bytes"] <= 1 << 20:
                break
            time.sleep(0.1)
        assert 0 < info["object_cache_bytes"] <= 1 << 20, info
        assert info["live_objects"] < 30
        assert r.info("stats")["object_write_backs"] >= 20
        for i in range(30):
            h = r.hgetall(f"h{i}")
            assert len(h) == 800 and h[b"f7"] == f"{i}-7-".encode() + b"x" * 80
        assert r.info("stats")["object_read_backs"] >= 20
    finally:
        assert srv.stop() == 0, srv.log()
