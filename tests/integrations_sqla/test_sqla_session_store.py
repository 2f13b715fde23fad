"""SqlTableStore against real SQLite and PostgreSQL: the table is the truth, the log a cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqla_peers import peer_url

from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy._kv import LocalKV, close_local
from faster_backend.integrations.sqlalchemy.session_store import session_table, utcnow

MakeStore = Callable[..., SqlTableStore]


def _rows(store: SqlTableStore) -> dict[str, tuple[bytes, Any]]:
    t = store.table
    with store.engine.connect() as conn:
        return {
            r.session_id: (bytes(r.data), r.expiry)
            for r in conn.execute(sa.select(t.c.session_id, t.c.data, t.c.expiry))
        }


def _insert_rows(store: SqlTableStore, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(store.table.insert(), rows)


def _cached(store: SqlTableStore, sid: str) -> bytes | None:
    return store.cache.get(store._key(sid))


def test_round_trip(make_store: MakeStore) -> None:
    store = make_store()
    assert store.get("a") is None
    assert not store.exists("a")
    store.set("a", b"\x00data\xff", ttl=60)
    store.set("b", b"", ttl=timedelta(minutes=5))
    assert store.get("a") == b"\x00data\xff"
    assert store.get("b") == b""
    assert store.exists("a")
    rows = _rows(store)
    assert rows["a"][0] == b"\x00data\xff"
    expiry = rows["a"][1]
    assert abs((expiry - utcnow()).total_seconds() - 60) < 30
    assert store.expiry("a") == expiry
    store.set("a", b"v2", ttl=60)
    assert store.get("a") == b"v2"
    assert _rows(store)["a"][0] == b"v2"
    assert len(_rows(store)) == 2
    assert store.delete("a")
    assert not store.delete("a")
    assert store.get("a") is None
    assert "a" not in _rows(store)
    store.set("b", b"x", ttl=0)  # ttl <= 0 deletes
    assert store.get("b") is None
    assert _rows(store) == {}


def test_bad_input(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(TypeError, match="bytes"):
        store.set("a", "text", ttl=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cleanup_batch"):
        make_store(cleanup_batch=0)
    with pytest.raises(ValueError, match="cache_ttl"):
        make_store(cache_ttl=-1)
    with pytest.raises(ValueError, match="upsert"):
        make_store(upsert="merge")
    assert _rows(store) == {}


def test_read_through_fills_cache_with_remaining_ttl(make_store: MakeStore) -> None:
    store = make_store()
    # A row written by someone else (e.g. the app before it switched to us).
    _insert_rows(store, [{"session_id": "old", "data": b"legacy",
                          "expiry": utcnow() + timedelta(seconds=120)}])
    assert _cached(store, "old") is None
    assert store.get("old") == b"legacy"
    assert _cached(store, "old") == b"legacy"
    assert isinstance(store.cache, LocalKV)
    ttl = store.cache.kv.ttl(store._key("old"))
    assert ttl is not None and 60 < ttl <= 120
    # now served from the log: the table is not consulted
    with store.engine.begin() as conn:
        conn.execute(sa.delete(store.table))
    assert store.get("old") == b"legacy"


def test_cache_ttl_caps_cached_lifetime(make_store: MakeStore) -> None:
    store = make_store(cache_ttl=0.3)
    store.set("k", b"v", ttl=3600)
    assert _cached(store, "k") == b"v"
    with store.engine.begin() as conn:  # another process changes the row behind our back
        conn.execute(sa.update(store.table).values(data=b"changed"))
    deadline = time.monotonic() + 10
    while store.get("k") != b"changed":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_expiry(make_store: MakeStore) -> None:
    store = make_store()
    store.set("short", b"v", ttl=1.5)
    store.set("long", b"v", ttl=600)
    assert store.get("short") == b"v"
    deadline = time.monotonic() + 10
    while store.get("short") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert store.expiry("short") is None
    # the row of an expired session is gone after the read that found it expired
    assert "short" not in _rows(store)
    assert store.get("long") == b"v"
    # rows already expired in the table are never served, even if never cached
    _insert_rows(store, [
        {"session_id": "dead", "data": b"x", "expiry": utcnow() - timedelta(seconds=5)},
        {"session_id": "null", "data": b"x", "expiry": None},
    ])
    assert store.get("dead") is None
    assert store.get("null") is None  # as Flask-Session: a row without expiry is invalid
    assert set(_rows(store)) == {"long"}


def test_expiry_index_added_to_existing_table(db_url: str, table_name: str,
                                              make_store: MakeStore) -> None:
    engine = sa.create_engine(db_url)
    session_table(sa.MetaData(), table_name).create(engine)  # Flask-Session's: no index
    with engine.begin() as conn:
        conn.execute(session_table(sa.MetaData(), table_name).insert(),
                     [{"session_id": "kept", "data": b"row",
                       "expiry": utcnow() + timedelta(hours=1)}])
    assert not any(ix["column_names"] == ["expiry"]
                   for ix in sa.inspect(engine).get_indexes(table_name))
    store = make_store()
    assert [ix for ix in sa.inspect(engine).get_indexes(table_name)
            if ix["column_names"] == ["expiry"]]
    make_store()  # idempotent
    assert len([ix for ix in sa.inspect(engine).get_indexes(table_name)
                if ix["column_names"] == ["expiry"]]) == 1
    assert store.get("kept") == b"row"
    engine.dispose()


def test_table_without_unique_session_id_is_refused(db_url: str, table_name: str,
                                                    make_store: MakeStore) -> None:
    engine = sa.create_engine(db_url)
    sa.Table(table_name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("session_id", sa.String(255)), sa.Column("data", sa.LargeBinary),
             sa.Column("expiry", sa.DateTime)).create(engine)
    engine.dispose()
    with pytest.raises(ValueError, match="UNIQUE"):
        make_store()


def test_cleanup_in_batches(make_store: MakeStore) -> None:
    store = make_store()
    past = utcnow() - timedelta(minutes=1)
    future = utcnow() + timedelta(hours=1)
    _insert_rows(store, [{"session_id": f"x{i}", "data": b"d", "expiry": past}
                         for i in range(2495)])
    _insert_rows(store, [{"session_id": f"n{i}", "data": b"d", "expiry": None}
                         for i in range(5)])
    _insert_rows(store, [{"session_id": f"live{i}", "data": b"d", "expiry": future}
                         for i in range(10)])
    assert store.count_expired() == 2500
    assert list(store.iter_delete_expired(batch=1000)) == [1000, 1000, 500]
    assert store.count_expired() == 0
    assert sorted(_rows(store)) == sorted(f"live{i}" for i in range(10))
    assert store.delete_expired() == 0


def test_background_cleanup(make_store: MakeStore) -> None:
    store = make_store(cleanup_interval=0.1, cleanup_batch=7)
    _insert_rows(store, [{"session_id": f"x{i}", "data": b"d",
                          "expiry": utcnow() - timedelta(seconds=1)} for i in range(50)])
    store.set("live", b"v", ttl=600)
    deadline = time.monotonic() + 30
    while store.count_expired():
        assert time.monotonic() < deadline, "background cleanup did not run"
        time.sleep(0.05)
    assert list(_rows(store)) == ["live"]
    store.close()
    assert store._cleaner is not None and not store._cleaner.is_alive()


def test_delete_prefix(make_store: MakeStore) -> None:
    store = make_store()
    for sid in ("app:1", "app:2", "app_3", "other:1"):
        store.set(sid, b"v", ttl=60)
    assert store.delete_prefix("app:", batch=1) == 2
    assert sorted(_rows(store)) == ["app_3", "other:1"]  # '_' is not a wildcard
    assert store.get("app:1") is None


@pytest.mark.parametrize("mode", ["auto", "generic"])
def test_concurrent_upserts_of_one_new_id_never_conflict(make_store: MakeStore,
                                                          mode: str) -> None:
    """Straight at the table (no per-key lock): every writer's statement succeeds."""
    store = make_store(upsert=mode)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(15):
                store._upsert_row(f"race{i}", b"w%d" % n, utcnow() + timedelta(minutes=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _rows(store)
    assert sorted(rows) == sorted(f"race{i}" for i in range(15))
    assert all(v[0] in {b"w%d" % n for n in range(8)} for v in rows.values())


def test_concurrent_writers_in_processes(make_store: MakeStore, db_url: str,
                                         table_name: str, tmp_path: Path) -> None:
    make_store()  # create the table once
    code = textwrap.dedent(f"""
        import sys
        from faster_backend.integrations.sqlalchemy import SqlTableStore
        s = SqlTableStore({db_url!r}, table={table_name!r}, cleanup_interval=None)
        n = sys.argv[1]
        for i in range(40):
            s.set("shared%d" % (i % 4), b"p" + n.encode(), ttl=60)
        s.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], stderr=subprocess.PIPE)
             for n in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = make_store()
    rows = _rows(store)
    assert sorted(rows) == [f"shared{i}" for i in range(4)]
    for i in range(4):
        assert store.get(f"shared{i}") in {b"p0", b"p1", b"p2"}


def test_crash_between_table_and_log_write_serves_table(make_store: MakeStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store()
    store.set("s", b"v1", ttl=60)
    assert _cached(store, "s") == b"v1"

    def crash(*args: object) -> None:
        raise SystemExit("crashed after the table write")

    monkeypatch.setattr(store.cache, "set", crash)
    with pytest.raises(SystemExit):
        store.set("s", b"v2", ttl=60)
    monkeypatch.undo()
    assert _rows(store)["s"][0] == b"v2"
    assert _cached(store, "s") is None  # invalidated before the table write
    assert store.get("s") == b"v2"


def test_failed_table_write_leaves_no_stale_cache(make_store: MakeStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store()
    store.set("s", b"v1", ttl=60)

    def broken(*args: object) -> None:
        raise sa.exc.OperationalError("upsert", {}, Exception("database went away"))

    monkeypatch.setattr(store, "_upsert_row", broken)
    with pytest.raises(sa.exc.OperationalError):
        store.set("s", b"v2", ttl=60)
    monkeypatch.undo()
    assert store.get("s") == b"v1"  # the table still says v1, and so do we


def test_restart_with_persistent_cache_dir(db_url: str, table_name: str,
                                           tmp_path: Path, make_store: MakeStore) -> None:
    """A process dies between the table write and the log write; the next one reads v2."""
    make_store()
    cache_dir = tmp_path / "cache"
    code = textwrap.dedent(f"""
        import os
        from faster_backend.integrations.sqlalchemy import SqlTableStore
        s = SqlTableStore({db_url!r}, table={table_name!r}, cache_path={str(cache_dir)!r},
                          cleanup_interval=None)
        s.set("s", b"v1", ttl=60)
        assert s.get("s") == b"v1"
        s.cache.set = lambda *a: os._exit(17)  # die after the row write, before the log write
        s.set("s", b"v2", ttl=60)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 17, proc.stderr.decode()
    store = make_store(cache_path=cache_dir)
    assert store.get("s") == b"v2"
    # and a clean restart never serves what the previous life cached
    with store.engine.begin() as conn:
        conn.execute(sa.update(store.table).values(data=b"v3"))
    store.close()
    close_local(cache_dir)
    store = make_store(cache_path=cache_dir)
    assert store.get("s") == b"v3"
    store.close()
    close_local(cache_dir)


@pytest.mark.parametrize("peer", ["faster", "redis"])
def test_shared_server_cache_keeps_processes_coherent(make_store: MakeStore,
                                                      peer: str) -> None:
    url = peer_url(peer)
    a = make_store(cache_url=url)
    b = make_store(cache_url=url)  # stands for another worker process: its own client
    a.set("s", b"from-a", ttl=60)
    assert b.get("s") == b"from-a"
    b.set("s", b"from-b", ttl=60)
    assert a.get("s") == b"from-b"
    ttl = a.cache.client.pttl(a._key("s"))  # type: ignore[attr-defined]
    assert 30_000 < ttl <= 60_000
    a.delete("s")
    assert b.get("s") is None
    assert a.cache.client.exists(a._key("s")) == 0  # type: ignore[attr-defined]


def test_stores_on_different_databases_do_not_share_entries(tmp_path: Path) -> None:
    one = SqlTableStore(f"sqlite:///{tmp_path / 'one.db'}", cleanup_interval=None)
    two = SqlTableStore(f"sqlite:///{tmp_path / 'two.db'}", cleanup_interval=None)
    try:
        one.set("s", b"one", ttl=60)
        assert two.get("s") is None
    finally:
        one.close()
        two.close()
