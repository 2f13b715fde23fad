"""``faster-backend serve``: configuration, event loop (uvloop when installed), metrics, signals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from faster_backend.config import Config, ConfigError
from faster_backend.engine import hotpath

log = logging.getLogger(__name__)

DURABILITY_MODES = ("none", "periodic", "always")


def check(config: Config) -> None:
    """Reject server settings that cannot work, naming the setting."""
    server = config.server
    store = config.store
    if store.durability not in DURABILITY_MODES:
        raise ConfigError(
            f"store.durability: expected one of {', '.join(DURABILITY_MODES)},"
            f" got {store.durability!r}"
        )
    if store.durability != "none" and store.path is None:
        raise ConfigError(
            f"durability={store.durability} needs a data directory (--data-dir or store.path);"
            " without one the server keeps its data in memory only"
        )
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"server.port: expected 0..65535, got {server.port}")
    if server.databases < 1:
        raise ConfigError(f"server.databases: expected at least 1, got {server.databases}")
    if server.maxclients < 1:
        raise ConfigError(f"server.maxclients: expected at least 1, got {server.maxclients}")
    if server.timeout < 0:
        raise ConfigError(f"server.timeout: expected seconds >= 0, got {server.timeout}")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed: using the asyncio event loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


def serve(config: Config, ready: Callable[[Any], None] | None = None) -> int:
    """Serve RESP until SIGTERM, SIGINT or SHUTDOWN; returns the process exit code."""
    from faster_backend.integrations.resp.server import RespServer

    check(config)
    server = RespServer(config)
    metrics = None
    if config.server.metrics_port is not None:
        from faster_backend.integrations.resp.metrics import Metrics  # prometheus-client

        metrics = Metrics(server.state)
        server.metrics = metrics
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        if metrics is not None:
            host = config.server.bind.split()[0]
            metrics.start(host, config.server.metrics_port or 0)
            log.info("metrics on http://%s:%d/metrics", host, config.server.metrics_port)

        def on_ready(s: Any) -> None:
            log.info(
                "faster-backend RESP server listening on %s port %d (loop: %s, data: %s,"
                " durability: %s, store hot paths: %s)",
                config.server.bind,
                s.port,
                type(loop).__module__,
                config.store.path or "in memory",
                config.store.durability,
                "compiled" if hotpath.NATIVE else "pure Python (the C extension is not built)",
            )
            if ready is not None:
                ready(s)

        loop.run_until_complete(server.run(on_ready))
    finally:
        if metrics is not None:
            metrics.stop()
        loop.close()
    return 0
