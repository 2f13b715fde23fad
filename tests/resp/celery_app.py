"""A Celery app for tests/resp/test_types_apps.py: broker and result backend on our server."""

from __future__ import annotations

import os

import redis
from celery import Celery

URL = os.environ.get("FB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("fb_test", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    result_expires=600,
    broker_transport_options={"visibility_timeout": 60},
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self, key: str) -> str:  # type: ignore[no-untyped-def]
    """Fails on its first attempt (counted in our server), succeeds when retried."""
    attempt = redis.Redis.from_url(URL).incr(key)
    if attempt < 2:
        raise self.retry(countdown=1)
    return f"ok after {attempt} attempts"
