"""``python manage.py faster_cache stats|check|compact|clear [--alias NAME]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import InvalidCacheBackendError
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)

from faster_backend import DataDirLockedError
from faster_backend.integrations.django.backend import FasterCache
from faster_backend.integrations.django.maintenance import check, compact

HELP = """Inspect and maintain a FasterCache.

stats    the store's counters (engine stats, or the server's INFO over RESP)
check    read back every live key (from memory or disk) and verify that its value decodes;
         exits non-zero on a bad value
compact  expire every record whose TTL has passed, then compact the oldest part of the on-disk
         log (copy its live records to the tail, drop the rest); embedded stores only
clear    delete every key of the store (all aliases sharing its LOCATION)
"""

class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):  # type: ignore[misc]
    """Django's option ordering, with HELP's line breaks kept."""


class Command(BaseCommand):  # type: ignore[misc]
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["stats", "check", "compact", "clear"])
        parser.add_argument("--alias", default="default", help="cache alias (default: default)")
        parser.add_argument("--json", action="store_true", help="stats as JSON")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive",
            help="clear without asking for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cache = self._cache(options["alias"])
        action = options["action"]
        if action == "stats":
            self._stats(cache, options["json"])
        elif action == "check":
            self._check(cache)
        elif action == "compact":
            self._compact(cache)
        else:
            self._clear(cache, options["alias"], options["interactive"])

    def _cache(self, alias: str) -> FasterCache:
        try:
            cache = caches[alias]
        except InvalidCacheBackendError as exc:
            raise CommandError(str(exc)) from exc
        if not isinstance(cache, FasterCache):
            raise CommandError(f"cache alias {alias!r} is {type(cache).__name__}, not FasterCache")
        try:
            cache.open()
        except DataDirLockedError as exc:
            raise CommandError(
                f"{exc}\nThe cache is open in another process (for example a running server):"
                " an embedded store belongs to one process."
            ) from exc
        return cache

    def _console(self) -> Any:
        from rich.console import Console

        return Console(file=self.stdout, highlight=False, soft_wrap=True)

    def _stats(self, cache: FasterCache, as_json: bool) -> None:
        stats = cache.stats()
        if as_json:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True, default=str))
            return
        from rich.table import Table

        table = Table(title=f"FasterCache {cache.location} ({stats['mode']})")
        table.add_column("counter")
        table.add_column("value", justify="right")
        for name in sorted(stats):
            table.add_row(name, _fmt(stats[name]))
        self._console().print(table)

    def _check(self, cache: FasterCache) -> None:
        report = check(cache)
        console = self._console()
        console.print(
            f"scanned {report.keys_scanned} keys: {report.values_ok} decode,"
            f" {report.vanished} expired or deleted meanwhile, {len(report.bad)} bad"
        )
        for key, problem in report.bad:
            console.print(f"  {key!r}: {problem}")
        if not report.ok:
            raise CommandError(f"{len(report.bad)} values do not decode")
        console.print("check passed")

    def _compact(self, cache: FasterCache) -> None:
        try:
            report = compact(cache)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self._console().print(
            f"expired {report.expired_removed} records; live keys {report.keys_before}"
            f" -> {report.keys_after}; compaction copied {report.records_copied} live records,"
            f" log on disk {report.log_disk_bytes_before:,} -> {report.log_disk_bytes_after:,}"
            " bytes"
        )

    def _clear(self, cache: FasterCache, alias: str, interactive: bool) -> None:
        if interactive:
            answer = input(
                f"Delete every key in cache {alias!r} ({cache.location})? Type 'yes' to go on: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("clear cancelled")
        cache.clear()
        self._console().print(f"cleared {cache.location}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
