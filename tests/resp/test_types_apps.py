"""A real application on our server: a Celery worker (broker and result backend)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from resp.harness import ServerProcess, start_server

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("apps"))
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture
def celery_worker(srv: ServerProcess, tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("celery")
    url = f"redis://127.0.0.1:{srv.port}/3"
    redis.Redis.from_url(url).flushdb()
    env = dict(os.environ, FB_TEST_REDIS_URL=url, PYTHONPATH=str(TESTS))
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "resp.celery_app", "worker", "--pool=solo",
         "--without-mingle", "--without-gossip", "-l", "info", "-Q", "celery"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_celery_tasks_retries_and_countdowns(celery_worker: str, monkeypatch: pytest.MonkeyPatch,
                                             srv: ServerProcess) -> None:
    monkeypatch.setenv("FB_TEST_REDIS_URL", celery_worker)
    monkeypatch.syspath_prepend(str(TESTS))
    import importlib

    import resp.celery_app as mod

    mod = importlib.reload(mod)  # picks up this test's URL
    try:
        assert mod.add.delay(2, 3).get(timeout=60) == 5
        results = [mod.add.delay(i, i) for i in range(10)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(10)]
        t0 = time.monotonic()
        assert mod.add.apply_async((20, 22), countdown=2).get(timeout=60) == 42
        assert time.monotonic() - t0 >= 1.5
        flaky = mod.flaky.delay("fb:flaky:attempts")
        assert flaky.get(timeout=60) == "ok after 2 attempts"
        assert flaky.status == "SUCCESS"
    finally:
        mod.app.close()
