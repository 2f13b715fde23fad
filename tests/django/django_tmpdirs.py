"""Temporary data directories for the Django tests, removed at the end of the session only
after the process' stores are closed (closing may write to them, e.g. a checkpoint)."""

from __future__ import annotations

import shutil
import tempfile

_dirs: list[str] = []


def make_tmpdir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(path)
    return path


def cleanup() -> None:
    from faster_backend.integrations.django import registry

    registry.close_all()
    for path in _dirs:
        shutil.rmtree(path, ignore_errors=True)
    _dirs.clear()
