"""The ``check``, ``repair``, ``backup`` and ``restore`` subcommands (terminal output, rich)."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faster_backend.engine.sizes import parse_size
from faster_backend.tools.check import CheckReport, check_store
from faster_backend.tools.layout import ToolError

_PROGRESS_MIN_PAGES = 32  # smaller stores are checked before a bar would be seen


def add_tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="verify every file of a data directory (exit 0 clean, 1 problems, 2 unusable)",
        description="Verify checkpoints, the commit log and every log page below the durable"
        " point without opening the store or taking its lock (safe while it is in use).",
    )
    p.add_argument("dir", metavar="DIR")
    _geometry_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_check)

    p = sub.add_parser(
        "repair",
        help="cut a data directory back to its last consistent point; report what was lost",
    )
    p.add_argument("dir", metavar="DIR")
    _geometry_args(p)
    p.add_argument("--force", action="store_true", help="allow a repair that drops every record")
    p.add_argument(
        "--salvage",
        action="store_true",
        help="keep the log up to the first corrupt page even where the store recorded no point"
        " (writes a new commit point; session serials become approximate)",
    )
    p.set_defaults(func=_repair)

    p = sub.add_parser(
        "backup",
        help="copy the newest checkpoint of DIR (may be in use) into the new directory DEST",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("dest", metavar="DEST")
    _geometry_args(p)
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="copy the backup SRC into the data directory DIR")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace a non-empty DIR")
    _geometry_args(p)
    p.set_defaults(func=_restore)


def _geometry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--page-size", metavar="SIZE", help="log page size (default: inferred)")
    p.add_argument(
        "--segment-size", metavar="SIZE", help="log segment size (default: inferred)"
    )


def _sizes(args: argparse.Namespace) -> tuple[int | None, int | None]:
    page = None if args.page_size is None else parse_size(args.page_size, name="--page-size")
    seg = (
        None if args.segment_size is None
        else parse_size(args.segment_size, name="--segment-size")
    )
    return page, seg


def _run(name: str, body: Callable[[Console], int]) -> int:
    console = Console()
    try:
        return body(console)
    except (ToolError, ValueError, OSError) as exc:
        Console(stderr=True).print(f"[red]faster-backend {name}: {exc}", highlight=False)
        return 2


@contextmanager
def _progress(console: Console, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    if quiet or not console.is_terminal:
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("checking log pages"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    )
    task = None
    with bar:
        def update(done: int, total: int) -> None:
            nonlocal task
            if total < _PROGRESS_MIN_PAGES:
                return
            if task is None:
                task = bar.add_task("pages", total=total)
            bar.update(task, completed=done)

        yield update


def _check(args: argparse.Namespace) -> int:
    def body(console: Console) -> int:
        page, seg = _sizes(args)
        with _progress(console, args.quiet) as progress:
            report = check_store(
                args.dir, progress=progress, page_size=page, segment_size=seg
            )
        print_check(console, report)
        return report.exit_code

    return _run("check", body)


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def print_check(console: Console, r: CheckReport) -> None:
    """The summary lines of a check (plain text that tests and scripts can read)."""
    p = console.print
    p(f"data directory: {r.root}", highlight=False)
    if r.locked_by is not None:
        p(f"store is in use by process {r.locked_by}: reporting its latest durable state",
          highlight=False)
    else:
        p("store is not in use", highlight=False)
    if r.checkpoints:
        t = Table("seq", "kind", "tail", "created", "status", title="checkpoints")
        for c in r.checkpoints:
            if c.info is not None:
                t.add_row(str(c.seq), c.info.kind, str(c.info.point.tail), _when(c.info.created),
                          "ok" if c.valid else "[red]CORRUPT")
            else:
                t.add_row(str(c.seq), "?", "?", "?", "[red]CORRUPT")
        p(t)
    else:
        p("checkpoints: none", highlight=False)
    entries = len(r.commits.entries)
    torn = " (torn tail)" if r.commits.problem else ""
    p(f"commit log: {entries} valid entr{'y' if entries == 1 else 'ies'}{torn}", highlight=False)
    d = r.durable
    if d is not None:
        p(f"durable address: {d.point.tail} (from the {d.source}); log begins at"
          f" {d.point.begin}", highlight=False)
        geo = r.geometry
        if geo is not None:
            p(f"geometry ({geo.source}): page size {geo.page_size},"
              f" segment size {geo.segment_size}", highlight=False)
        p(f"log pages checked: {r.pages_checked}", highlight=False)
        p(f"records in the log: {r.records} ({r.tombstones} deletions)", highlight=False)
        p(f"live keys: {d.point.live}", highlight=False)
        sessions = ", ".join(f"{k}={v}" for k, v in sorted(d.point.sessions.items())) or "none"
        p(f"sessions (serial numbers): {sessions}", highlight=False)
    p(f"log bytes on disk: {r.log_bytes_on_disk} in {r.segment_files} segment file(s)",
      highlight=False)
    for note in r.notes:
        p(f"note: {note}", highlight=False)
    for prob in r.problems:
        p(f"[red]{'UNUSABLE' if prob.fatal else 'problem'}:[/red] {prob}", highlight=False)
    verdict = {0: "[green]clean", 1: "[yellow]problems found", 2: "[red]unusable"}[r.exit_code]
    p(f"result: {verdict}")


def _repair(args: argparse.Namespace) -> int:
    from faster_backend.tools.repair import repair_store

    def body(console: Console) -> int:
        page, seg = _sizes(args)
        r = repair_store(
            args.dir, force=args.force, salvage=args.salvage, page_size=page, segment_size=seg
        )
        p = console.print
        if not r.changed:
            p("nothing to repair", highlight=False)
        for path, why in r.removed_checkpoints:
            p(f"removed checkpoint {path}: {why}", highlight=False)
        for path in r.removed_stale:
            p(f"removed interrupted checkpoint {path}", highlight=False)
        if r.rewrote_begin is not None:
            p(f"rewrote the corrupt log/hlog.begin (first segment {r.rewrote_begin})",
              highlight=False)
        if r.commit_bytes_cut:
            p(f"cut {r.commit_bytes_cut} bytes off the commit log"
              f" ({r.commit_entries_dropped} valid entries dropped)", highlight=False)
        if r.log_bytes_cut:
            p(f"cut {r.log_bytes_cut} bytes off the log segments", highlight=False)
        loss = r.loss
        if loss is not None:
            p(f"[red]lost:[/red] log addresses [{loss.from_address}, {loss.to_address}):"
              f" {loss.bytes} bytes, {loss.records} readable records touching"
              f" {loss.key_count} keys", highlight=False)
            if loss.unreadable_pages:
                p(f"unreadable (corrupt) pages, their records are not counted:"
                  f" {', '.join(map(str, loss.unreadable_pages))}", highlight=False)
            if loss.keys:
                shown = ", ".join(repr(k) for k in loss.keys[:50])
                more = loss.key_count - min(50, len(loss.keys))
                p(f"keys whose latest writes were lost: {shown}"
                  + (f" and {more} more" if more > 0 else ""), highlight=False)
            for sid in sorted(set(loss.sessions_before) | set(loss.sessions_after)):
                a, b = loss.sessions_before.get(sid, 0), loss.sessions_after.get(sid, 0)
                if a != b:
                    p(f"session {sid}: serial {a} -> {b}", highlight=False)
        if r.salvaged_point is not None:
            sp = r.salvaged_point
            p(f"salvaged: wrote a commit point at address {sp.tail} ({sp.live} live keys"
              " counted from the log); session serials are those of the newest recorded point"
              " below it, so a session may hold operations after its reported serial",
              highlight=False)
        if r.everything_lost:
            p("[red]every record was lost: the store is empty", highlight=False)
        assert r.after is not None
        p("after the repair:", highlight=False)
        print_check(console, r.after)
        return r.after.exit_code

    return _run("repair", body)


def _backup(args: argparse.Namespace) -> int:
    from faster_backend.tools.backup import backup_store

    def body(console: Console) -> int:
        page, seg = _sizes(args)
        r = backup_store(args.dir, args.dest, page_size=page, segment_size=seg)
        console.print(
            f"backed up checkpoint {r.seq} ({r.kind}, log tail {r.tail}, taken"
            f" {_when(r.created)}) into {r.dest}: {r.bytes_copied} bytes"
            + (f" after {r.attempts} attempts" if r.attempts > 1 else ""),
            highlight=False,
        )
        console.print(f"the copy checks clean: {r.check.records} records,"
                      f" {r.check.durable.point.live if r.check.durable else 0} live keys",
                      highlight=False)
        return 0

    return _run("backup", body)


def _restore(args: argparse.Namespace) -> int:
    from faster_backend.tools.backup import restore_store

    def body(console: Console) -> int:
        page, seg = _sizes(args)
        r = restore_store(
            args.src, args.dir, force=args.force, page_size=page, segment_size=seg
        )
        d = r.check.durable
        console.print(
            f"restored {args.src} into {r.dest}: {r.bytes_copied} bytes; it checks clean"
            f" ({r.check.records} records, {d.point.live if d else 0} live keys)",
            highlight=False,
        )
        return 0

    return _run("restore", body)
