"""What ``manage.py faster_cache check|compact`` do, as functions over a FasterCache.

``check`` reads every live key back (from memory or from the device) and verifies that its value
decodes: a pickle that does not unpickle, or bytes that are neither an integer nor a pickle, is
reported. ``compact`` first expires every record whose TTL has passed, across the whole index,
then runs the engine's log compaction (``FasterKV.compact``): the live records of the oldest
part of the on-disk log (``compaction_fraction`` of it) are copied to the tail and that part of
the log is dropped, its files deleted once whole segments are free.
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
    records_copied: int
    keys_before: int
    keys_after: int
    log_disk_bytes_before: int
    log_disk_bytes_after: int
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]


def compact(cache: FasterCache) -> CompactReport:
    """Expire what has expired, then compact the oldest part of the on-disk log."""
    if cache._remote is not None:
        raise RuntimeError(
            "compact works on an embedded store; a `faster-backend serve` server expires and"
            " compacts its own store"
        )
    cache.open()
    kv = cache._embedded
    assert kv is not None
    before = kv.stats()
    removed = kv.sweep_expired(max_buckets=max(1, int(before.get("index_buckets", 1))))
    copied = kv.compact()
    after = kv.stats()
    return CompactReport(
        removed,
        copied,
        int(before["live_keys"]),
        int(after["live_keys"]),
        int(before.get("log_disk_bytes", 0)),
        int(after.get("log_disk_bytes", 0)),
        before,
        after,
    )
