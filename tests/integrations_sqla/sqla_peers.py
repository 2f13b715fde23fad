"""Servers the SQLAlchemy integration tests run against, started once per session on free
loopback ports and stopped at the end: redis-server, ``faster-backend serve``, PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {out[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def _wait_ping(url: str, timeout: float = 30) -> None:
    import redis

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = redis.Redis.from_url(url)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        except redis.RedisError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} does not answer PING: {last}")


@dataclass
class _Peers:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    pg_stop: list[list[str]] = field(default_factory=list)

    def stop(self) -> None:
        for cmd in self.pg_stop:
            subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.procs.clear()
        self.urls.clear()
        self.pg_stop.clear()
        self.dirs.clear()


PEERS = _Peers()


def _start_redis() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise _Skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--daemonize", "no"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    PEERS.procs.append(proc)
    _wait_port(port, proc, "redis-server")
    url = f"redis://127.0.0.1:{port}/0"
    _wait_ping(url)
    return url


def _faster_serve_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--help"],
        capture_output=True, timeout=60, check=False,
    )
    return probe.returncode == 0


def _start_faster() -> str:
    if not _faster_serve_available():
        raise _Skip("`python -m faster_backend serve` is not available in this checkout")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "faster_backend", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir(),
    )
    PEERS.procs.append(proc)
    _wait_port(port, proc, "faster-backend serve")
    url = f"redis://127.0.0.1:{port}/0"
    _wait_ping(url)
    return url


def _pg_bindir() -> str | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return os.path.dirname(initdb)
    return None


def _start_postgres() -> str:
    bindir = _pg_bindir()
    if bindir is None:
        raise _Skip("PostgreSQL binaries are absent (/usr/lib/postgresql/*/bin; apt-get install"
                    " postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise _Skip("psycopg is not installed") from None
    run_as: list[str] = []
    base = tempfile.mkdtemp(prefix="fb-pg-")
    PEERS.dirs.append(base)
    if os.geteuid() == 0:
        # postgres refuses to run as root: run the cluster as the postgres user.
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise _Skip("running as root and there is no 'postgres' user") from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")
    subprocess.run(
        [*run_as, f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True, timeout=120,
    )
    port = free_port()
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*run_as, f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", f"{base}/log", "-w",
         "start"],
        check=True, capture_output=True, timeout=120,
    )
    PEERS.pg_stop.append([*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w",
                          "stop"])
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


class _Skip(Exception):
    pass


_STARTERS = {"redis": _start_redis, "faster": _start_faster, "postgres": _start_postgres}


def peer_url(name: str) -> str:
    """The URL of peer ``name`` (started on first use); skips the test if it cannot exist."""
    if name in PEERS.urls:
        return PEERS.urls[name]
    if name in PEERS.skips:
        pytest.skip(PEERS.skips[name])
    try:
        url = _STARTERS[name]()
    except _Skip as exc:
        PEERS.skips[name] = str(exc)
        pytest.skip(str(exc))
    PEERS.urls[name] = url
    return url
