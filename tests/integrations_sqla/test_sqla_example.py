"""The documented ORM query-caching example runs, and really serves from the cache."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqla_peers import REPO, peer_url

EXAMPLE = REPO / "docs" / "examples" / "sqlalchemy_query_cache.py"


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_example_embedded() -> None:
    assert "then from the cache with 0" in _run()


@pytest.mark.parametrize("peer", ["faster", "redis"])
def test_example_server(peer: str) -> None:
    assert "then from the cache with 0" in _run("--url", peer_url(peer))
