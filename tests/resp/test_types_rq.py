"""RQ on our server: enqueue jobs and run them with a SimpleWorker in burst mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from resp.harness import ServerProcess, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("rq"))
    yield s
    assert s.stop() == 0, s.log()


def test_rq_enqueue_and_simple_worker(srv: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    rq = pytest.importorskip("rq")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from resp.rq_jobs import multiply

    conn = redis.Redis(port=srv.port, db=4)
    conn.flushdb()
    q = rq.Queue("default", connection=conn)
    job = q.enqueue(multiply, 6, 7)
    failing = q.enqueue(multiply, "x", None)
    assert q.count == 2
    worker = rq.SimpleWorker([q], connection=conn)
    assert worker.work(burst=True)
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == 42
    failing.refresh()
    assert failing.get_status() == "failed"
    assert q.count == 0
    assert failing.id in q.failed_job_registry.get_job_ids()
