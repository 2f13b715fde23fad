"""Fixtures: a real server process per test module (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resp.harness import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("resp"))
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log()
