"""FasterCache beyond Django's suite: the shared store, value encoding, atomic incr, async,
the django-redis extras, culling options, process ownership, and a model comparison with
LocMemCache."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import CacheKeyWarning
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faster_backend import DataDirLockedError
from faster_backend.integrations.django import FasterCache, LockError, LockNotOwnedError
from faster_backend.integrations.django.glob import compile_glob, escape

OPTIONS = {"memory_size": "16MiB", "MAX_ENTRIES": 10_000}


def make_cache(location: str | Path, **params: Any) -> FasterCache:
    conf: dict[str, Any] = {"OPTIONS": dict(OPTIONS)}
    conf.update(params)
    return FasterCache(str(location), conf)


@pytest.fixture
def cache(tmp_path: Path) -> FasterCache:
    return make_cache(tmp_path / "cache")


# -- one store per LOCATION per process ------------------------------------------------------


def test_aliases_and_threads_share_one_store(tmp_path: Path) -> None:
    loc = tmp_path / "shared"
    a = make_cache(loc)
    b = make_cache(str(loc) + "/", KEY_PREFIX="p")  # same directory, spelled differently
    a.open()
    b.open()
    assert a._embedded is b._embedded
    from_thread: list[FasterCache] = []

    def in_thread() -> None:
        c = make_cache(loc)
        c.open()
        from_thread.append(c)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert from_thread[0]._embedded is a._embedded
    a.set("k", "from a")
    assert b.get("k") is None  # isolated by KEY_PREFIX
    assert from_thread[0].get("k") == "from a"
    a.close()  # Django calls this after every request: the store stays open
    assert a.get("k") == "from a" and not a._embedded.closed  # type: ignore[union-attr]


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    loc = tmp_path / "owned"
    make_cache(loc).set("k", 1)
    code = (
        "import django; from django.conf import settings; settings.configure(); django.setup()\n"
        "from faster_backend.integrations.django import FasterCache\n"
        f"c = FasterCache({str(loc)!r}, {{}})\n"  # building the backend does not open it
        "c.get('k')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "DataDirLockedError" in proc.stderr
    assert f"process {os.getpid()}" in proc.stderr
    assert "faster-backend serve" in proc.stderr
    assert "LOCATION=" in proc.stderr  # the note naming the Django setting


def test_stores_are_closed_at_exit(tmp_path: Path) -> None:
    code = (
        "import atexit\n"
        "seen = []\n"
        # Registered before the backend module is imported, so it runs after its close_all.
        "atexit.register(lambda: print('closed' if seen[0]._embedded.closed else 'open'))\n"
        "import django; from django.conf import settings; settings.configure(); django.setup()\n"
        "from faster_backend.integrations.django import FasterCache\n"
        f"c = FasterCache({str(tmp_path / 'exit')!r}, {{}})\n"
        "c.set('k', 1); c.close(); assert c.get('k') == 1\n"
        "seen.append(c)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "closed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_does_not_use_the_parents_store(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "forked")
    cache.set("k", "parent")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not silently read or write the parent's copy
        try:
            cache.get("k")
            os.write(write_end, b"used the inherited store")
        except DataDirLockedError:
            os.write(write_end, b"locked")
        except BaseException as exc:
            os.write(write_end, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as f:
        assert f.read() == b"locked"
    assert cache.get("k") == "parent"


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        FasterCache("", {})
    with pytest.raises(ImproperlyConfigured, match="one LOCATION"):
        FasterCache(["redis://a:1/0", "redis://b:1/0"], {})  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="memory_sise"):
        FasterCache(str(tmp_path / "x"), {"OPTIONS": {"memory_sise": "1MiB"}})


def test_memory_location_is_shared_per_process() -> None:
    a = FasterCache(":memory:", {"OPTIONS": {"memory_size": "16MiB"}})
    b = FasterCache(":memory:", {"OPTIONS": {"memory_size": "16MiB"}, "VERSION": 2})
    a.open()
    b.open()
    assert a._embedded is b._embedded
    a.set("m", 1)
    assert b.get("m") is None and b.get("m", version=1) == 1
    a.clear()


# -- values ----------------------------------------------------------------------------------


def test_ints_are_stored_like_djangos_redis_cache(cache: FasterCache) -> None:
    cache.set("n", 42)
    cache.set("big", 1 << 70)
    cache.set("flag", True)
    kv = cache._embedded
    assert kv is not None
    assert kv.read(b":1:n") == b"42"  # INCRBY-able over RESP
    assert kv.read(b":1:big")[:1] == b"\x80"  # type: ignore[index]  # beyond 64 bits: pickled
    assert cache.get("big") == 1 << 70
    assert cache.get("flag") is True
    assert pickle.loads(kv.read(b":1:flag")) is True  # type: ignore[arg-type]


def test_incr_semantics(cache: FasterCache) -> None:
    cache.set("f", 1.5)
    assert cache.incr("f") == 2.5
    cache.set("d", Decimal("1.1"))
    assert cache.decr("d", 2) == Decimal("-0.9")
    cache.set("big", (1 << 63) - 1)
    assert cache.incr("big") == 1 << 63  # crosses into pickled storage
    assert cache.decr("big") == (1 << 63) - 1
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.incr("s")
    assert cache.get("s") == "text"  # a failed incr writes nothing


def test_huge_timeouts_mean_practically_forever(cache: FasterCache) -> None:
    for timeout in (10**17, float("inf"), float("nan")):
        cache.set("k", "v", timeout)
        assert cache.get("k") == "v"
        assert cache.add("k2", "v", timeout) is True and cache.get("k2") == "v"
        assert cache.touch("k2", timeout) is True and cache.get("k2") == "v"
        assert cache.ttl("k") > 10**10  # type: ignore[operator]
        cache.delete_many(["k", "k2"])


def test_incr_keeps_the_timeout(cache: FasterCache) -> None:
    cache.set("t", 1, timeout=100)
    cache.incr("t")
    left = cache.ttl("t")
    assert left is not None and 90 <= left <= 100
    cache.set("forever", 1, timeout=None)
    cache.incr("forever")
    assert cache.ttl("forever") is None


def test_incr_is_atomic_across_threads(cache: FasterCache) -> None:
    cache.set("hits", 0)

    def work() -> None:
        for _ in range(500):
            cache.incr("hits")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("hits") == 4000


def test_key_warnings_on_the_fast_path(cache: FasterCache) -> None:
    for key in ["with space", "tab\t", "x" * 260, "del\x7f"]:
        with pytest.warns(CacheKeyWarning):
            cache.set(key, 1)
        with pytest.warns(CacheKeyWarning):
            assert cache.get(key) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set("ünïcödé-ok", 2)  # printable non-ASCII is fine for memcached too
        cache.set("line\u2028sep", 3)  # not printable, yet no memcached error: no warning
        assert cache.get("ünïcödé-ok") == 2 and cache.get("line\u2028sep") == 3
        cache.set("lone\udcffsurrogate", 4)  # stored like LocMemCache would, no warning
        assert cache.get("lone\udcffsurrogate") == 4


def test_key_attributes_can_change(cache: FasterCache) -> None:
    cache.set("k", "v1")
    cache.version = 2
    assert cache.get("k") is None
    cache.set("k", "v2")
    cache.key_prefix = "other"
    assert cache.get("k") is None
    cache.key_prefix = ""
    assert cache.get("k") == "v2" and cache.get("k", version=1) == "v1"
    cache.key_func = lambda key, prefix, version: f"custom/{key}"
    cache.set("k", "v3")
    assert cache._embedded.read(b"custom/k") is not None  # type: ignore[union-attr]


class CustomKeys(FasterCache):
    def make_key(self, key: Any, version: int | None = None) -> str:
        return f"sub:{key}"


def test_subclass_make_key_is_honoured(tmp_path: Path) -> None:
    c = CustomKeys(str(tmp_path / "sub"), {"OPTIONS": OPTIONS})
    c.set("a", 1)
    assert c.get("a") == 1
    assert c._embedded.read(b"sub:a") == b"1"  # type: ignore[union-attr]


# -- culling ---------------------------------------------------------------------------------


def test_max_entries_none_disables_culling(tmp_path: Path) -> None:
    c = make_cache(tmp_path / "nocull", OPTIONS={"MAX_ENTRIES": None, "memory_size": "16MiB"})
    for i in range(1000):
        c.set(f"k{i}", i)
    assert len(c._embedded) == 1000  # type: ignore[arg-type]


def test_default_max_entries_culls_like_django(tmp_path: Path) -> None:
    c = FasterCache(str(tmp_path / "c300"), {"OPTIONS": {"memory_size": "16MiB"}})
    for i in range(1000):
        c.set(f"k{i}", i)
    assert len(c._embedded) <= 300  # type: ignore[arg-type]
    assert c.get("k999") == 999  # the newest key survives: culling happens before the write


# -- async -----------------------------------------------------------------------------------


def test_concurrent_aincr_is_atomic(cache: FasterCache) -> None:
    async def main() -> Any:
        await cache.aset("n", 0)
        await asyncio.gather(*(cache.aincr("n") for _ in range(50)))
        return await cache.aget("n")

    assert asyncio.run(main()) == 50


def test_async_runs_on_the_event_loop(cache: FasterCache, monkeypatch: pytest.MonkeyPatch) -> None:
    import faster_backend.integrations.django.backend as backend_module

    def no_thread_hop(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an embedded async operation left the event loop")

    monkeypatch.setattr(backend_module, "sync_to_async", no_thread_hop)
    monkeypatch.setattr(backend_module.asyncio, "to_thread", no_thread_hop)

    async def main() -> None:
        await cache.aset("n", 0)
        assert await cache.aincr("n") == 1
        assert await cache.aadd("a", 1) and await cache.ahas_key("a")
        assert await cache.atouch("a", 10) and await cache.adelete("a")
        await cache.aset_many({"x": 1, "y": 2})
        assert await cache.aget_many(["x", "y", "n"]) == {"x": 1, "y": 2, "n": 1}
        await cache.adelete_many(["x", "y"])
        assert await cache.aget("x") is None

    asyncio.run(main())


def test_records_on_the_device_are_read_asynchronously(tmp_path: Path) -> None:
    c = make_cache(tmp_path / "disk", OPTIONS={"memory_size": "1MiB", "MAX_ENTRIES": None})
    value = "v" * 1000
    c.set("counter", 0, None)
    for i in range(3000):  # about 3 MB through a 1 MiB memory budget: the oldest go to disk
        c.set(f"k{i}", value, None)
    before = c.stats()
    assert before["log_disk_bytes"] > 0

    async def main() -> tuple[list[Any], Any, Any]:
        values = [await c.aget(f"k{i}") for i in range(0, 3000, 101)]
        many = await c.aget_many(["k0", "k1", "k2"])
        return values, many, await c.aincr("counter")

    values, many, counter = asyncio.run(main())
    assert values == [value] * len(values)
    assert many == {"k0": value, "k1": value, "k2": value}
    assert counter == 1
    assert c.stats()["disk_reads"] > before["disk_reads"]  # the awaited reads went to the device
    assert c.get("k5") == value  # and the sync path reads the device too


def test_compact_reclaims_the_oldest_log(tmp_path: Path) -> None:
    from faster_backend.integrations.django.maintenance import check, compact

    c = make_cache(tmp_path / "compact", OPTIONS={"memory_size": "1MiB", "MAX_ENTRIES": None})
    for round_ in ("old", "new"):  # the second round makes the first one's records dead
        for i in range(2000):
            c.set(f"k{i}", f"{round_}-{i}-" + "x" * 900, None)
    c.set("short", 1, 0.05)
    time.sleep(0.2)
    report = compact(c)
    assert report.expired_removed == 1
    assert report.stats_after["log_begin_address"] > report.stats_before["log_begin_address"]
    assert report.log_disk_bytes_after < report.log_disk_bytes_before
    assert report.keys_after == 2000
    assert all(c.get(f"k{i}") == f"new-{i}-" + "x" * 900 for i in range(2000))
    assert check(c).values_ok == 2000


def test_async_api(cache: FasterCache) -> None:
    async def main() -> None:
        assert await cache.aadd("a", 1) is True
        assert await cache.aadd("a", 2) is False
        assert await cache.aget("a") == 1
        assert await cache.aget("nope", "dflt") == "dflt"
        assert await cache.aset_many({"b": 2, "c": [3]}) == []
        assert await cache.aget_many(["a", "b", "c", "zz"]) == {"a": 1, "b": 2, "c": [3]}
        assert await cache.ahas_key("b") is True
        assert await cache.adecr("b", 5) == -3
        assert await cache.atouch("b", None) is True and cache.ttl("b") is None
        assert await cache.adelete("b") is True and await cache.adelete("b") is False
        await cache.adelete_many(["a", "c"])
        assert await cache.aget_many(["a", "c"]) == {}
        assert await cache.aget_or_set("g", lambda: "made") == "made"
        assert await cache.aincr_version("g") == 2
        assert await cache.aget("g", version=2) == "made"
        await cache.aclear()
        assert await cache.aget("g", version=2) is None
        await cache.aclose()

    asyncio.run(main())


# -- django-redis extras ---------------------------------------------------------------------


def test_ttl_expire_persist(cache: FasterCache) -> None:
    assert cache.ttl("absent") == 0
    cache.set("k", "v", timeout=60)
    assert 55 <= cache.ttl("k") <= 60  # type: ignore[operator]
    assert 55_000 <= cache.pttl("k") <= 60_000  # type: ignore[operator]
    assert cache.persist("k") is True and cache.ttl("k") is None
    assert cache.expire("k", 30) is True and 25 <= cache.ttl("k") <= 30  # type: ignore[operator]
    assert cache.expire("k", 0) is True and cache.get("k") is None
    assert cache.expire("absent", 10) is False and cache.persist("absent") is False


def test_iter_keys_and_delete_pattern(tmp_path: Path) -> None:
    loc = tmp_path / "patterns"
    c = make_cache(loc)
    other = make_cache(loc, KEY_PREFIX="other*[x]")
    for name in ["user:1", "user:2", "user:10", "session:1", "a?b", "a*b"]:
        c.set(name, name)
        other.set(name, name)
    c.set("user:3", "v2", version=2)
    assert sorted(c.iter_keys("user:*")) == ["user:1", "user:10", "user:2"]
    assert sorted(c.keys("user:?")) == ["user:1", "user:2"]
    assert sorted(c.iter_keys("a\\?b")) == ["a?b"]
    assert sorted(c.iter_keys("user:[12]*")) == ["user:1", "user:10", "user:2"]
    assert sorted(c.iter_keys("user:*", version=2)) == ["user:3"]
    # A prefix full of glob characters is matched literally.
    assert sorted(other.iter_keys("user:*")) == ["user:1", "user:10", "user:2"]
    assert c.delete_pattern("user:*") == 3
    assert c.get("user:1") is None and other.get("user:1") == "user:1"
    assert c.get("user:3", version=2) == "v2"
    assert sorted(c.iter_keys("*")) == ["a*b", "a?b", "session:1"]


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("h?llo", ["hello", "hallo"], ["hllo", "heello"]),
        ("h*llo", ["hllo", "heeeello"], ["hell"]),
        ("h[ae]llo", ["hello", "hallo"], ["hillo"]),
        ("h[^e]llo", ["hallo", "hbllo"], ["hello"]),
        ("h[a-b]llo", ["hallo", "hbllo"], ["hcllo"]),
        ("a\\*b", ["a*b"], ["axb"]),
        ("x.y", ["x.y"], ["xzy"]),
    ],
)
def test_redis_glob(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern)
    assert all(regex.fullmatch(m) for m in matches)
    assert not any(regex.fullmatch(m) for m in misses)
    assert compile_glob(escape("a*b?[c]\\")).fullmatch("a*b?[c]\\")


def test_lock(cache: FasterCache) -> None:
    lock = cache.lock("job", timeout=5)
    assert lock.acquire(blocking=False) is True
    assert lock.locked() and lock.owned()
    other = cache.lock("job", timeout=5)
    assert other.acquire(blocking=False) is False
    t0 = time.monotonic()
    assert other.acquire(blocking_timeout=0.3, sleep=0.05) is False
    assert time.monotonic() - t0 >= 0.25
    with pytest.raises(LockError), cache.lock("job", blocking_timeout=0.1):
        pass
    assert lock.extend(10) is True and cache.ttl("job") > 5  # type: ignore[operator]
    lock.release()
    assert not lock.locked()
    with pytest.raises(LockError):
        lock.release()
    with cache.lock("job", timeout=5) as held:
        assert held.owned()
    assert not cache.lock("job").locked()


def test_lock_lease_expiry_protects_the_next_holder(cache: FasterCache) -> None:
    first = cache.lock("lease", timeout=0.2)
    assert first.acquire()
    time.sleep(0.4)  # the lease runs out
    second = cache.lock("lease", timeout=5)
    assert second.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        first.release()  # must not release the second holder's lock
    assert second.owned()
    second.release()


def test_lock_serialises_threads(cache: FasterCache) -> None:
    cache.set("plain", 0)

    def work() -> None:
        for _ in range(20):
            with cache.lock("mutex", timeout=10, sleep=0.001):
                value = cache.get("plain")
                cache.set("plain", value + 1)  # a non-atomic read-then-write, made safe

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("plain") == 80


def test_stats(cache: FasterCache) -> None:
    cache.set("a", 1)
    cache.get("a")
    cache.get("missing")
    stats = cache.stats()
    assert stats["mode"] == "embedded"
    assert stats["keys"] == 1
    assert stats["hits"] >= 1 and stats["misses"] >= 1
    assert 0 < stats["hit_rate"] < 1
    assert stats["memory_bytes"] > 0
    assert stats["disk_bytes"] >= 0
    for name in ("log_begin_address", "log_head_address", "log_tail_address"):
        assert name in stats


# -- a dict model: FasterCache and LocMemCache agree on every operation sequence --------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.floats(0, 2))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, VALUES),
        st.tuples(st.just("add"), KEYS, VALUES),
        st.tuples(st.just("get"), KEYS, st.none()),
        st.tuples(st.just("delete"), KEYS, st.none()),
        st.tuples(st.just("incr"), KEYS, st.integers(-3, 3)),
        st.tuples(st.just("has_key"), KEYS, st.none()),
        st.tuples(st.just("touch"), KEYS, st.none()),
        st.tuples(st.just("get_many"), KEYS, st.none()),
        st.tuples(st.just("incr_version"), KEYS, st.none()),
    ),
    max_size=40,
)


def _apply(c: Any, op: str, key: str, arg: Any) -> Any:
    try:
        if op == "set":
            return c.set(key, arg)
        if op == "add":
            return c.add(key, arg)
        if op == "incr":
            return c.incr(key, arg)
        if op == "get_many":
            return c.get_many([key, "a", "zz"])
        if op == "incr_version":
            return c.incr_version(key)
        return getattr(c, op)(key)
    except (ValueError, TypeError) as exc:
        return type(exc)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_matches_locmem(tmp_path: Path, ops: list[tuple[str, str, Any]]) -> None:
    ours = make_cache(tmp_path / "model")
    ours.clear()
    model = LocMemCache("faster-model", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
    model.clear()
    for op, key, arg in ops:
        assert _apply(ours, op, key, arg) == _apply(model, op, key, arg), (op, key, arg)
    for key in ["a", "b", "c", "d"]:
        assert ours.get(key, "absent") == model.get(key, "absent")
