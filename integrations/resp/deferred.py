"""Replies computed off the event loop: F2's live-key count (DBSIZE, INFO).

F2's ``len()`` settles the blind upserts since its last call with device reads (docs/f2.md),
seconds after a bulk load, without holding up other threads. A handler that needs the counts
returns a ``Deferred`` when they are not settled: the settling runs in a worker thread, the
connection waits for the reply (its later pipelined commands too, as behind a blocking command)
and the server goes on serving the others. ``then`` builds the reply on the event loop once the
settling is done. Inside EXEC or a script the caller waits for it instead (blocking.settle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_counter: ThreadPoolExecutor | None = None


class Deferred:
    __slots__ = ("future", "then")

    def __init__(self, future: Future[Any], then: Callable[[], Any]) -> None:
        self.future = future
        self.then = then

    def wait(self) -> Any:
        """The reply, waiting for the settling here (where nothing may be deferred)."""
        self.future.result()
        return self.then()


def after_counts(stores: Iterable[Any], then: Callable[[], Any]) -> Any:
    """``then()`` once the live counts of ``stores`` are settled: at once if they are, else a
    ``Deferred`` whose settling runs in a worker thread."""
    unsettled = [kv for kv in stores if not kv.count_is_settled()]
    if not unsettled:
        return then()
    global _counter
    if _counter is None:
        _counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resp-count")
    return Deferred(_counter.submit(lambda: [len(kv) for kv in unsettled]), then)
