"""The async adapter: starsessions in a real Starlette app, and the Litestar-style methods."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starsessions import SessionAutoloadMiddleware, SessionMiddleware, SessionStore

from faster_backend.integrations.sqlalchemy import SqlTableStore
from faster_backend.integrations.sqlalchemy.async_store import AsyncSqlTableStore

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient will move from httpx to "httpx2"
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

MakeStore = Callable[..., SqlTableStore]


def _rows(store: SqlTableStore) -> dict[str, bytes]:
    t = store.table
    with store.engine.connect() as conn:
        return {r[0]: bytes(r[1]) for r in conn.execute(sa.select(t.c.session_id, t.c.data))}


def test_starsessions_app(make_store: MakeStore) -> None:
    store = make_store()
    async_store = AsyncSqlTableStore(store, prefix="star:")
    assert isinstance(async_store, SessionStore)

    async def set_user(request: Request) -> JSONResponse:
        request.session["user"] = request.path_params["name"]
        return JSONResponse({"ok": True})

    async def get_user(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user")})

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[
        Route("/set/{name}", set_user, methods=["POST"]),
        Route("/get", get_user),
        Route("/logout", logout, methods=["POST"]),
    ])
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(SessionMiddleware, store=async_store, lifetime=3600,
                       cookie_https_only=False)
    with TestClient(app) as client:
        assert client.get("/get").json() == {"user": None}
        client.post("/set/alice")
        assert client.get("/get").json() == {"user": "alice"}
        sid = client.cookies["session"]
        rows = _rows(store)
        assert list(rows) == [f"star:{sid}"]
        assert b"alice" in rows[f"star:{sid}"]
        assert store.expiry(f"star:{sid}") is not None
        with TestClient(app) as other:
            assert other.get("/get").json() == {"user": None}
        client.post("/logout")
        assert _rows(store) == {}


def test_litestar_style_methods(make_store: MakeStore) -> None:
    store = make_store()
    s = AsyncSqlTableStore(store, prefix="ls:", default_ttl=120)

    async def scenario() -> None:
        assert await s.get("k") is None
        assert not await s.exists("k")
        assert await s.expires_in("k") is None
        await s.set("k", "text", expires_in=60)
        assert await s.get("k") == b"text"
        assert await s.exists("k")
        left = await s.expires_in("k")
        assert left is not None and 30 < left <= 60
        await s.get("k", renew_for=timedelta(minutes=10))
        left = await s.expires_in("k")
        assert left is not None and 300 < left <= 600
        await s.set("forever-ish", b"v")  # expires_in=None: default_ttl
        left = await s.expires_in("forever-ish")
        assert left is not None and 60 < left <= 120
        await s.set("gone", b"v", expires_in=timedelta(milliseconds=200))
        for _ in range(200):
            if await s.get("gone") is None:
                break
            await asyncio.sleep(0.05)
        assert await s.get("gone") is None
        await s.delete("k")
        assert await s.get("k") is None
        store.set("other:keep", b"x", ttl=60)
        await s.delete_all()
        assert list(_rows(store)) == ["other:keep"]
        with pytest.raises(ValueError, match="prefix"):
            await AsyncSqlTableStore(store).delete_all()

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="default_ttl"):
        AsyncSqlTableStore(store, default_ttl=0)


def test_starsessions_session_only_cookie_gets_default_ttl(make_store: MakeStore) -> None:
    store = make_store()
    s = AsyncSqlTableStore(store, default_ttl=timedelta(hours=2))

    async def scenario() -> None:
        assert await s.read("x", lifetime=0) == b""
        assert await s.write("x", b"data", lifetime=0, ttl=0) == "x"
        assert await s.read("x", lifetime=0) == b"data"
        left = await s.expires_in("x")
        assert left is not None and 3600 < left <= 7200
        await s.remove("x")
        assert await s.read("x", lifetime=0) == b""

    asyncio.run(scenario())
