"""The ``faster-backend`` command line. The one place that wires integrations together."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="write and read back keys in an in-memory store")
    p.add_argument("--keys", type=int, default=200_000)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from faster_backend import FasterKV

    console = Console()
    with FasterKV(memory_size="256MiB") as kv:
        t0 = time.perf_counter()
        for i in range(args.keys):
            kv.upsert(b"key:%d" % i, b"value:%d" % i)
        t1 = time.perf_counter()
        for i in range(args.keys):
            if kv.read(b"key:%d" % i) != b"value:%d" % i:
                console.print(f"[red]wrong value for key:{i}")
                return 1
        t2 = time.perf_counter()
        console.print(
            f"upsert: {args.keys / (t1 - t0):,.0f} ops/s  read: {args.keys / (t2 - t1):,.0f} ops/s"
        )
        console.print(kv.stats())
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the RESP (Redis protocol) server",
        description="Serve the store over RESP2/RESP3 so that Redis clients can use it."
        " Command-line options override the [server] / [store] sections of --config.",
    )
    p.add_argument("--config", metavar="F", help="TOML configuration file")
    p.add_argument("--data-dir", metavar="D", help="data directory (default: in memory)")
    p.add_argument("--bind", metavar="ADDR", help="address(es) to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 6379; 0 picks a free one)")
    p.add_argument("--requirepass", metavar="X", help="password clients must AUTH with")
    p.add_argument(
        "--durability",
        choices=["none", "periodic", "always"],
        help="with --data-dir: none = checkpoints only (SAVE, BGSAVE, clean shutdown);"
        " periodic = also commit every store.commit_interval_ms (default 1 s);"
        " always = every write is durable before its reply (group commit)",
    )
    p.add_argument("--metrics-port", type=int, metavar="P", help="Prometheus metrics port")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from faster_backend.config import ConfigError, load_config
    from faster_backend.engine import EngineError
    from faster_backend.server import serve

    console = Console(stderr=True)
    try:
        config = load_config(args.config)
        server = config.server
        if args.data_dir is not None:
            config.store.path = args.data_dir
        if args.durability is not None:
            config.store.durability = args.durability
        for name in ("bind", "port", "requirepass", "metrics_port"):
            value = getattr(args, name)
            if value is not None:
                setattr(server, name, value)
        return serve(config)
    except (ConfigError, EngineError, OSError, ValueError) as exc:
        console.print(f"[red]faster-backend serve: {exc}")
        return 1


def _add_sessions_cleanup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sessions-cleanup",
        help="delete expired rows from a SQL session table",
        description="Delete expired rows (and rows without an expiry) from a Flask-Session /"
        " SqlTableStore session table, in short batched transactions.",
    )
    p.add_argument("url", metavar="URL", help="SQLAlchemy database URL")
    p.add_argument("--table", default="sessions", help="table name (default: sessions)")
    p.add_argument("--schema", default=None, help="schema of the table")
    p.add_argument("--batch", type=int, default=1000, help="rows per transaction (default 1000)")
    p.add_argument(
        "--add-index",
        action="store_true",
        help="create the index on expiry if the table has none (cleanup needs it to be fast)",
    )
    p.set_defaults(func=_sessions_cleanup)


def _sessions_cleanup(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from faster_backend.integrations.sqlalchemy import SqlTableStore

    console = Console(stderr=True)
    if args.batch < 1:
        console.print(f"[red]faster-backend sessions-cleanup: --batch must be >= 1,"
                      f" got {args.batch}")
        return 2
    try:
        store = SqlTableStore(
            args.url, table=args.table, schema=args.schema, create=False,
            cleanup_interval=None, cleanup_batch=args.batch,
        )
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
        console.print(f"[red]faster-backend sessions-cleanup: {exc}")
        return 1
    try:
        if not store.table_exists():
            console.print(f"[red]faster-backend sessions-cleanup: no table {args.table!r}")
            return 1
        if not store.has_expiry_index():
            if args.add_index:
                store.create_expiry_index()
                console.print(f"created index ix_{args.table}_expiry")
            else:
                console.print(f"[yellow]{args.table} has no index on expiry;"
                              " --add-index creates one")
        total = store.count_expired()
        t0 = time.perf_counter()
        deleted = 0
        with Progress(
            TextColumn("deleting expired sessions"), BarColumn(), MofNCompleteColumn(),
            console=console, transient=True,
        ) as progress:
            task = progress.add_task("cleanup", total=total)
            for n in store.iter_delete_expired(args.batch):
                deleted += n
                progress.update(task, completed=deleted)
        console.print(
            f"deleted {deleted} expired sessions from {args.table}"
            f" in {time.perf_counter() - t0:.2f}s"
        )
        return 0
    except SQLAlchemyError as exc:
        console.print(f"[red]faster-backend sessions-cleanup: {exc}")
        return 1
    finally:
        store.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faster-backend", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_serve(sub)
    _add_sessions_cleanup(sub)
    from faster_backend.tools.cli import add_tool_commands

    add_tool_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
