"""Helpers for the data-type tests: a real redis-server to compare with, raw replies."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.connection import Connection

from resp.harness import free_port


@contextmanager
def redis_server_process(tmp: Path) -> Iterator[int | None]:
    """Debian's redis-server on a free loopback port (None when it is not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


class Raw:
    """One connection returning replies as parsed by hiredis, errors as ('ERR', text)."""

    def __init__(self, port: int, protocol: int = 2) -> None:
        self.conn = Connection(port=port, protocol=protocol)
        self.conn.connect()

    def __call__(self, *args: Any) -> Any:
        self.conn.send_command(*args)
        try:
            return self.conn.read_response()
        except redis.ResponseError as e:
            return ("ERR", str(e))

    def close(self) -> None:
        self.conn.disconnect()
