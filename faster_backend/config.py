"""Configuration: a TOML file plus ``FASTER_BACKEND__<section>__<field>`` environment overrides.

Every section is a dataclass; a field whose metadata says ``size`` accepts "64MiB"-style strings.
Unknown sections or keys and values of the wrong type raise ConfigError naming the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib  # Python >= 3.11 (the tomli dependency applies to older interpreters only)
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faster_backend.engine.sizes import parse_size

ENV_PREFIX = "FASTER_BACKEND__"


class ConfigError(ValueError):
    """An invalid configuration file, key or value."""


def _size(default: int | None) -> Any:
    return field(default=default, metadata={"size": True})


@dataclass
class StoreConfig:
    """The embedded store (``FasterKV``)."""

    path: str | None = None
    memory_size: int = _size(256 << 20)
    index_size: int = 1 << 16
    page_size: int | None = _size(None)
    mutable_fraction: float = 0.9
    index_load_factor: float = 6.0
    device: str = "auto"
    segment_size: int | None = _size(None)
    read_cache_size: int | None = _size(None)
    log_size_limit: int | None = _size(None)
    max_disk_size: int | None = _size(None)
    compaction_fraction: float | None = None  # the engine's: 0.2, or 0.4 with tiering f2
    durability: str = "none"
    commit_interval_ms: int = 1000
    checkpoint_kind: str = "fold-over"
    checkpoint_retention: int = 2
    # "f2": hot and cold tiers (docs/f2.md); the cold_* and hot_* keys apply to it only
    tiering: str = "single"
    hot_log_size: int | None = _size(None)
    cold_log_size: int | None = _size(None)
    cold_index_chunks: int | None = None


@dataclass
class ServerConfig:
    """The RESP listener (``faster-backend serve``)."""

    bind: str = "127.0.0.1"
    port: int = 6379
    requirepass: str | None = None
    protected_mode: bool = True
    maxclients: int = 10000
    timeout: int = 0
    databases: int = 16
    proto_max_bulk_len: int = _size(512 << 20)
    client_query_buffer_limit: int = _size(1 << 30)
    client_output_buffer_limit: int = _size(1 << 30)
    # Redis' ``client-output-buffer-limit pubsub 32mb 8mb 60`` (0 = no limit)
    pubsub_output_hard_limit: int = _size(32 << 20)
    pubsub_output_soft_limit: int = _size(8 << 20)
    pubsub_output_soft_seconds: int = 60
    # Estimated bytes of live hashes, lists, sets, sorted sets and streams kept in memory per
    # database (None: the store's memory_size); beyond it the oldest are written back, dropped.
    object_cache_size: int | None = _size(None)
    metrics_port: int | None = None


@dataclass
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    server: ServerConfig = field(default_factory=ServerConfig)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read ``path`` (optional) and apply environment overrides from ``env`` (os.environ)."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    config = Config()
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(
                f"{source}: unknown section [{name}] (known: {', '.join(sorted(sections))})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        _apply(getattr(config, name), name, values, source, from_env=False)
    env = os.environ if env is None else env
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(
                f"environment variable {var}: expected {ENV_PREFIX}<SECTION>__<FIELD>"
                f" with a section among {', '.join(sorted(sections))}"
            )
        _apply(getattr(config, parts[0]), parts[0], {parts[1]: raw}, var, from_env=True)
    return config


def _apply(
    target: Any, section: str, values: Mapping[str, Any], source: str, *, from_env: bool
) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = typing.get_type_hints(type(target))
    for key, raw in values.items():
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key {section}.{key} (known: {', '.join(sorted(fields))})"
            )
        name = f"{section}.{key}"
        value = _convert(raw, hints[key], fields[key].metadata.get("size", False), name, from_env)
        choices = _CHOICES.get(name)
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{source}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        setattr(target, key, value)


_CHOICES: dict[str, tuple[str, ...]] = {"store.tiering": ("single", "f2")}


def _convert(raw: Any, hint: Any, is_size: bool, name: str, from_env: bool) -> Any:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if optional and (raw is None or (from_env and raw.lower() in ("", "none", "null"))):
        return None
    try:
        if is_size:
            return parse_size(raw, name=name)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            if from_env and raw.lower() in ("1", "true", "yes", "on"):
                return True
            if from_env and raw.lower() in ("0", "false", "no", "off"):
                return False
        elif hint is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if from_env:
                return int(raw)
        elif hint is float:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
            if from_env:
                return float(raw)
        elif hint is str and isinstance(raw, str):
            return raw
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    raise ConfigError(f"{name}: expected {hint.__name__}, got {raw!r}")
