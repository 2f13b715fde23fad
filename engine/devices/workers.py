"""A small pool of daemon threads that runs I/O jobs (blocking syscalls release the GIL)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class WorkerPool:
    """Runs submitted jobs on ``size`` threads, started on first use."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one thread, got {size}")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Job) -> None:
        """Queue ``job``; ``RuntimeError`` once the pool is closed."""
        if not self._threads:
            self._start()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"worker pool {self.name} is closed")
            self._jobs.put(job)

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size and not self._closed:
                thread = threading.Thread(
                    target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a job reports its own errors; this is a bug guard
                log.exception("I/O job crashed in %s", threading.current_thread().name)

    def close(self) -> None:
        """Finish queued jobs, then stop the threads."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()
