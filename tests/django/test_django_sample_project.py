"""The sample project (sample_project/) with its FasterCache default cache, and the
``faster_cache`` management command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from faster_backend.integrations.django import FasterCache

SAMPLE_PROJECT = Path(__file__).resolve().parent.parent.parent / "sample_project"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_default_cache_is_faster_cache() -> None:
    assert isinstance(caches["default"], FasterCache)
    assert caches["default"].stats()["mode"] == "embedded"


@pytest.mark.django_db
def test_home_counts_visits_atomically(client: Client) -> None:
    for expected in (1, 2, 3):
        response = client.get("/")
        assert response.status_code == 200
        assert f'<strong id="visits">{expected}</strong>' in response.content.decode()
    assert cache.get("demo:visits") == 3
    assert cache.get("demo:motd").startswith("generated at")


@pytest.mark.django_db
def test_slow_view_is_served_from_the_cache(client: Client, settings: Any) -> None:
    settings.SLOW_VIEW_SECONDS = 0.2
    first = client.get("/slow/")
    second = client.get("/slow/")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content  # same "generated at": the page came from the cache
    page_keys = list(cache.iter_keys("views.decorators.cache.cache_page*"))
    assert page_keys, "cache_page stored nothing"
    cache.clear()
    third = client.get("/slow/")
    assert third.content != first.content  # rebuilt once the cache was cleared


@pytest.mark.django_db
def test_counter_uses_low_level_calls(client: Client) -> None:
    for _ in range(3):
        assert client.post("/counter/", {"color": "red"}).status_code == 302
    client.post("/counter/", {"color": "blue"})
    client.post("/counter/", {"color": "green"})  # ignored
    page = client.get("/counter/").content.decode()
    assert '<strong id="red">3</strong>' in page and '<strong id="blue">1</strong>' in page
    assert cache.get_many(["demo:clicks:red", "demo:clicks:blue"]) == {
        "demo:clicks:red": 3,
        "demo:clicks:blue": 1,
    }


@pytest.mark.django_db
def test_sessions_live_in_the_cache(client: Client) -> None:
    client.post("/cart/", {"product": "apple"})
    client.post("/cart/", {"product": "apple"})
    client.post("/cart/", {"product": "fig"})
    page = client.get("/cart/").content.decode()
    assert "Apple x 2" in page and "Fig x 1" in page
    session_key = client.cookies["sessionid"].value
    stored = cache.get("django.contrib.sessions.cache" + session_key)
    assert stored == {"cart": {"apple": 2, "fig": 1}}
    cache.clear()  # the session was only in the cache
    assert "empty" in client.get("/cart/").content.decode()


@pytest.mark.django_db
def test_dashboard_is_for_staff_only(client: Client, django_user_model: Any) -> None:
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    django_user_model.objects.create_user("plain", password="pw")
    client.login(username="plain", password="pw")
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.django_db
def test_dashboard_shows_the_store(admin_client: Client) -> None:
    cache.set("demo:one", 1)
    cache.get("demo:one")
    cache.get("demo:none")
    response = admin_client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<svg id="hit-chart"' in page and '<svg id="log-chart"' in page
    assert "region-mutable" in page
    assert "<li>demo:one</li>" in page
    assert 'id="hit-rate"' in page and "n/a" not in page.split('id="hit-rate"')[1][:40]


# -- manage.py faster_cache -------------------------------------------------------------------


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("faster_cache", *args, stdout=out)
    return out.getvalue()


def test_command_stats() -> None:
    cache.set("a", 1)
    stats = json.loads(_run("stats", "--json"))
    assert stats["mode"] == "embedded" and stats["keys"] == 1
    table = _run("stats")
    assert "live_keys" in table and "log_tail_address" in table


def test_command_check() -> None:
    cache.set_many({f"k{i}": {"i": i} for i in range(50)})
    assert "scanned 50 keys: 50 decode" in _run("check")
    cache._embedded.upsert(b":1:broken", b"\x80\x05garbage")
    with pytest.raises(CommandError, match="1 values do not decode"):
        _run("check")


def test_command_compact() -> None:
    cache.set("long", 1, timeout=100)
    cache.set("short", 1, timeout=0.05)  # the last write: no incremental sweep can see it expired
    time.sleep(0.3)
    out = _run("compact")
    assert "expired 1 records" in out and "live keys 2 -> 1" in out
    assert cache.get("long") == 1


def test_command_clear() -> None:
    cache.set("a", 1)
    _run("clear", "--noinput")
    assert cache.get("a") is None


@override_settings(  # type: ignore[untyped-decorator]
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
def test_command_rejects_other_backends() -> None:
    with pytest.raises(CommandError, match="not FasterCache"):
        _run("stats")


def _manage(
    tmp_path: Path, *args: str, location: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["SAMPLE_PROJECT_VAR_DIR"] = str(tmp_path)
    env["FASTER_CACHE_LOCATION"] = location or str(tmp_path / "cache")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SAMPLE_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_runs_the_real_project(tmp_path: Path) -> None:
    check = _manage(tmp_path, "check")
    assert check.returncode == 0, check.stderr
    stats = _manage(tmp_path, "faster_cache", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["location"] == str(tmp_path / "cache")


def test_manage_py_explains_a_store_held_by_another_process(tmp_path: Path) -> None:
    held = FasterCache(str(tmp_path / "held"), {})  # this process owns the directory now
    held.set("x", 1)
    # Commands that do not touch the cache still work (system checks build but do not open it).
    check = _manage(tmp_path, "check", location=str(tmp_path / "held"))
    assert check.returncode == 0, check.stderr
    proc = _manage(tmp_path, "faster_cache", "stats", location=str(tmp_path / "held"))
    assert proc.returncode != 0
    assert "faster-backend serve" in proc.stderr
    assert "open in another process" in proc.stderr
