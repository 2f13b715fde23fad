"""django-redis against our server: incr (a Lua script), cache.lock (redis-py's Lock), ttl and
delete_pattern, with Django settings pointing django-redis' RedisCache at our port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess

django = pytest.importorskip("django")
pytest.importorskip("django_redis")


def _eval_calls(port: int) -> int:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    entry: Any = stats.get("cmdstat_eval", {})
    return int(entry.get("calls", 0)) if isinstance(entry, dict) else 0


@pytest.fixture
def cache(server: ServerProcess) -> Iterator[Any]:
    from django.conf import settings

    if not settings.configured:  # run alone; with tests/django the settings already exist
        settings.configure(
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            USE_TZ=True,
        )
        django.setup()
    from django.core.cache import caches
    from django.test.utils import override_settings

    conf = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "ours": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
    }
    with override_settings(CACHES=conf):
        c = caches["ours"]
        c.clear()
        yield c
        c.close()


def test_incr_runs_its_lua_script(cache: Any, server: ServerProcess) -> None:
    before = _eval_calls(server.port)
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.incr("n", 10) == 12
    assert cache.decr("n", 2) == 10
    assert cache.get("n") == 10
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert cache.get("missing") is None  # the script did not create it
    assert _eval_calls(server.port) >= before + 4


def test_incr_overflow_falls_back_like_redis(cache: Any) -> None:
    # INCRBY past int64 fails inside the script; django-redis catches the ResponseError
    # and falls back to GET + SET, keeping the TTL the script path would keep.
    cache.set("big", 2**63 - 1, timeout=300)
    assert cache.incr("big") == 2**63
    assert cache.get("big") == 2**63
    assert 250 < cache.ttl("big") <= 300


def test_incr_is_atomic_across_threads(cache: Any, server: ServerProcess) -> None:
    cache.set("hits", 0, timeout=None)
    from django.core.cache import caches

    def work() -> None:
        c = caches["ours"]  # one backend object per thread, as Django does
        for _ in range(100):
            c.incr("hits")
        c.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert cache.get("hits") == 400


def test_lock(cache: Any) -> None:
    with cache.lock("job", timeout=10, blocking_timeout=5) as held:
        assert held
        other = cache.lock("job", timeout=10)
        assert not other.acquire(blocking=False)
        assert cache.ttl("job") is not None
    assert cache.lock("job", timeout=10).acquire(blocking=False)


def test_ttl(cache: Any) -> None:
    cache.set("t", "v", timeout=100)
    assert 95 <= cache.ttl("t") <= 100
    assert 95_000 <= cache.pttl("t") <= 100_000
    cache.set("forever", "v", timeout=None)
    assert cache.ttl("forever") is None
    assert cache.ttl("absent") == 0
    assert cache.expire("forever", 50)
    assert 45 <= cache.ttl("forever") <= 50
    assert cache.persist("forever")
    assert cache.ttl("forever") is None


def test_delete_pattern(cache: Any) -> None:
    for i in range(30):
        cache.set(f"session:{i}", i)
    cache.set("other:1", "keep")
    assert sorted(cache.keys("session:*"), key=lambda k: int(k.split(":")[1])) == [
        f"session:{i}" for i in range(30)
    ]
    assert cache.delete_pattern("session:*") == 30
    assert cache.keys("session:*") == []
    assert cache.get("other:1") == "keep"
    assert cache.delete_pattern("nothing:*") == 0
