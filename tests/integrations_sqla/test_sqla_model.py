"""SqlTableStore against a dict model, with crashes and restarts mixed into the operations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy._kv import close_local
from faster_backend.integrations.sqlalchemy.session_store import SHARED_CACHE_NAME

IDS = st.sampled_from(["a", "b", "c", "session:x"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), IDS, st.binary(max_size=64)),
        st.tuples(st.just("get"), IDS, st.none()),
        st.tuples(st.just("delete"), IDS, st.none()),
        st.tuples(st.just("crash_write"), IDS, st.binary(max_size=64)),
        st.tuples(st.just("restart"), st.none(), st.none()),
        st.tuples(st.just("table_write"), IDS, st.binary(max_size=64)),
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_matches_dict_model(tmp_path_factory: pytest.TempPathFactory,
                            ops: list[tuple[str, str | None, bytes | None]]) -> None:
    from datetime import timedelta

    from faster_backend.integrations.sqlalchemy.session_store import utcnow

    url = f"sqlite:///{tmp_path_factory.mktemp('model') / 'db.sqlite'}"
    # Rows written behind the store's back ("table_write") while cached are served stale until
    # they expire (documented): the model checks them again after a restart or a store write.
    store = SqlTableStore(url, cleanup_interval=None)
    model: dict[str, bytes] = {}
    behind: set[str] = set()  # ids changed behind the store's back since it cached them
    try:
        for op, sid, data in ops:
            if op == "set":
                assert sid is not None and data is not None
                store.set(sid, data, ttl=600)
                model[sid] = data
                behind.discard(sid)
            elif op == "get":
                assert sid is not None
                if sid not in behind:
                    assert store.get(sid) == model.get(sid)
            elif op == "delete":
                assert sid is not None
                assert store.delete(sid) == (sid in model)
                model.pop(sid, None)
                behind.discard(sid)
            elif op == "crash_write":
                # the process dies after the row write, before the log write
                assert sid is not None and data is not None
                key = store._key(sid)
                store.cache.delete(key)
                store._upsert_row(sid, data, utcnow() + timedelta(seconds=600))
                model[sid] = data
                behind.discard(sid)
            elif op == "table_write":
                assert sid is not None and data is not None
                store._upsert_row(sid, data, utcnow() + timedelta(seconds=600))
                model[sid] = data
                if store.get_cached(sid) is not None:
                    behind.add(sid)
            elif op == "restart":
                # a fresh process: the cache store is reopened with a new generation
                store.close()
                close_local(None, name=SHARED_CACHE_NAME)
                store = SqlTableStore(url, cleanup_interval=None)
                behind.clear()
        for sid in ("a", "b", "c", "session:x"):
            if sid not in behind:
                assert store.get(sid) == model.get(sid)
    finally:
        store.close()


def test_embedded_dogpile_store_is_locked_to_one_process(tmp_path: Path) -> None:
    from faster_backend.integrations.sqlalchemy.dogpile_backend import FasterBackend

    path = str(tmp_path / "locked")
    FasterBackend({"path": path})
    code = (
        "from faster_backend.integrations.sqlalchemy.dogpile_backend import FasterBackend\n"
        f"FasterBackend({{'path': {path!r}}})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "DataDirLockedError" in out.stderr and "faster-backend serve" in out.stderr
    close_local(path)
