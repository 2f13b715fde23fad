"""The server process: signals, SHUTDOWN, CLI options, data dir, metrics, protected mode."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from faster_backend.config import Config
from faster_backend.integrations.resp.server import is_denied
from resp.harness import free_port, start_server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_in_flight_work_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    srv = start_server(tmp_path)
    r = redis.Redis(port=srv.port)
    results: list[object] = []

    def writer() -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(20_000):
            pipe.set(f"k{i}", i)
        try:
            results.extend(pipe.execute())
        except redis.ConnectionError as e:  # stopped before this batch was read: not run
            results.append(e)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.2)
    srv.proc.send_signal(sig)
    t.join(30)
    assert srv.proc.wait(30) == 0, srv.log()
    assert "server stopped" in srv.log()
    # every reply that was read is a complete, correct one
    assert all(x is True for x in results) or isinstance(results[-1], redis.ConnectionError)
    r.close()


def test_shutdown_command(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    r = redis.Redis(port=srv.port)
    r.set("k", "v")
    r.shutdown()  # redis-py expects the connection to close without a reply
    assert srv.proc.wait(30) == 0
    assert "SHUTDOWN requested" in srv.log()


def test_durability_needs_a_data_dir(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--port", str(free_port()),
         "--durability", "periodic"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1 and "needs a data directory" in out.stderr


def test_in_memory_server_refuses_checkpoints(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        r = redis.Redis(port=srv.port, decode_responses=True)
        assert r.config_get("durability") == {"durability": "none"}
        with pytest.raises(redis.ResponseError, match="checkpoints need a data directory"):
            r.bgsave()
        r.close()
    finally:
        assert srv.stop() == 0


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data), "--durability", "periodic")
    try:
        r = redis.Redis(port=srv.port, decode_responses=True)
        assert r.config_get("durability") == {"durability": "periodic"}
        r.set("kept", "v1")
        r.set("ttl", "v", ex=1000)
        r.execute_command("SELECT", 3)
        r.set("in-db3", "x")
        r.execute_command("SELECT", 0)
        before = r.lastsave()
        assert r.bgsave()
        deadline = time.monotonic() + 30
        while r.info("persistence")["rdb_bgsave_in_progress"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.lastsave() >= before
        assert r.info("persistence")["checkpoints"] >= 1
        assert r.save()
        r.set("after-save", "v2")  # only the checkpoint at shutdown holds this one
        r.close()
    finally:
        assert srv.stop() == 0, srv.log()
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port, decode_responses=True)
        assert r.get("kept") == "v1" and r.get("after-save") == "v2"
        assert 900 < r.ttl("ttl") <= 1000
        r.execute_command("SELECT", 3)
        assert r.get("in-db3") == "x"
        r.close()
    finally:
        assert srv.stop() == 0, srv.log()


def test_data_dir_is_locked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(tmp_path, "--data-dir", str(data))
    try:
        r = redis.Redis(port=srv.port)
        r.execute_command("SELECT", 3)
        r.set("k", "v")  # opens database 3 in its own subdirectory
        assert (data / "db3").is_dir()
        r.close()
        second = subprocess.run(
            [sys.executable, "-m", "faster_backend", "serve", "--port", str(free_port()),
             "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 1
        assert "locked by" in second.stderr
    finally:
        assert srv.stop() == 0


def test_bad_config_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nmaxclients = 'many'\n")
    out = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1 and "server.maxclients" in out.stderr
    cfg.write_text("[store]\ndurability = 'sometimes'\n")
    out = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1 and "store.durability" in out.stderr


def test_help_describes_durability() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "faster_backend", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert "--metrics-port" in out.stdout and "group commit" in out.stdout


def test_metrics(tmp_path: Path) -> None:
    mport = free_port()
    srv = start_server(tmp_path, "--metrics-port", str(mport))
    try:
        r = redis.Redis(port=srv.port)
        for i in range(20):
            r.set(f"m{i}", i)
            r.get(f"m{i}")
        r.get("missing")
        with pytest.raises(redis.ResponseError):
            r.execute_command("INCRBY", "m1", "x")
        deadline = time.monotonic() + 20
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        text = body.decode()
        assert 'faster_backend_commands_total{command="set"} 20.0' in text
        assert 'faster_backend_command_errors_total{command="incrby"} 1.0' in text
        assert "faster_backend_command_latency_seconds_bucket" in text
        # Every command is timed, the inline ones (SET, GET...) included.
        count = re.search(r"^faster_backend_command_latency_seconds_count (\S+)$", text, re.M)
        assert count is not None and float(count.group(1)) >= 42
        assert 'faster_backend_keys{db="0"} 20.0' in text
        assert "faster_backend_connected_clients 1.0" in text
        assert "faster_backend_keyspace_misses_total" in text
        assert "faster_backend_hit_ratio" in text
        assert "faster_backend_memory_bytes" in text
        r.close()
    finally:
        assert srv.stop() == 0


def test_protected_mode_rule() -> None:
    config = Config()
    assert is_denied(config, "10.1.2.3")
    assert is_denied(config, "2001:db8::1")
    assert not is_denied(config, "127.0.0.1")
    assert not is_denied(config, "127.5.5.5")
    assert not is_denied(config, "::1")
    assert not is_denied(config, "::ffff:127.0.0.1")
    assert is_denied(config, "::ffff:10.0.0.1")
    assert not is_denied(config, None)  # unix socket
    config.server.requirepass = "x"
    assert not is_denied(config, "10.1.2.3")
    config.server.requirepass = None
    config.server.protected_mode = False
    assert not is_denied(config, "10.1.2.3")


def test_binds_loopback_by_default(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{srv.port}"], capture_output=True,
                             text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            local = {line.split()[3] for line in out.stdout.splitlines()}
            assert local == {f"127.0.0.1:{srv.port}"}
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
            pass
    finally:
        assert srv.stop() == 0


def test_plain_asyncio_when_uvloop_is_missing(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import sys; sys.modules['uvloop'] = None\n"  # makes `import uvloop` fail
        "from faster_backend.cli import main\n"
        f"sys.exit(main(['serve', '--port', '{port}']))\n"
    )
    log = (tmp_path / "asyncio.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        r = redis.Redis(port=port)
        pipe = r.pipeline()
        for i in range(100):
            pipe.set(f"a{i}", i).get(f"a{i}")
        assert pipe.execute()[-1] == b"99"
        r.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
    text = (tmp_path / "asyncio.log").read_text()
    assert "uvloop is not installed" in text and "loop: asyncio" in text
