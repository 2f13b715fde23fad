"""F2: FASTER's hot/cold two-tier store (Kanellis et al., PVLDB 18(12), 2025).

``F2Kv(path, memory_size=...)`` has FasterKv's API; see docs/f2.md for the design.
"""

from faster_backend.engine.f2.store import F2Kv

__all__ = ["F2Kv"]
