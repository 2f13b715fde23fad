"""LOCATION = "redis://...": FasterCache as a RESP client, against a real redis-server and
against `faster-backend serve` (each skipped, with the reason, only when it cannot be started)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.redis import RedisCache
from django_servers import PEERS, resp_server, unavailable

from faster_backend.integrations.django import FasterCache, LockError, LockNotOwnedError


@pytest.fixture(scope="module", params=PEERS)
def resp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    reason = unavailable(request.param)
    if reason:
        pytest.skip(reason)
    with resp_server(request.param) as url:
        yield url


@pytest.fixture
def cache(resp_url: str) -> Iterator[FasterCache]:
    c = FasterCache(resp_url, {})
    c.clear()
    yield c
    c.clear()


def test_basic_semantics(cache: FasterCache) -> None:
    cache.set("a", {"x": 1})
    assert cache.get("a") == {"x": 1}
    assert cache.get("missing", "d") == "d"
    assert cache.add("a", 2) is False and cache.add("b", 2) is True
    assert cache.has_key("b") and "b" in cache
    assert cache.get_many(["a", "b", "zz"]) == {"a": {"x": 1}, "b": 2}
    assert cache.set_many({"c": 3, "d": None}) == []
    assert cache.get("d", "absent") is None
    assert cache.delete("c") is True and cache.delete("c") is False
    assert cache.delete_many([]) is None  # type: ignore[func-returns-value]
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b"]) == {}
    cache.set("z", 1, timeout=0)
    assert cache.get("z") is None
    assert cache.add("z", 1, timeout=0) is True and cache.get("z") is None
    cache.set("f", "v", timeout=0.5)
    assert cache.get("f") == "v"
    cache.set("t", "v", timeout=1)
    assert cache.touch("t", None) is True and cache.ttl("t") is None
    assert cache.touch("nope") is False
    assert cache.touch("t", 0) is True and cache.get("t") is None
    cache.set("forever", 1, timeout=None)
    assert cache.ttl("forever") is None


def test_values_are_compatible_with_djangos_redis_cache(cache: FasterCache, resp_url: str) -> None:
    theirs = RedisCache(resp_url, {})
    theirs.set("shared-int", 7)
    theirs.set("shared-obj", ["x", 1])
    assert cache.get("shared-int") == 7 and cache.get("shared-obj") == ["x", 1]
    cache.set("ours", {"k": 2})
    cache.set("n", 5)
    assert theirs.get("ours") == {"k": 2} and theirs.get("n") == 5
    assert redis.Redis.from_url(resp_url).get(":1:n") == b"5"


def test_incr(cache: FasterCache) -> None:
    cache.set("n", 0)

    def work() -> None:
        for _ in range(100):
            cache.incr("n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("n") == 400
    assert cache.decr("n", 500) == -100
    cache.set("f", 1.5, timeout=100)
    assert cache.incr("f") == 2.5
    assert 90 <= cache.ttl("f") <= 100  # type: ignore[operator]  # the RMW kept the TTL
    with pytest.raises(ValueError):
        cache.incr("missing")
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.incr("s")


def test_concurrent_aincr_is_atomic(cache: FasterCache) -> None:
    async def main() -> Any:
        await cache.aset("n", 0)
        await asyncio.gather(*(cache.aincr("n") for _ in range(50)))
        return await cache.aget("n")

    assert asyncio.run(main()) == 50


def test_async_api(cache: FasterCache) -> None:
    async def main() -> None:
        assert await cache.aadd("a", 1) is True
        assert await cache.aget_many(["a", "b"]) == {"a": 1}
        assert await cache.ahas_key("a") is True
        await cache.aset_many({"b": 2})
        assert await cache.atouch("b", 100) is True
        assert await cache.adelete("a") is True
        await cache.adelete_many(["b"])
        assert await cache.aget("b") is None
        await cache.aclear()

    asyncio.run(main())


def test_extras(cache: FasterCache) -> None:
    cache.set("k", "v", timeout=60)
    assert 55 <= cache.ttl("k") <= 60  # type: ignore[operator]
    assert cache.ttl("absent") == 0
    assert cache.persist("k") is True and cache.ttl("k") is None
    assert cache.persist("absent") is False
    assert cache.expire("k", 30) is True and 25 <= cache.ttl("k") <= 30  # type: ignore[operator]
    for name in ["user:1", "user:2", "user:10", "other"]:
        cache.set(name, name)
    assert sorted(cache.iter_keys("user:?")) == ["user:1", "user:2"]
    assert cache.delete_pattern("user:*") == 3
    assert sorted(cache.keys("*")) == ["k", "other"]
    stats = cache.stats()
    assert stats["mode"] == "resp" and stats["keys"] == 2


def test_lock(cache: FasterCache) -> None:
    lock = cache.lock("job", timeout=5)
    assert lock.acquire(blocking=False)
    assert not cache.lock("job").acquire(blocking=False)
    with pytest.raises(LockError), cache.lock("job", blocking_timeout=0.1):
        pass
    assert lock.extend(10) and cache.ttl("job") > 5  # type: ignore[operator]
    lock.release()
    first = cache.lock("lease", timeout=0.2)
    assert first.acquire()
    time.sleep(0.4)
    second = cache.lock("lease", timeout=5)
    assert second.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        first.release()
    second.release()
    cache.set("plain", 0)

    def work() -> None:
        for _ in range(10):
            with cache.lock("mutex", timeout=10, sleep=0.001):
                cache.set("plain", cache.get("plain") + 1)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("plain") == 30


def test_maintenance_over_resp(cache: FasterCache) -> None:
    from faster_backend.integrations.django.maintenance import check, compact

    cache.set_many({f"k{i}": i for i in range(30)})
    report = check(cache)
    assert report.ok and report.values_ok == 30
    with pytest.raises(RuntimeError, match="embedded store"):
        compact(cache)


@pytest.mark.django_db
def test_sample_dashboard_over_resp(resp_url: str, client: Any, admin_user: Any) -> None:
    from django.core.cache import cache as default_cache
    from django.test import override_settings

    conf = {"default": {"BACKEND": "faster_backend.integrations.django.FasterCache",
                        "LOCATION": resp_url}}
    with override_settings(CACHES=conf):
        default_cache.clear()
        client.force_login(admin_user)  # the session is stored in the server
        client.get("/")
        response = client.get("/dashboard/")
        assert response.status_code == 200
        page = response.content.decode()
        assert "(resp)" in page and '<svg id="hit-chart"' in page
        assert "No log regions (RESP mode)." in page
        assert "<li>demo:visits</li>" in page
        default_cache.clear()


def test_huge_timeouts(cache: FasterCache) -> None:
    cache.set("k", "v", 10**17)
    cache.set_many({"m": 1}, float("inf"))
    assert cache.get("k") == "v" and cache.get("m") == 1
    assert cache.ttl("k") > 10**10  # type: ignore[operator]
