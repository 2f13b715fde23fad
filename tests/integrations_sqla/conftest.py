"""Fixtures for the SQLAlchemy integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqla_peers import PEERS

from faster_backend.integrations.sqlalchemy._kv import close_all_local


@pytest.fixture(scope="session", autouse=True)
def _stop_peers() -> Iterator[None]:
    yield
    PEERS.stop()
    close_all_local()
