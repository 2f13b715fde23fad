"""What ``manage.py faster_cache check|compact`` do, as functions over a FasterCache.

Today the engine offers live stats, a full key scan and incremental active expiry; it has no
log compaction or page checksums yet. ``check`` therefore verifies what can be verified now:
every live key is read back and its value decodes (a pickle that does not unpickle, or bytes
that are neither, is reported). ``compact`` expires every record whose TTL has passed, across
the whole index, and reports the counts; reclaiming log space is the engine's compaction,
which this command will call once it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faster_backend.integrations.django.codec import loads

if TYPE_CHECKING:
    from faster_backend.integrations.django.backend import FasterCache


@dataclass
class CheckReport:
    keys_scanned: int = 0
    values_ok: int = 0
    vanished: int = 0  # deleted or expired between the scan and the read
    bad: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def check(cache: FasterCache, max_bad: int = 100) -> CheckReport:
    """Read back and decode every live key of the cache's store."""
    report = CheckReport()
    seen: set[bytes] = set()
    cursor = 0
    while True:
        cursor, keys = cache._kv.scan(cursor, 256)
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            report.keys_scanned += 1
            raw = cache._kv.read(key)
            if raw is None:
                report.vanished += 1
                continue
            try:
                loads(raw)
            except Exception as exc:  # any decoding failure is what we report
                report.bad.append((key, f"{type(exc).__name__}: {exc}"))
                if len(report.bad) >= max_bad:
                    return report
            else:
                report.values_ok += 1
        if cursor == 0:
            return report


@dataclass
class CompactReport:
    expired_removed: int
    keys_before: int
    keys_after: int
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]


def compact(cache: FasterCache) -> CompactReport:
    """Expire every record whose TTL has passed (the whole index, not the background slice)."""
    kv = cache._embedded
    if kv is None:
        raise RuntimeError(
            "compact works on an embedded store; a `faster-backend serve` server expires and"
            " compacts its own store"
        )
    before = kv.stats()
    removed = kv.sweep_expired(max_buckets=max(1, int(before.get("index_buckets", 1))))
    after = kv.stats()
    return CompactReport(removed, int(before["live_keys"]), int(after["live_keys"]), before, after)
