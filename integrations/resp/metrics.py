"""Prometheus metrics (prometheus-client), collected from the server's own counters at scrape.

The hot path only bumps plain attributes (per-command call counts on the command table) and,
when metrics are enabled, one histogram bucket per command; everything else is read when
Prometheus scrapes, on the exporter's thread.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from faster_backend.integrations.resp.state import ServerState
from faster_backend.integrations.resp.table import all_commands

BUCKETS = (
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)


def _dir_size(path: str | None) -> int:
    if path is None:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # files may vanish while we walk
                total += (Path(root) / f).stat().st_size
    return total


class Metrics:
    """Command latency histogram plus a collector over ServerState."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]
        self._http: Any = None

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def start(self, host: str, port: int) -> None:
        result = start_http_server(port, addr=host, registry=self.registry)
        self._http = result[0] if isinstance(result, tuple) else None

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def collect(self) -> Iterator[Metric]:
        state = self.state
        calls = CounterMetricFamily(
            "faster_backend_commands", "Commands processed, by command", labels=["command"]
        )
        errors = CounterMetricFamily(
            "faster_backend_command_errors", "Commands that replied with an error",
            labels=["command"],
        )
        for spec in all_commands():
            for s in [spec, *spec.subcommands.values()]:
                if s.calls:
                    calls.add_metric([s.fullname], s.calls)
                if s.failed:
                    errors.add_metric([s.fullname], s.failed)
        yield calls
        yield errors
        cumulative = []
        acc = 0
        for bound, n in zip(BUCKETS, self.counts, strict=False):
            acc += n
            cumulative.append((repr(bound), acc))
        acc += self.counts[-1]
        cumulative.append(("+Inf", acc))
        yield HistogramMetricFamily(
            "faster_backend_command_latency_seconds",
            "Time to run one command (parsing and I/O excluded)",
            buckets=cumulative,
            sum_value=self.total,
        )
        yield GaugeMetricFamily(
            "faster_backend_connected_clients", "Open client connections", len(state.clients)
        )
        yield CounterMetricFamily(
            "faster_backend_connections", "Connections accepted", state.connections_received
        )
        yield CounterMetricFamily(
            "faster_backend_rejected_connections",
            "Connections refused (maxclients, protected mode)",
            state.rejected_connections,
        )
        keys = GaugeMetricFamily("faster_backend_keys", "Live keys per database", labels=["db"])
        hits = misses = memory = 0
        for ks in state.open_dbs():
            try:
                st = ks.kv.stats()
            except Exception:  # a store closing during shutdown
                continue
            keys.add_metric([str(ks.index)], st["live_keys"])
            hits += st["read_hits"]
            misses += st["read_misses"]
            memory += st["memory_bytes"]
        yield keys
        yield GaugeMetricFamily("faster_backend_memory_bytes", "Store memory (log + index)", memory)
        yield GaugeMetricFamily(
            "faster_backend_disk_bytes", "Bytes in the data directory",
            _dir_size(state.config.store.path),
        )
        yield CounterMetricFamily("faster_backend_keyspace_hits", "Reads that found a key", hits)
        yield CounterMetricFamily(
            "faster_backend_keyspace_misses", "Reads that found nothing", misses
        )
        yield GaugeMetricFamily(
            "faster_backend_hit_ratio", "keyspace hits / reads since start",
            hits / (hits + misses) if hits + misses else 0.0,
        )
