"""`faster-backend sessions-cleanup URL` against a real table."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from faster_backend.cli import main
from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy.session_store import session_table, utcnow

MakeStore = Callable[..., SqlTableStore]


def _flask_session_table(db_url: str, table: str, expired: int, live: int) -> None:
    """A Flask-Session table as the stock interface leaves it: no index, expired rows."""
    engine = sa.create_engine(db_url)
    t = session_table(sa.MetaData(), table)
    t.create(engine)
    past, future = utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1)
    with engine.begin() as conn:
        if expired:
            conn.execute(t.insert(), [{"session_id": f"session:x{i}", "data": b"d",
                                       "expiry": past} for i in range(expired)])
        if live:
            conn.execute(t.insert(), [{"session_id": f"session:l{i}", "data": b"d",
                                       "expiry": future} for i in range(live)])
    engine.dispose()


def _count(db_url: str, table: str) -> int:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(n)


def _has_expiry_index(db_url: str, table: str) -> bool:
    engine = sa.create_engine(db_url)
    try:
        return any(ix["column_names"] == ["expiry"]
                   for ix in sa.inspect(engine).get_indexes(table))
    finally:
        engine.dispose()


def test_cleanup_command(db_url: str, table_name: str, make_store: MakeStore,
                         capsys: pytest.CaptureFixture[str]) -> None:
    _flask_session_table(db_url, table_name, expired=1234, live=7)
    assert main(["sessions-cleanup", db_url, "--table", table_name, "--batch", "500"]) == 0
    err = capsys.readouterr().err
    assert "deleted 1234 expired sessions" in err
    assert "no index on expiry" in err
    assert _count(db_url, table_name) == 7
    assert not _has_expiry_index(db_url, table_name)  # not without --add-index
    assert main(["sessions-cleanup", db_url, "--table", table_name, "--add-index"]) == 0
    assert "deleted 0 expired sessions" in capsys.readouterr().err
    assert _has_expiry_index(db_url, table_name)
    make_store()  # dropped at the end


def test_cleanup_command_errors(db_url: str, table_name: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions-cleanup", db_url, "--table", table_name]) == 1
    assert f"no table '{table_name}'" in capsys.readouterr().err
    assert main(["sessions-cleanup", db_url, "--batch", "0"]) == 2
    assert main(["sessions-cleanup", "nosuchdialect://x"]) == 1
    assert "sessions-cleanup" in capsys.readouterr().err


def test_cleanup_entry_point(tmp_path: object, table_name: str) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    _flask_session_table(url, table_name, expired=3, live=1)
    out = subprocess.run(
        [sys.executable, "-m", "faster_backend", "sessions-cleanup", url, "--table", table_name],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "deleted 3 expired sessions" in out.stderr
    assert _count(url, table_name) == 1
