"""dogpile.cache's own shipped suites against our backend: embedded, our server, redis-server."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from dogpile.cache.api import NO_VALUE, CacheMutex
from dogpile.cache.region import make_region
from dogpile.testing.fixtures import (
    _GenericBackendFixture,
    _GenericBackendTestSuite,
    _GenericMutexTestSuite,
    _GenericSerializerTestSuite,
)
from sqla_peers import peer_url

from faster_backend.integrations.sqlalchemy._kv import close_local, open_local
from faster_backend.integrations.sqlalchemy.dogpile_backend import FasterBackend


class _Embedded:
    backend = "faster_backend"
    config_args: dict[str, Any] = {}
    _dir: str

    @classmethod
    def setup_class(cls) -> None:
        cls._dir = tempfile.mkdtemp(prefix="fb-dogpile-")
        cls.config_args = {"arguments": {"path": cls._dir, "memory_size": "16MiB"}}
        super().setup_class()  # type: ignore[misc]

    @classmethod
    def teardown_class(cls) -> None:
        close_local(cls._dir)
        shutil.rmtree(cls._dir, ignore_errors=True)


class _Server:
    backend = "faster_backend"
    config_args: dict[str, Any] = {}
    peer: str

    @classmethod
    def setup_class(cls) -> None:
        cls.config_args = {"arguments": {"url": peer_url(cls.peer), "lock_timeout": 20}}
        super().setup_class()  # type: ignore[misc]


class _FasterServer(_Server):
    peer = "faster"


class _RedisServer(_Server):
    peer = "redis"


_SUITES: dict[str, tuple[type, ...]] = {
    "Backend": (_GenericBackendTestSuite,),
    "Serializer": (_GenericSerializerTestSuite, _GenericBackendFixture),
    "Mutex": (_GenericMutexTestSuite,),
}
_MODES: dict[str, type] = {
    "Embedded": _Embedded,
    "FasterServer": _FasterServer,
    "RedisServer": _RedisServer,
}

# dogpile's own configuration collects "*Test"; ours collects "Test*": name them that way.
for _mode, _mode_cls in _MODES.items():
    for _suite, _bases in _SUITES.items():
        _name = f"TestDogpile{_mode}{_suite}"
        globals()[_name] = type(_name, (_mode_cls, *_bases), {"__module__": __name__})


# -- beyond dogpile's suites -----------------------------------------------------------------


def test_entry_point_registered() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="dogpile.cache") if e.name == "faster_backend"]
    assert ep.load() is FasterBackend


def test_embedded_store_shared_per_path(tmp_path: Any) -> None:
    path = str(tmp_path / "shared")
    r1 = make_region().configure("faster_backend", arguments={"path": path})
    r2 = make_region().configure("faster_backend", arguments={"path": path})
    r1.set("k", "v")
    assert r2.get("k") == "v"
    # one lock table per store: a lock taken through one region is seen by the other
    m1 = r1.backend.get_mutex("k")
    assert m1.acquire(False)
    assert r2.key_is_locked("k")
    assert not r2.backend.get_mutex("k").acquire(False)
    m1.release()
    with pytest.raises(ValueError, match="memory_size"):
        FasterBackend({"path": path, "memory_size": "999MiB"})
    assert close_local(path)


def test_in_memory_without_path() -> None:
    b1 = FasterBackend({"name": "test-mem"})
    b2 = FasterBackend({"name": "test-mem"})
    b1.set_serialized("a", b"1")
    assert b2.get_serialized("a") == b"1"
    assert FasterBackend({"name": "other-mem"}).get_serialized("a") is NO_VALUE
    close_local(None, name="test-mem")
    close_local(None, name="other-mem")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expiration_time"):
        FasterBackend({"name": "bad", "expiration_time": "soon"})
    with pytest.raises(ValueError, match="not both"):
        FasterBackend({"path": "/tmp/x", "url": "redis://127.0.0.1:1/0"})


def _wait_expired(backend: FasterBackend, key: str, timeout: float = 10.0) -> None:
    import time

    from dogpile.cache.api import NO_VALUE

    deadline = time.monotonic() + timeout
    while backend.get_serialized(key) is not NO_VALUE:
        assert time.monotonic() < deadline, "value did not expire"
        time.sleep(0.05)


def test_store_expiration_embedded() -> None:
    b = FasterBackend({"name": "ttl-mem", "expiration_time": 1.5})
    b.set_serialized("k", b"v")
    b.set_serialized_multi({"m1": b"1", "m2": b"2"})
    assert b.get_serialized_multi(["k", "m1", "m2"]) == [b"v", b"1", b"2"]
    _wait_expired(b, "k")
    _wait_expired(b, "m2")
    close_local(None, name="ttl-mem")


@pytest.mark.parametrize("peer", ["faster", "redis"])
def test_store_expiration_server(peer: str) -> None:
    url = peer_url(peer)
    b = FasterBackend({"url": url, "redis_expiration_time": 2, "key_prefix": "ttl:"})
    b.set_serialized("k", b"v")
    b.set_serialized_multi({"m": b"1"})
    ttl = b.kv.client.pttl(b"ttl:k")  # type: ignore[attr-defined]
    assert 0 < ttl <= 2000
    assert 0 < b.kv.client.pttl(b"ttl:m") <= 2000  # type: ignore[attr-defined]
    _wait_expired(b, "k")


@pytest.mark.parametrize("peer", ["faster", "redis"])
def test_server_mutex_across_processes(peer: str) -> None:
    """A lock taken in another process blocks us; our release never frees another's lock."""
    import subprocess
    import sys

    url = peer_url(peer)
    b = FasterBackend({"url": url, "lock_timeout": 30})
    mutex = b.get_mutex("xproc")
    assert isinstance(mutex, CacheMutex)
    code = (
        "import sys\n"
        "from faster_backend.integrations.sqlalchemy.dogpile_backend import FasterBackend\n"
        f"m = FasterBackend({{'url': {url!r}}}).get_mutex('xproc')\n"
        "assert m.acquire(False)\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
        "m.release()\n"
        "print('released', flush=True)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "held"
        assert mutex.locked()
        assert not mutex.acquire(False)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "released"
        assert mutex.acquire(True)
        assert mutex.locked()
        mutex.release()
        assert not mutex.locked()
    finally:
        child.kill()
        child.wait(10)


@pytest.mark.parametrize("peer", ["faster", "redis"])
def test_server_lock_expires_and_stale_release_is_safe(peer: str) -> None:
    import time

    url = peer_url(peer)
    b = FasterBackend({"url": url, "lock_timeout": 0.2})
    m1 = b.get_mutex("exp")
    assert m1.acquire(False)
    deadline = time.monotonic() + 10
    m2 = b.get_mutex("exp")
    while not m2.acquire(False):  # the first holder "crashed": its lock times out
        assert time.monotonic() < deadline
        time.sleep(0.05)
    m1.release()  # stale: must not delete m2's lock
    assert m2.locked()
    m2.release()
    assert not m2.locked()


def test_open_local_is_shared() -> None:
    a = open_local(None, name="shared-check")
    b = open_local(None, name="shared-check")
    assert a is b
    close_local(None, name="shared-check")
