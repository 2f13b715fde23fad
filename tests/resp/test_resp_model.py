"""Random string/key command sequences against the server and a dict model (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resp.harness import ServerProcess

KEYS = [b"a", b"b", b"c", b"\x00bin\xff"]
keys = st.sampled_from(KEYS)
values = st.one_of(
    st.binary(max_size=12), st.integers(-(2**63), 2**63 - 1).map(lambda i: b"%d" % i)
)
ints = st.integers(-(2**64), 2**64)

ops = st.one_of(
    st.tuples(st.just("SET"), keys, values),
    st.tuples(st.just("GET"), keys),
    st.tuples(st.just("DEL"), keys),
    st.tuples(st.just("EXISTS"), keys),
    st.tuples(st.just("INCRBY"), keys, ints),
    st.tuples(st.just("APPEND"), keys, values),
    st.tuples(st.just("STRLEN"), keys),
    st.tuples(st.just("GETSET"), keys, values),
    st.tuples(st.just("GETDEL"), keys),
    st.tuples(st.just("SETNX"), keys, values),
    st.tuples(st.just("MSET"), keys, values, keys, values),
    st.tuples(st.just("MGET"), keys, keys),
    st.tuples(st.just("RENAME"), keys, keys),
    st.tuples(st.just("SETRANGE"), keys, st.integers(0, 20), values),
    st.tuples(st.just("GETRANGE"), keys, st.integers(-20, 20), st.integers(-20, 20)),
    st.tuples(st.just("DBSIZE")),
)

NOT_INT = "value is not an integer or out of range"


def model_step(m: dict[bytes, bytes], op: tuple[Any, ...]) -> Any:
    name = op[0]
    if name == "SET":
        m[op[1]] = op[2]
        return True
    if name == "GET":
        return m.get(op[1])
    if name == "DEL":
        return 1 if m.pop(op[1], None) is not None else 0
    if name == "EXISTS":
        return int(op[1] in m)
    if name == "INCRBY":
        if not -(2**63) <= op[2] < 2**63:
            return NOT_INT
        cur = m.get(op[1], b"0")
        try:
            n = int(cur)
            if cur != b"%d" % n or not -(2**63) <= n < 2**63:
                raise ValueError
        except ValueError:
            return NOT_INT
        if not -(2**63) <= n + op[2] < 2**63:
            return "increment or decrement would overflow"
        m[op[1]] = b"%d" % (n + op[2])
        return n + op[2]
    if name == "APPEND":
        m[op[1]] = m.get(op[1], b"") + op[2]
        return len(m[op[1]])
    if name == "STRLEN":
        return len(m.get(op[1], b""))
    if name == "GETSET":
        old = m.get(op[1])
        m[op[1]] = op[2]
        return old
    if name == "GETDEL":
        return m.pop(op[1], None)
    if name == "SETNX":
        if op[1] in m:
            return False
        m[op[1]] = op[2]
        return True
    if name == "MSET":
        m[op[1]] = op[2]
        m[op[3]] = op[4]
        return True
    if name == "MGET":
        return [m.get(op[1]), m.get(op[2])]
    if name == "RENAME":
        if op[1] not in m:
            return "no such key"
        v = m.pop(op[1])
        m[op[2]] = v
        return True
    if name == "SETRANGE":
        _, k, off, patch = op
        if not patch:
            return len(m.get(k, b""))
        cur = m.get(k, b"").ljust(off, b"\0")
        m[k] = cur[:off] + patch + cur[off + len(patch) :]
        return len(m[k])
    if name == "GETRANGE":
        _, k, start, end = op
        v = m.get(k, b"")
        n = len(v)
        if start < 0 and end < 0 and start > end:
            return b""
        start = max(0, n + start) if start < 0 else start
        end = max(0, n + end) if end < 0 else end
        end = min(end, n - 1)
        return b"" if n == 0 or start > end else v[start : end + 1]
    if name == "DBSIZE":
        return len(m)
    raise AssertionError(name)


def server_step(r: redis.Redis, op: tuple[Any, ...]) -> Any:
    try:
        result = r.execute_command(*op)
    except redis.ResponseError as e:
        return str(e)
    if op[0] in ("SET", "MSET", "RENAME"):
        return result in (True, b"OK")
    if op[0] == "SETNX":
        return bool(result)
    return result


@pytest.fixture(scope="module")
def r(server: ServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(port=server.port, db=7)
    yield client
    client.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(ops, max_size=30))
def test_commands_match_a_dict_model(r: redis.Redis, program: list[tuple[Any, ...]]) -> None:
    r.flushdb()
    model: dict[bytes, bytes] = {}
    for op in program:
        expected = model_step(model, op)
        got = server_step(r, op)
        assert got == expected, (op, model)
    assert sorted(r.keys("*")) == sorted(model)
    for k, v in model.items():
        assert r.get(k) == v
