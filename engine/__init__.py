"""The FASTER engine core: hash index, hybrid log and the key-value store built on them.

Nothing here imports a web framework or server; the product layer (``faster_backend``) and the
integrations build on this package's public names.
"""

from faster_backend.engine.errors import (
    EngineError,
    RecordTooLargeError,
    StoreClosedError,
)
from faster_backend.engine.faster_kv import FasterKv
from faster_backend.engine.session import Session
from faster_backend.engine.sizes import parse_size
from faster_backend.engine.ttl import KEEP_TTL

__all__ = [
    "KEEP_TTL",
    "EngineError",
    "FasterKv",
    "RecordTooLargeError",
    "Session",
    "StoreClosedError",
    "parse_size",
]
