"""One embedded store per LOCATION per process, shared by every cache alias and thread.

Django builds a backend object per alias per thread and calls ``close()`` after every request,
so the store cannot belong to a backend object: it lives here, keyed by the resolved data
directory, and is closed once at interpreter exit. A child created by ``fork()`` must not keep
using its parent's copy of a store (the two would silently diverge): the child forgets the
stores it inherited and reopens on next use, which fails with DataDirLockedError while the
parent holds the directory.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from faster_backend import FasterKV

log = logging.getLogger(__name__)

MEMORY = ":memory:"
STORE_OPTIONS = frozenset(
    {
        "memory_size",
        "index_size",
        "page_size",
        "mutable_fraction",
        "index_load_factor",
        "device",
        "segment_size",
        "read_cache_size",
        "log_size_limit",
        "max_disk_size",
        "compaction_fraction",
    }
)


@dataclass
class StoreEntry:
    """An open store and the per-store state every backend object shares."""

    key: str
    kv: FasterKV
    options: dict[str, Any]
    cull_lock: threading.Lock = field(default_factory=threading.Lock)
    cull_cursor: int = 0


_entries: dict[str, StoreEntry] = {}
_lock = threading.Lock()


def store_key(location: str) -> str:
    """The registry key of ``location``: ':memory:' or the resolved directory."""
    key = _resolved.get(location)
    if key is None:
        # Resolving costs system calls, and Django builds a backend per thread (per request
        # context under ASGI): resolve each LOCATION string once.
        key = MEMORY if location == MEMORY else str(Path(location).expanduser().resolve())
        _resolved[location] = key
    return key


_resolved: dict[str, str] = {}


def open_store(
    location: str, options: dict[str, Any], index_size: int | None = None
) -> StoreEntry:
    """The process's store for ``location``, opened on first use with ``options``;
    ``index_size`` is the initial index size when the options give none."""
    key = store_key(location)
    entry = _entries.get(key)
    if entry is not None:
        _warn_if_different(entry, options)
        return entry
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            path = None if key == MEMORY else key
            args = dict(options)
            if index_size is not None:
                args.setdefault("index_size", index_size)
            kv = FasterKV(path=path, **args)
            entry = StoreEntry(key, kv, dict(options))
            _entries[key] = entry
            log.debug("opened embedded store %s", key)
        else:
            _warn_if_different(entry, options)
    return entry


def _warn_if_different(entry: StoreEntry, options: dict[str, Any]) -> None:
    if options != entry.options:
        log.warning(
            "cache store %s is already open with options %r; ignoring %r from another alias",
            entry.key,
            entry.options,
            options,
        )


def open_entries() -> list[StoreEntry]:
    """The stores this process has open."""
    return list(_entries.values())


def close_all() -> None:
    """Close every store (at interpreter exit; later operations raise StoreClosedError)."""
    with _lock:
        entries = list(_entries.values())
        _entries.clear()
    for entry in entries:
        try:
            entry.kv.close()
        except Exception:  # closing must not stop the others from closing
            log.exception("closing cache store %s failed", entry.key)


def _forget_after_fork() -> None:
    """In a forked child: drop the inherited directory stores (the parent owns them)."""
    global _lock
    _lock = threading.Lock()
    for key in [k for k in _entries if k != MEMORY]:
        del _entries[key]
    for backend in list(_backends):
        backend.after_fork()


class ForkAware(Protocol):
    def after_fork(self) -> None: ...


_backends: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def track(backend: ForkAware) -> None:
    """Have ``backend.after_fork()`` called in a child process after ``fork()``."""
    _backends.add(backend)


atexit.register(close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
