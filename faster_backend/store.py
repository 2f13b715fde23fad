"""``FasterKV``: the store users open, with sizes as strings, config objects and a data dir."""

from __future__ import annotations

import os
from typing import Any

from faster_backend.config import StoreConfig
from faster_backend.engine.data_dir import DataDir
from faster_backend.engine.faster_kv import FasterKv
from faster_backend.engine.sizes import parse_size


class FasterKV(FasterKv):
    """A FASTER store; ``path=None`` keeps everything in memory.

    With a ``path``, the directory is created and locked for this process: a second process
    gets DataDirLockedError naming the holder. Persistence of the data in that directory is
    described in docs/durability.md.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        memory_size: int | str = 256 << 20,
        index_size: int = 1 << 16,
        *,
        page_size: int | str | None = None,
        mutable_fraction: float = 0.9,
        index_load_factor: float = 6.0,
    ) -> None:
        self.data_dir = DataDir(path) if path is not None else None
        try:
            super().__init__(
                memory_size=parse_size(memory_size, name="memory_size"),
                index_size=index_size,
                page_size=None if page_size is None else parse_size(page_size, name="page_size"),
                mutable_fraction=mutable_fraction,
                index_load_factor=index_load_factor,
            )
        except BaseException:
            if self.data_dir is not None:
                self.data_dir.release()
            raise

    @classmethod
    def from_config(cls, config: StoreConfig, **overrides: Any) -> FasterKV:
        args: dict[str, Any] = {
            "path": config.path,
            "memory_size": config.memory_size,
            "index_size": config.index_size,
            "page_size": config.page_size,
            "mutable_fraction": config.mutable_fraction,
            "index_load_factor": config.index_load_factor,
        }
        args.update(overrides)
        return cls(**args)

    def close(self) -> None:
        super().close()
        if self.data_dir is not None:
            self.data_dir.release()
