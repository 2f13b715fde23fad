"""Configuration: TOML, environment overrides, sizes, and clear errors."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from faster_backend import ConfigError, FasterKV, load_config
from faster_backend.config import Config
from faster_backend.engine.sizes import parse_size


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_without_a_file() -> None:
    config = load_config(env={})
    assert config.store.memory_size == 256 << 20
    assert config.server.port == 6379
    assert config.store.path is None


def test_file_and_sizes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[store]\npath = "/x"\nmemory_size = "64MiB"\nsegment_size = "1GB"\n'
        "mutable_fraction = 1\n[server]\nport = 7000\nprotected_mode = false\n",
    )
    config = load_config(path, env={})
    assert config.store.path == "/x"
    assert config.store.memory_size == 64 << 20
    assert config.store.segment_size == 10**9
    assert config.store.mutable_fraction == 1.0
    assert config.server.port == 7000
    assert config.server.protected_mode is False


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nmemory_size = "64MiB"\n')
    env = {
        "FASTER_BACKEND__STORE__MEMORY_SIZE": "1GiB",
        "FASTER_BACKEND__SERVER__PROTECTED_MODE": "no",
        "FASTER_BACKEND__SERVER__REQUIREPASS": "secret",
        "FASTER_BACKEND__STORE__READ_CACHE_SIZE": "none",
        "UNRELATED": "x",
    }
    config = load_config(path, env=env)
    assert config.store.memory_size == 1 << 30
    assert config.server.protected_mode is False
    assert config.server.requirepass == "secret"
    assert config.store.read_cache_size is None


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[store]\nmemroy_size = 1\n", {}, "unknown key store.memroy_size"),
        ("[stroe]\n", {}, "unknown section [stroe]"),
        ('[server]\nport = "6379"\n', {}, "server.port: expected int"),
        ('[store]\nmemory_size = "lots"\n', {}, "store.memory_size"),
        ("[store]\nmemory_size = -1\n", {}, "cannot be negative"),
        ("[server]\nprotected_mode = 1\n", {}, "server.protected_mode: expected bool"),
        ("not toml = = =", {}, "invalid TOML"),
        ("", {"FASTER_BACKEND__STORE__NOPE": "1"}, "unknown key store.nope"),
        ("", {"FASTER_BACKEND__STORE": "1"}, "expected FASTER_BACKEND__<SECTION>__<FIELD>"),
        ("", {"FASTER_BACKEND__SERVER__PORT": "abc"}, "server.port"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=env)
    assert message in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/config.toml", env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("64MiB", 64 << 20),
        ("1.5GiB", 3 << 29),
        ("2k", 2048),
        ("10MB", 10**7),
        (" 8 KiB ", 8192),
    ],
)
def test_sizes(text: int | str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MiB", "1 parsec", "-1", True, 1.5])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


def test_store_from_config(tmp_path: Path) -> None:
    path = write(tmp_path, f'[store]\npath = "{tmp_path / "data"}"\nmemory_size = "8MiB"\n')
    config = load_config(path, env={})
    kv = FasterKV.from_config(config.store)
    kv.upsert(b"k", b"v")
    kv.close()
    kv = FasterKV.from_config(config.store)
    assert kv.read(b"k") == b"v"
    assert kv.memory_size == 8 << 20
    kv.close()


def test_compaction_fraction_defaults_to_the_engines_own(tmp_path: Path) -> None:
    """Unset, compaction_fraction is the engine's default for the tiering: 0.2 for the single
    log, 0.4 for F2's hot-cold compaction (docs/f2.md); set, it applies to both."""
    for tiering, default in (("single", 0.2), ("f2", 0.4)):
        for setting, expected in (("", default), ("compaction_fraction = 0.3\n", 0.3)):
            data = tmp_path / f"{tiering}{bool(setting)}"
            path = write(
                tmp_path,
                f'[store]\npath = "{data}"\nmemory_size = "8MiB"\ntiering = "{tiering}"\n'
                + setting,
            )
            kv = FasterKV.from_config(load_config(path, env={}).store)
            assert kv.compaction_fraction == expected, (tiering, setting)
            kv.close()
    kv = FasterKV(tmp_path / "direct", tiering="f2", memory_size="8MiB")
    assert kv.compaction_fraction == 0.4
    kv.close()


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for name, section in typing.get_type_hints(Config).items():
        for f in dataclasses.fields(section):
            assert f"`{f.name}`" in doc, f"docs/configuration.md lacks [{name}] {f.name}"
