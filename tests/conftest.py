"""Shared fixtures."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from faster_backend import FasterKV


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kv() -> Iterator[FasterKV]:
    store = FasterKV(memory_size="64MiB", index_size=1 << 8)
    yield store
    store.close()
