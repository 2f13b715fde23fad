"""Other real clients: Django's RedisCache, django-redis, redis-py's Lock, redis-cli."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess


def needs_scripting(port: int) -> None:
    """Assert the server has EVAL/EVALSHA (the Lock and django-redis tests rely on them)."""
    r = redis.Redis(port=port)
    try:
        conn = r.connection_pool.get_connection()
        conn.send_command("COMMAND", "INFO", "EVAL", "EVALSHA")
        has = all(conn.read_response())
        r.connection_pool.release(conn)
    finally:
        r.close()
    # Scripting is part of the server: a missing EVAL is a failure, not a reason to skip.
    assert has, "EVAL/EVALSHA are not registered (integrations/resp/commands/scripting.py)"


@pytest.fixture
def django_caches(server: ServerProcess) -> Iterator[Any]:
    from django.conf import settings

    caches_setting = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/3",
        },
        "django_redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/4",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
    }
    if not settings.configured:
        settings.configure(CACHES=caches_setting, USE_TZ=True)
    from django.core.cache import caches
    from django.test import override_settings

    with override_settings(CACHES=caches_setting):
        yield caches
        for alias in caches_setting:
            caches[alias].clear()
            caches[alias].close()


def test_django_redis_cache(django_caches: Any) -> None:
    cache = django_caches["default"]
    cache.clear()
    cache.set("k", {"a": [1, 2]}, 60)
    assert cache.get("k") == {"a": [1, 2]}
    assert cache.get("missing", "dflt") == "dflt"
    assert cache.add("k", "other") is False
    assert cache.add("new", "v", 60) is True
    assert cache.get_or_set("gos", lambda: "computed", 60) == "computed"
    assert cache.get_or_set("gos", lambda: "again", 60) == "computed"
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.decr("n", 5) == -3
    with pytest.raises(ValueError):
        cache.incr("no-such-counter")
    cache.set_many({"m1": 1, "m2": "two"}, 60)
    assert cache.get_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": "two"}
    assert cache.touch("m1", 100) is True
    assert cache.touch("m1", None) is True
    assert cache.delete("m1") is True
    assert cache.delete("m1") is False
    cache.delete_many(["m2", "new"])
    assert cache.has_key("m2") is False
    cache.set("short", "v", 1)
    time.sleep(1.2)
    assert cache.get("short") is None
    cache.set("zero", "v", 0)  # timeout 0: expire now
    assert cache.get("zero") is None
    cache.clear()
    assert cache.get("k") is None


def test_django_redis_package(django_caches: Any, server: ServerProcess) -> None:
    cache = django_caches["django_redis"]
    cache.clear()
    cache.set("a:1", "x", timeout=100)
    cache.set("a:2", "y", timeout=None)
    cache.set("b:1", "z")
    assert 98 <= cache.ttl("a:1") <= 100
    assert cache.ttl("a:2") is None
    assert cache.ttl("missing") == 0
    assert cache.pttl("a:1") > 90_000
    assert cache.expire("a:2", 50) is True and 48 <= cache.ttl("a:2") <= 50
    assert cache.persist("a:2") is True and cache.ttl("a:2") is None
    assert sorted(cache.keys("a:*")) == ["a:1", "a:2"]
    assert sorted(cache.iter_keys("a:*")) == ["a:1", "a:2"]
    assert cache.delete_pattern("a:*") == 2
    assert cache.get("b:1") == "z" and cache.get("a:1") is None
    cache.set_many({"s1": 1, "s2": 2}, timeout=30)
    assert cache.get_many(["s1", "s2"]) == {"s1": 1, "s2": 2}


def test_django_redis_incr_and_lock(django_caches: Any, server: ServerProcess) -> None:
    needs_scripting(server.port)
    cache = django_caches["django_redis"]
    cache.set("counter", 10)
    assert cache.incr("counter") == 11
    assert cache.decr("counter", 5) == 6
    with cache.lock("dj-lock", timeout=5):
        assert cache.get("counter") == 6


def test_redis_py_lock(server: ServerProcess) -> None:
    needs_scripting(server.port)
    r = redis.Redis(port=server.port)
    lock = r.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    other = r.lock("resource", timeout=5)
    assert not other.acquire(blocking=False)
    assert lock.extend(5)
    assert lock.reacquire()
    lock.release()
    assert other.acquire(blocking=False)
    other.release()
    r.close()


redis_cli = pytest.mark.skipif(
    shutil.which("redis-cli") is None, reason="redis-cli (Debian redis-tools) is not installed"
)


def cli(port: int, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


@redis_cli
def test_redis_cli(server: ServerProcess) -> None:
    assert cli(server.port, "ping") == "PONG"
    assert cli(server.port, "set", "cli-key", "hello world") == "OK"
    assert cli(server.port, "get", "cli-key") == "hello world"
    assert cli(server.port, "incrby", "cli-n", "5") == "5"
    assert cli(server.port, "-n", "2", "set", "in-db2", "x") == "OK"
    assert cli(server.port, "-n", "2", "dbsize") == "1"
    assert "unknown command 'nosuch'" in cli(server.port, "nosuch", "a")
    assert "redis_version:7.2" in cli(server.port, "info", "server")
    piped = cli(server.port, stdin="SET p 1\nINCR p\nGET p\n")
    assert piped.split("\n") == ["OK", "2", "2"]
    assert cli(server.port, "--scan", "--pattern", "cli-*").split("\n") == ["cli-key", "cli-n"] or (
        sorted(cli(server.port, "--scan", "--pattern", "cli-*").split("\n")) == ["cli-key", "cli-n"]
    )
    assert cli(server.port, "-3", "hello", "3").startswith("server")
