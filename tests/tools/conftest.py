"""Fixtures of the tool tests: a built data directory (once per session) and its model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faster_backend import FasterKV

from .store_builder import OPTIONS, operations

BUILDER = str(Path(__file__).parent / "store_builder.py")
OPS = operations()
KEYS = sorted({k for k, _ in OPS})


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("built") / "store"
    subprocess.run([sys.executable, BUILDER, str(path)], check=True, timeout=120)
    return path


@pytest.fixture
def store(built_store: Path, tmp_path: Path) -> Path:
    """A private copy of the built data directory."""
    copy = tmp_path / "store"
    shutil.copytree(built_store, copy)
    return copy


def model(prefix: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in OPS[:prefix]:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def recovered_prefix(path: Path) -> int:
    """Open the store and return the number of operations its state holds, after checking
    that the state is exactly the model after that many operations (no key wrong, none
    extra, the live-key count right)."""
    with FasterKV(path, **OPTIONS) as kv:  # type: ignore[arg-type]
        state = {k: v for k in KEYS if (v := kv.read(k)) is not None}
        listed = set(kv.keys())
        count = len(kv)
    applied = max((int(v[2:]) + 1 for v in state.values()), default=0)
    # deletes right after the last applied upsert leave no value behind: try each
    for n in range(applied, len(OPS) + 1):
        if model(n) == state:
            break
        if n > applied and OPS[n - 1][1] is not None:
            raise AssertionError(f"the recovered state is no prefix of the operations ({n})")
    else:
        raise AssertionError("the recovered state is no prefix of the operations")
    assert listed == set(state), "keys() disagrees with reads"
    assert count == len(state), f"len() says {count}, {len(state)} keys are readable"
    return n
