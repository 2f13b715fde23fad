"""RESP peers for the redis:// mode tests: Debian's redis-server and `faster-backend serve`,
each started on a free loopback port and stopped afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

PEERS = ["redis-server", "faster-backend"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable(peer: str) -> str | None:
    """Why ``peer`` cannot be started here, or None."""
    if peer == "redis-server":
        if shutil.which("redis-server") is None:
            return "redis-server is not installed (Debian package redis-server)"
        return None
    probe = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--help"],
        capture_output=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return "`python -m faster_backend serve` is not available in this build"
    return None


def _command(peer: str, port: int) -> list[str]:
    if peer == "redis-server":
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "yes"]
    return [sys.executable, "-m", "faster_backend", "serve", "--bind", "127.0.0.1",
            "--port", str(port)]


@contextmanager
def resp_server(peer: str) -> Iterator[str]:
    """Run ``peer`` on a free loopback port; yields its redis:// URL."""
    port = free_port()
    proc = subprocess.Popen(
        _command(peer, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{peer} exited with {proc.returncode}: {err[-2000:]}")
            try:
                client = redis.Redis.from_url(url, socket_timeout=2)
                client.ping()
                client.close()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
