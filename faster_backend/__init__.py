"""faster-backend: Microsoft FASTER's hybrid-log key-value store for Python web stacks."""

from faster_backend.config import Config, ConfigError, load_config
from faster_backend.engine import KEEP_TTL, EngineError, RecordTooLargeError, StoreClosedError
from faster_backend.engine.data_dir import DataDirLockedError
from faster_backend.store import FasterKV

__version__ = "0.1.0"

__all__ = [
    "KEEP_TTL",
    "Config",
    "ConfigError",
    "DataDirLockedError",
    "EngineError",
    "FasterKV",
    "RecordTooLargeError",
    "StoreClosedError",
    "__version__",
    "load_config",
]
