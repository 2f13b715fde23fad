"""The Flask-Session adapter in a real Flask app, and against Flask-Session's own interface."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from flask import Flask, session
from flask.testing import FlaskClient
from flask_session.sqlalchemy import SqlAlchemySessionInterface
from flask_sqlalchemy import SQLAlchemy

from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy.flask_adapter import FasterSqlSessionInterface
from faster_backend.integrations.sqlalchemy.session_store import session_table, utcnow

COOKIE = "session"


def _routes(app: Flask) -> Flask:
    @app.post("/set/<key>/<value>")
    def set_value(key: str, value: str) -> str:
        session[key] = value
        return "ok"

    @app.get("/get/<key>")
    def get_value(key: str) -> str:
        return str(session.get(key, "<missing>"))

    @app.post("/incr")
    def incr() -> str:
        session["n"] = int(session.get("n", 0)) + 1
        return str(session["n"])

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    return app


def _app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", PERMANENT_SESSION_LIFETIME=timedelta(hours=1),
                      **config)
    return _routes(app)


@pytest.fixture
def ours(db_url: str, table_name: str) -> Iterator[Flask]:
    app = _app({"SQLALCHEMY_DATABASE_URI": db_url, "SESSION_SQLALCHEMY_TABLE": table_name})
    iface = FasterSqlSessionInterface.from_app_config(app, cleanup_interval=None)
    app.session_interface = iface
    yield app
    iface.store.close()
    _drop(db_url, table_name)


@pytest.fixture
def stock_factory(db_url: str, table_name: str) -> Iterator[Callable[[], Flask]]:
    """Flask-Session's own SQLAlchemy interface on the same database and table."""
    dbs: list[SQLAlchemy] = []
    apps: list[Flask] = []

    def make() -> Flask:
        app = _app({"SQLALCHEMY_DATABASE_URI": db_url})
        db = SQLAlchemy(app)
        app.session_interface = SqlAlchemySessionInterface(app, client=db, table=table_name)
        dbs.append(db)
        apps.append(app)
        return app

    yield make
    for app, db in zip(apps, dbs, strict=True):
        with app.app_context():
            db.engine.dispose()


def _drop(db_url: str, table: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def _rows(db_url: str, table: str) -> dict[str, tuple[bytes, Any]]:
    t = session_table(sa.MetaData(), table)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = {r[0]: (bytes(r[1]), r[2]) for r in conn.execute(
            sa.select(t.c.session_id, t.c.data, t.c.expiry))}
    engine.dispose()
    return rows


def _sid(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def test_flask_app_round_trip(ours: Flask, db_url: str, table_name: str) -> None:
    client = ours.test_client()
    assert client.get("/get/user").text == "<missing>"
    assert client.post("/set/user/alice").text == "ok"
    assert client.get("/get/user").text == "alice"
    sid = _sid(client)
    rows = _rows(db_url, table_name)
    assert list(rows) == [f"session:{sid}"]
    data, expiry = rows[f"session:{sid}"]
    assert msgspec.msgpack.decode(data) == {"_permanent": True, "user": "alice"}
    assert abs((expiry - utcnow()).total_seconds() - 3600) < 60
    # a second client gets its own session
    other = ours.test_client()
    assert other.get("/get/user").text == "<missing>"
    # logout deletes the row and the cookie
    client.post("/logout")
    assert client.get_cookie(COOKIE) is None
    assert _rows(db_url, table_name) == {}


def test_flask_session_cleanup_command(ours: Flask, db_url: str, table_name: str) -> None:
    client = ours.test_client()
    client.post("/set/a/1")
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table_name} (session_id, data, expiry)"
                             " VALUES ('session:old', :d, :e)"),
                     {"d": b"\x80", "e": utcnow() - timedelta(days=1)})
    engine.dispose()
    result = ours.test_cli_runner().invoke(args=["session_cleanup"])
    assert result.exit_code == 0, result.output
    assert list(_rows(db_url, table_name)) == [f"session:{_sid(client)}"]


def test_concurrent_requests_of_one_session(ours: Flask, db_url: str,
                                            table_name: str) -> None:
    """Flask-Session's stock SELECT-then-INSERT races here; a native upsert does not."""
    client = ours.test_client()
    client.post("/set/x/1")
    sid = _sid(client)
    errors: list[BaseException] = []

    def hammer() -> None:
        c = ours.test_client()
        c.set_cookie(COOKIE, sid)
        try:
            for _ in range(10):
                r = c.post("/incr")
                assert r.status_code == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(_rows(db_url, table_name)) == [f"session:{sid}"]


def test_undecodable_row_starts_new_session_and_keeps_row(ours: Flask, db_url: str,
                                                          table_name: str) -> None:
    store: SqlTableStore = ours.session_interface.store  # type: ignore[attr-defined]
    store.set("session:broken", b"\xc1 not msgpack nor json nor pickle", ttl=600)
    client = ours.test_client()
    client.set_cookie(COOKIE, "broken")
    assert client.get("/get/user").text == "<missing>"
    assert "session:broken" in _rows(db_url, table_name)


def test_differential_with_stock_flask_session(ours: Flask, stock_factory: Callable[[], Flask],
                                               db_url: str, table_name: str) -> None:
    stock = stock_factory()
    ours_client = ours.test_client()
    stock_client = stock.test_client()

    # written by stock Flask-Session, read by us
    stock_client.post("/set/user/bob")
    sid = _sid(stock_client)
    ours_client.set_cookie(COOKIE, sid)
    assert ours_client.get("/get/user").text == "bob"

    # written by us, read by stock
    ours_client.post("/set/role/admin")
    assert _sid(ours_client) == sid
    assert stock_client.get("/get/role").text == "admin"
    assert stock_client.get("/get/user").text == "bob"

    # a session started by us is readable by stock
    fresh = ours.test_client()
    fresh.post("/set/k/v")
    stock_fresh = stock.test_client()
    stock_fresh.set_cookie(COOKIE, _sid(fresh))
    assert stock_fresh.get("/get/k").text == "v"

    # the same session written by each produces the same row (same key, same bytes)
    a = ours.test_client()
    a.set_cookie(COOKIE, "same-sid-a")
    b = stock.test_client()
    b.set_cookie(COOKIE, "same-sid-b")
    a.post("/set/z/1")
    b.post("/set/z/1")
    rows = _rows(db_url, table_name)
    ours_rows = {k: v for k, v in rows.items() if k == f"session:{_sid(a)}"}
    stock_rows = {k: v for k, v in rows.items() if k == f"session:{_sid(b)}"}
    (ours_data, ours_exp), = ours_rows.values()
    (stock_data, stock_exp), = stock_rows.values()
    assert ours_data == stock_data
    assert abs((ours_exp - stock_exp).total_seconds()) < 60

    # deleted by stock: gone for us too (our write invalidated nothing stale: we re-read)
    stock_client.post("/logout")
    assert f"session:{sid}" not in _rows(db_url, table_name)


def test_differential_expired_rows(ours: Flask, stock_factory: Callable[[], Flask],
                                   db_url: str, table_name: str) -> None:
    stock = stock_factory()
    engine = sa.create_engine(db_url)
    enc = msgspec.msgpack.encode({"user": "ghost"})
    with engine.begin() as conn:
        for sid, exp in [("exp1", utcnow() - timedelta(seconds=5)), ("exp2", None),
                         ("live1", utcnow() + timedelta(minutes=5))]:
            conn.execute(sa.text(f"INSERT INTO {table_name} (session_id, data, expiry)"
                                 " VALUES (:s, :d, :e)"),
                         {"s": f"session:{sid}", "d": enc, "e": exp})
    engine.dispose()
    for app in (ours, stock):
        for sid, expected in [("exp1", "<missing>"), ("exp2", "<missing>"),
                              ("live1", "ghost")]:
            c = app.test_client()
            c.set_cookie(COOKIE, sid)
            assert c.get("/get/user").text == expected, (app, sid)
    # both delete the expired rows they found
    assert list(_rows(db_url, table_name)) == ["session:live1"]


def test_from_app_config_follows_the_session_bind(tmp_path: Any) -> None:
    main_url = f"sqlite:///{tmp_path / 'main.db'}"
    sessions_url = f"sqlite:///{tmp_path / 'sessions.db'}"
    app = _app({"SQLALCHEMY_DATABASE_URI": main_url,
                "SQLALCHEMY_BINDS": {"sessions": {"url": sessions_url}},
                "SESSION_SQLALCHEMY_BIND_KEY": "sessions",
                "SESSION_SQLALCHEMY_TABLE": "web_sessions",
                "SESSION_KEY_PREFIX": "s:"})
    iface = FasterSqlSessionInterface.from_app_config(app, cleanup_interval=None)
    app.session_interface = iface
    try:
        client = app.test_client()
        client.post("/set/a/1")
        assert list(_rows(sessions_url, "web_sessions")) == [f"s:{_sid(client)}"]
        assert not sa.inspect(sa.create_engine(main_url)).has_table("web_sessions")
    finally:
        iface.store.close()
    app.config["SESSION_SQLALCHEMY_BIND_KEY"] = "missing"
    with pytest.raises(ValueError, match="SQLALCHEMY_BINDS"):
        FasterSqlSessionInterface.from_app_config(app)
    with pytest.raises(ValueError, match="store or a database url"):
        FasterSqlSessionInterface(_app({}))
