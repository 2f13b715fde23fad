"""Fixtures for the SQLAlchemy integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqla_peers import PEERS, peer_url

from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy._kv import close_all_local


@pytest.fixture(scope="session", autouse=True)
def _stop_peers() -> Iterator[None]:
    yield
    PEERS.stop()
    close_all_local()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a fresh SQLite file, or the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return peer_url("postgres")


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses (PostgreSQL is shared by the whole session)."""
    return f"sessions_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_store(db_url: str, table_name: str) -> Iterator[Callable[..., SqlTableStore]]:
    """Open SqlTableStores on ``db_url`` / ``table_name``; closed and dropped afterwards."""
    stores: list[SqlTableStore] = []

    def make(**kwargs: Any) -> SqlTableStore:
        kwargs.setdefault("table", table_name)
        kwargs.setdefault("cleanup_interval", None)
        store = SqlTableStore(kwargs.pop("url", db_url), **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table_name}"))
    engine.dispose()
