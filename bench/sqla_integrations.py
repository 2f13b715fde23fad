"""The SQLAlchemy integrations beside their peers, in one run, with ratios.

1. dogpile.cache ``region.get`` hits (and ``set``): ``faster_backend`` embedded, ``faster_backend``
   on ``faster-backend serve``, dogpile's own ``redis`` backend on redis-server, and dogpile's
   ``memory`` backend for reference.
2. Session reads and writes through Flask-Session's interfaces on one SQLite file: the stock
   SQLAlchemy interface vs ours (SqlTableStore: table + hybrid-log cache).

    python bench/sqla_integrations.py [--ops 20000] [--sessions 1000]

Servers are started on free loopback ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(cmd: list[str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def rate(n: int, fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def bench_dogpile(ops: int) -> None:
    from dogpile.cache import make_region

    keys = [f"key:{i}" for i in range(1000)]
    value = {"name": "x" * 80, "n": 1}
    configs: dict[str, tuple[str, dict[str, Any]]] = {}
    tmp = tempfile.mkdtemp(prefix="fb-bench-")
    configs["faster_backend embedded"] = ("faster_backend", {"path": tmp})
    configs["dogpile memory"] = ("dogpile.cache.memory", {})
    results: dict[str, tuple[float, float]] = {}

    def run(name: str, backend: str, arguments: dict[str, Any]) -> None:
        region = make_region().configure(backend, expiration_time=3600, arguments=arguments)
        n = len(keys)

        def sets() -> None:
            for i in range(ops):
                region.set(keys[i % n], value)

        def gets() -> None:
            for i in range(ops):
                region.get(keys[i % n])

        results[name] = (rate(ops, sets), rate(ops, gets))

    for name, (backend, arguments) in configs.items():
        run(name, backend, arguments)
    fport, rport = free_port(), free_port()
    with server([sys.executable, "-m", "faster_backend", "serve", "--port", str(fport)],
                fport) as furl:
        run("faster_backend -> faster-backend serve", "faster_backend", {"url": furl})
    if shutil.which("redis-server"):
        with server(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save",
                     "", "--appendonly", "no"], rport) as rurl:
            run("dogpile.cache.redis -> redis-server", "dogpile.cache.redis", {"url": rurl})
            run("faster_backend -> redis-server", "faster_backend", {"url": rurl})
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\ndogpile.cache region, {ops} ops over 1000 keys (ops/s)")
    base = results.get("dogpile.cache.redis -> redis-server")
    for name, (s, g) in results.items():
        ratio = f"  get x{g / base[1]:.2f} set x{s / base[0]:.2f} vs dogpile redis" if base else ""
        print(f"  {name:42s} set {s:>10,.0f}  get {g:>10,.0f}{ratio}")


def bench_sessions(ops: int, sessions: int) -> None:
    import logging

    from flask import Flask
    from flask_session.sqlalchemy import SqlAlchemySessionInterface
    from flask_sqlalchemy import SQLAlchemy

    from faster_backend.integrations.sqlalchemy.flask_adapter import FasterSqlSessionInterface

    logging.getLogger("flask_session").setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="fb-bench-")
    url = f"sqlite:///{os.path.join(tmp, 'sessions.db')}"
    life = timedelta(hours=1)

    stock_app = Flask("stock")
    stock_app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="x")
    db = SQLAlchemy(stock_app)
    stock = SqlAlchemySessionInterface(stock_app, client=db)
    ours_app = Flask("ours")
    ours = FasterSqlSessionInterface(ours_app, url=url, cleanup_interval=None)
    ids = [f"session:{i:08d}" for i in range(sessions)]
    # every write is a committed SQLite transaction (an fsync): keep their number small
    n_writes = max(sessions, min(ops, 2 * sessions))
    results: dict[str, tuple[float, float]] = {}

    for name, iface, app in (("Flask-Session SqlAlchemySessionInterface", stock, stock_app),
                             ("faster-backend FasterSqlSessionInterface", ours, ours_app)):
        with app.app_context():
            sess = iface.session_class({"user": "alice", "cart": list(range(20))}, sid="x")

            def writes(iface: Any = iface, sess: Any = sess) -> None:
                for i in range(n_writes):
                    iface._upsert_session(life, sess, ids[i % sessions])

            def reads(iface: Any = iface) -> None:
                for i in range(ops):
                    assert iface._retrieve_session_data(ids[i % sessions]) is not None

            results[name] = (rate(n_writes, writes), rate(ops, reads))
    ours.store.close()
    with stock_app.app_context():
        db.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nFlask-Session on SQLite, {n_writes} writes then {ops} reads over {sessions}"
          " sessions (ops/s)")
    base = results["Flask-Session SqlAlchemySessionInterface"]
    for name, (w, r) in results.items():
        print(f"  {name:42s} write {w:>9,.0f}  read {r:>10,.0f}"
              f"  read x{r / base[1]:.2f} write x{w / base[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=300)
    args = parser.parse_args()
    bench_dogpile(args.ops)
    bench_sessions(args.ops, args.sessions)


if __name__ == "__main__":
    main()
