"""``FasterKV``: the store users open, with sizes as strings, config objects and a data dir."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from faster_backend.config import StoreConfig
from faster_backend.engine.checkpoint import read_geometry
from faster_backend.engine.data_dir import DataDir
from faster_backend.engine.devices import DEFAULT_SEGMENT_SIZE, open_device
from faster_backend.engine.errors import EngineError
from faster_backend.engine.f2.manifest import SLOT_NAMES as F2_MANIFESTS
from faster_backend.engine.faster_kv import COMPACTION_FRACTION, GEOMETRY_FILE, FasterKv
from faster_backend.engine.sizes import parse_size

log = logging.getLogger(__name__)

LOG_DIR = "log"
LOG_NAME = "hlog"


def _size(value: int | str | None, name: str) -> int | None:
    return None if value is None else parse_size(value, name=name)


TIERINGS = ("single", "f2")
# FasterKV arguments that mean nothing to one of the two tierings (None: not given)
_SINGLE_ONLY = ("log_size_limit", "max_disk_size")
_F2_ONLY = ("hot_log_size", "cold_log_size", "cold_index_chunks")


class FasterKV(FasterKv):
    """A FASTER store; ``path=None`` keeps everything in memory.

    With a ``path`` the log's on-disk region lives in ``<path>/log`` on a ``device`` ("auto",
    "file", "io_uring"), so the store holds far more than ``memory_size``; the directory is
    locked for this process (a second opener gets DataDirLockedError naming the holder).

    ``tiering="f2"`` opens F2's hot and cold tiers instead (an ``F2Kv``, same API; needs a
    ``path``; ``hot_log_size``, ``cold_log_size`` and ``cold_index_chunks`` size them, see
    docs/f2.md).
    """

    def __new__(cls, *args: Any, tiering: str = "single", **kwargs: Any) -> Any:
        if tiering not in TIERINGS:
            raise ValueError(f"tiering must be 'single' or 'f2', got {tiering!r}")
        if tiering == "single":
            return super().__new__(cls)
        from faster_backend.engine.f2 import F2Kv

        for name in _SINGLE_ONLY:
            if kwargs.pop(name, None) is not None:
                raise ValueError(
                    f"{name} applies to tiering='single'; F2 sizes its tiers with hot_log_size"
                    " and cold_log_size"
                )
        names = ("path", "memory_size", "index_size")
        kwargs.update(zip(names, args, strict=False))
        if kwargs.get("path") is None:
            raise ValueError("tiering='f2' needs a path (a data directory)")
        for name in ("segment_size", "read_cache_size", "page_size", "compaction_fraction"):
            if name in kwargs and kwargs[name] is None:
                del kwargs[name]  # F2's own default
        return F2Kv(**kwargs)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        memory_size: int | str = 256 << 20,
        index_size: int = 1 << 16,
        *,
        page_size: int | str | None = None,
        mutable_fraction: float = 0.9,
        index_load_factor: float = 6.0,
        device: str = "auto",
        segment_size: int | str | None = None,
        read_cache_size: int | str | None = None,
        log_size_limit: int | str | None = None,
        max_disk_size: int | str | None = None,
        compaction_fraction: float | None = None,
        durability: str = "none",
        commit_interval_ms: int = 1000,
        checkpoint_kind: str = "fold-over",
        checkpoint_retention: int = 2,
        tiering: str = "single",
        hot_log_size: int | str | None = None,
        cold_log_size: int | str | None = None,
        cold_index_chunks: int | None = None,
    ) -> None:
        # tiering="f2" never gets here (__new__ returns an F2Kv)
        for name, given in zip(
            _F2_ONLY,
            (hot_log_size, cold_log_size, cold_index_chunks),
            strict=True,
        ):
            if given is not None:
                raise ValueError(f"{name} applies to tiering='f2' only")
        memory = parse_size(memory_size, name="memory_size")
        self.data_dir = DataDir(path) if path is not None else None
        dev = None
        try:
            pages = _size(page_size, "page_size")
            segments = _size(segment_size, "segment_size")
            if self.data_dir is not None:
                # An existing store keeps the geometry it was created with.
                stored = read_geometry(self.data_dir.path / GEOMETRY_FILE)
                if stored is not None:
                    for name, given, kept in (
                        ("page_size", pages, stored[0]),
                        ("segment_size", segments, stored[1]),
                    ):
                        if given is not None and given != kept:
                            raise ValueError(
                                f"{self.data_dir.path} was created with {name}={kept};"
                                f" it cannot be opened with {name}={given}"
                            )
                    pages, segments = stored
                if any((self.data_dir.path / name).exists() for name in F2_MANIFESTS):
                    raise EngineError(
                        f"{self.data_dir.path} holds an F2 store; open it with tiering='f2'"
                    )
                log_dir = self.data_dir.path / LOG_DIR
                log_dir.mkdir(exist_ok=True)
                self._discard_unrecoverable(log_dir)
                dev = open_device(
                    device,
                    log_dir,
                    name=LOG_NAME,
                    segment_size=segments if segments is not None else DEFAULT_SEGMENT_SIZE,
                )
            elif device not in ("auto", "null"):
                raise ValueError(f"device={device!r} needs a path (a data directory)")
            super().__init__(
                memory_size=memory,
                index_size=index_size,
                page_size=pages,
                mutable_fraction=mutable_fraction,
                index_load_factor=index_load_factor,
                device=dev,
                read_cache_size=_size(read_cache_size, "read_cache_size"),
                log_size_limit=_size(log_size_limit, "log_size_limit"),
                max_disk_size=_size(max_disk_size, "max_disk_size"),
                compaction_fraction=(
                    COMPACTION_FRACTION if compaction_fraction is None else compaction_fraction
                ),
                state_dir=self.data_dir.path if self.data_dir is not None else None,
                durability=durability,
                commit_interval=commit_interval_ms / 1000.0,
                checkpoint_kind=checkpoint_kind,
                checkpoint_retention=checkpoint_retention,
            )
        except BaseException:
            if dev is not None:
                dev.close()
            if self.data_dir is not None:
                self.data_dir.release()
            raise

    def _discard_unrecoverable(self, log_dir: Path) -> None:
        """Without a checkpoint or commit to recover from, old log segments hold nothing
        durable (the store ran with durability="none" and stopped before any checkpoint)."""
        root = log_dir.parent
        if (root / "commits").exists() or any((root / "checkpoints").glob("[0-9]*")):
            return
        old = sorted(log_dir.glob(f"{LOG_NAME}.*"))
        if old:
            log.warning(
                "%s: discarding %d log segment(s) from an earlier run that left no checkpoint",
                log_dir,
                len(old),
            )
            for f in old:
                f.unlink()

    @classmethod
    def from_config(cls, config: StoreConfig, **overrides: Any) -> FasterKV:
        """The store ``config`` describes (``tiering="f2"``: an F2Kv, same API)."""
        args: dict[str, Any] = {
            "path": config.path,
            "memory_size": config.memory_size,
            "index_size": config.index_size,
            "page_size": config.page_size,
            "mutable_fraction": config.mutable_fraction,
            "index_load_factor": config.index_load_factor,
            "device": config.device,
            "segment_size": config.segment_size,
            "read_cache_size": config.read_cache_size,
            "log_size_limit": config.log_size_limit,
            "max_disk_size": config.max_disk_size,
            "compaction_fraction": config.compaction_fraction,
            "durability": config.durability,
            "commit_interval_ms": config.commit_interval_ms,
            "checkpoint_kind": config.checkpoint_kind,
            "checkpoint_retention": config.checkpoint_retention,
            "tiering": config.tiering,
        }
        if config.tiering == "f2":
            args.update(
                hot_log_size=config.hot_log_size,
                cold_log_size=config.cold_log_size,
                cold_index_chunks=config.cold_index_chunks,
            )
        args.update(overrides)
        return cls(**args)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.data_dir is not None:
                self.data_dir.release()
