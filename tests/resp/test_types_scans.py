"""HSCAN / SSCAN / ZSCAN: real cursors over large collections, MATCH, COUNT and NOVALUES.

Redis' guarantee is checked while the collection changes between calls: an element present for
the whole scan is returned (here exactly once); small collections answer in one reply, like
Redis' listpack encodings. The same scans are run against Debian's redis-server.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resp.harness import ServerProcess, start_server
from resp.typeharness import redis_server_process


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("scans"))
    yield s
    assert s.stop() == 0, s.log()


def _fill(r: redis.Redis, n: int) -> None:
    r.delete("h", "s", "z")
    r.hset("h", mapping={f"f{i}": f"v{i}" for i in range(n)})
    r.sadd("s", *[f"m{i}" for i in range(n)])
    r.zadd("z", {f"m{i}": i for i in range(n)})


def _raw(port: int, protocol: int = 2) -> redis.Redis:
    """A client that returns the scan replies as sent: [cursor, flat items]."""
    r = redis.Redis(port=port, protocol=protocol)
    for name in ("HSCAN", "SSCAN", "ZSCAN"):
        r.response_callbacks.pop(name, None)
    return r


def _pages(r: redis.Redis, cmd: str, key: str, *opts: Any) -> list[tuple[int, list[bytes]]]:
    """Every reply of a full iteration: (cursor, flat items)."""
    out = []
    cursor = 0
    for _ in range(100_000):
        raw = r.execute_command(cmd, key, cursor, *opts)
        cursor = int(raw[0])
        out.append((cursor, list(raw[1])))
        if cursor == 0:
            return out
    raise AssertionError("the scan never ended")


@pytest.mark.parametrize("proto", [2, 3])
def test_large_collections_page_by_count(srv: ServerProcess, proto: int) -> None:
    r = _raw(srv.port, proto)
    _fill(r, 1000)
    for cmd, key, step in (("HSCAN", "h", 2), ("SSCAN", "s", 1), ("ZSCAN", "z", 2)):
        pages = _pages(r, cmd, key, "COUNT", 10)
        assert len(pages) >= 50, cmd  # it pages: 1000 elements, about 10 per reply
        assert all(len(items) <= 10 * step for _c, items in pages[:-1])
        items = [x for _c, page in pages for x in page]
        names = items[::step]
        assert len(names) == len(set(names)) == 1000, cmd  # each once
        if cmd == "HSCAN":
            assert dict(zip(items[::2], items[1::2], strict=True)) == r.hgetall("h")
        if cmd == "ZSCAN":
            assert {m: float(s) for m, s in zip(items[::2], items[1::2], strict=True)} == dict(
                r.zrange("z", 0, -1, withscores=True)
            )
    # MATCH filters each page (pages may come back empty), NOVALUES drops the values.
    got = [x for _c, p in _pages(r, "HSCAN", "h", "MATCH", "f1*", "COUNT", 50) for x in p]
    want = {b"f%d" % i: b"v%d" % i for i in range(1000) if str(i).startswith("1")}
    assert dict(zip(got[::2], got[1::2], strict=True)) == want
    got = [x for _c, p in _pages(r, "HSCAN", "h", "NOVALUES", "MATCH", "f1*") for x in p]
    assert sorted(got) == sorted(want)
    got = [x for _c, p in _pages(r, "SSCAN", "s", "MATCH", "m99*", "COUNT", 1000) for x in p]
    assert sorted(got) == sorted(b"m%d" % i for i in range(1000) if str(i).startswith("99"))
    # COUNT larger than the collection: everything in one reply.
    assert _pages(r, "ZSCAN", "z", "COUNT", 5000)[0][0] == 0


def test_small_collections_answer_at_once(srv: ServerProcess) -> None:
    r = redis.Redis(port=srv.port)
    _fill(r, 100)
    assert r.hscan("h", 0, count=1) == (0, {b"f%d" % i: b"v%d" % i for i in range(100)})
    cursor, members = r.sscan("s", 0, count=1)
    assert cursor == 0 and len(members) == 100
    cursor, pairs = r.zscan("z", 0, count=1)
    assert cursor == 0 and pairs == [(b"m%d" % i, float(i)) for i in range(100)]  # score order
    assert r.hscan("missing") == (0, {})
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.sscan("str")


def test_elements_present_throughout_are_returned_while_it_changes(srv: ServerProcess) -> None:
    rng = random.Random(7)
    r = _raw(srv.port)
    for cmd, key in (("HSCAN", "h"), ("SSCAN", "s"), ("ZSCAN", "z")):
        _fill(r, 2000)
        stable = {b"m%d" % i if key != "h" else b"f%d" % i for i in range(0, 2000, 2)}
        removed: set[bytes] = set()
        seen: list[bytes] = []
        cursor = 0
        step = 1 if cmd == "SSCAN" else 2
        while True:
            raw = r.execute_command(cmd, key, cursor, "COUNT", rng.choice((1, 7, 40)))
            cursor = int(raw[0])
            page = list(raw[1])[::step]
            assert not set(page) & removed  # removed before this call: never returned
            seen.extend(page)
            # Between calls: remove some odd elements, add new ones (never stable ones).
            for _ in range(5):
                i = rng.randrange(1, 2000, 2)
                name = (b"f%d" if key == "h" else b"m%d") % i
                if key == "h":
                    r.hdel("h", name)
                elif key == "s":
                    r.srem("s", name)
                else:
                    r.zrem("z", name)
                removed.add(name)
                new = b"new%d" % rng.randrange(10**9)
                if key == "h":
                    r.hset("h", new, b"1")
                elif key == "s":
                    r.sadd("s", new)
                else:
                    r.zadd("z", {new: 1})
            if cursor == 0:
                break
        assert stable <= set(seen), cmd
        assert len(seen) == len(set(seen)), cmd  # and never twice


def test_scan_errors(srv: ServerProcess) -> None:
    r = redis.Redis(port=srv.port)
    r.sadd("e", "a")
    for args in (("SSCAN", "e", "x"), ("SSCAN", "e", "0", "COUNT", "0"),
                 ("SSCAN", "e", "0", "COUNT"), ("SSCAN", "e", "0", "BOGUS", "1"),
                 ("SSCAN", "e", "-1"), ("SSCAN", "e", "18446744073709551616")):
        with pytest.raises(redis.ResponseError):
            r.execute_command(*args)


def test_full_scans_match_redis_server(tmp_path: Path) -> None:
    """The same collections, scanned to the end with MATCH and COUNT, against redis-server:
    the same elements (our pages differ: cursors are implementation details)."""
    with redis_server_process(tmp_path) as theirs_port:
        if theirs_port is None:
            pytest.skip("redis-server is not installed")
        srv = start_server(tmp_path)
        try:
            ours, theirs = _raw(srv.port), _raw(theirs_port)
            for r in (ours, theirs):
                _fill(r, 600)
                r.sadd("ints", *range(300))  # an intset in Redis: one reply there
            for args in (("HSCAN", "h"), ("HSCAN", "h", "MATCH", "f5*", "COUNT", "7"),
                         ("SSCAN", "s", "COUNT", "3"), ("SSCAN", "ints", "MATCH", "1?"),
                         ("ZSCAN", "z", "COUNT", "100"), ("ZSCAN", "z", "MATCH", "*9")):
                step = 1 if args[0] == "SSCAN" else 2
                results = []
                for r in (ours, theirs):
                    items = [x for _c, p in _pages(r, *args) for x in p]
                    pairs = [tuple(items[i : i + step]) for i in range(0, len(items), step)]
                    results.append(sorted(set(pairs)))
                assert results[0] == results[1], args
            for args in (("SSCAN", "s", "x"), ("SSCAN", "s", "0", "COUNT", "0"),
                         ("HSCAN", "h", "0", "MATCH")):
                errors = []
                for r in (ours, theirs):
                    with pytest.raises(redis.ResponseError) as exc:
                        r.execute_command(*args)
                    errors.append(str(exc.value))
                assert errors[0] == errors[1], args
        finally:
            assert srv.stop() == 0, srv.log()

