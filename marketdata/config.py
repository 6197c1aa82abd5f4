"""Configuration: YAML -> frozen dataclasses, validated up front, with env overrides.

Every problem is reported at once, one line each, naming the key path, so that a bad file
is fixed in one pass. Secrets (passwords in URLs) never appear in reprs or logs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marketdata.config_yaml import ConfigFileError, read_yaml
from marketdata.exchange_config import (
    ExchangeConfig,
    check_range,
    check_url,
    kind,
    mask_url,
    short,
)
from marketdata.venues.catalog import VENUE_CONFIGS

ENV_PREFIX = "MARKETDATA_"
IP_LABEL = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # part of a Redis key: no spaces or braces


class ConfigError(Exception):
    """One or more problems in the configuration, each `key.path: what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


MAX_SPOOL_PARTITIONS = 1024


@dataclass(frozen=True)
class ReconnectConfig:
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_connection_age_s: float = 23 * 3600.0  # hand over before the exchange's 24 h cut


@dataclass(frozen=True)
class SpoolConfig:
    enabled: bool = True
    max_entries: int = 500_000  # both streams together: at most ~450 MB of Redis (README)
    books_refuse_fraction: float = 0.8  # book snapshots refused past this fill
    snapshot_interval_ms: int = 1000  # top-N book snapshot per symbol
    spill_path: str = ".run/spill/spool.jsonl"  # entries not in Redis at shutdown
    # With redis_cluster: the spool's stream pairs, spool:trades:{p0}.. (README: Redis
    # Cluster); max_entries is shared evenly among them.
    partitions: int = 1


@dataclass(frozen=True)
class BatchConfig:
    max_rows: int = 5000
    max_ms: int = 500


@dataclass(frozen=True)
class TimescaleConfig:
    enabled: bool = True
    dsn: str = field(default="postgresql://marketdata@127.0.0.1:5432/marketdata", repr=False)


@dataclass(frozen=True)
class MongoConfig:
    enabled: bool = False
    url: str = field(default="mongodb://127.0.0.1:27017", repr=False)
    database: str = "marketdata"


@dataclass(frozen=True)
class PersistConfig:
    health_host: str = "127.0.0.1"
    health_port: int = 9091
    consumer: str = "persist-1"  # stable, so a restart re-reads its own pending entries
    claim_idle_ms: int = 30_000  # entries pending this long on another consumer are taken
    batch: BatchConfig = BatchConfig()
    timescale: TimescaleConfig = TimescaleConfig()
    mongo: MongoConfig = MongoConfig()


@dataclass(frozen=True)
class RestBudgetConfig:
    # Off: each process keeps the venue's REST weight budget alone, as if it were the only
    # one behind its IP. On: every process with the same ip_label shares one budget per
    # venue in Redis (README: Shared REST budget).
    shared: bool = False
    ip_label: str = "default"  # names the egress IP: processes behind one IP share it


@dataclass(frozen=True)
class LeasesConfig:
    # On: instances on several hosts share the configured symbols through Redis leases,
    # each (venue, symbol) published by one live instance (README: Several hosts).
    enabled: bool = False
    ttl_s: float = 5.0  # a dead owner's symbols are taken over within this (+ resync)
    instance_id: str = ""  # names this instance in lease values; "": hostname-pid-random


@dataclass(frozen=True)
class Config:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_cluster: bool = False  # redis_url names one node of a Redis Cluster
    sharded_pubsub: bool = False  # SPUBLISH (subscribers SSUBSCRIBE) instead of PUBLISH
    health_host: str = "127.0.0.1"
    health_port: int = 9090
    book_depth: int = 20
    publish_interval_ms: int = 100
    market_data_ttl_s: int = 300
    stale_after_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    reconnect: ReconnectConfig = ReconnectConfig()
    spool: SpoolConfig = SpoolConfig()
    persist: PersistConfig = PersistConfig()
    rest_budget: RestBudgetConfig = RestBudgetConfig()
    leases: LeasesConfig = LeasesConfig()
    exchanges: Mapping[str, ExchangeConfig] = field(default_factory=dict)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Config(redis_url={mask_url(self.redis_url)!r}, {fields})"


EXCHANGE_CONFIGS: dict[str, type[ExchangeConfig]] = VENUE_CONFIGS

# Keys that may come from the environment instead of the file (URLs and secrets).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    f"{ENV_PREFIX}REDIS_URL": ("redis_url",),
    f"{ENV_PREFIX}REDIS_CLUSTER": ("redis_cluster",),
    f"{ENV_PREFIX}SHARDED_PUBSUB": ("sharded_pubsub",),
    f"{ENV_PREFIX}HEALTH_HOST": ("health_host",),  # 0.0.0.0 in a container
    f"{ENV_PREFIX}PERSIST_HEALTH_HOST": ("persist", "health_host"),
    f"{ENV_PREFIX}TIMESCALE_ENABLED": ("persist", "timescale", "enabled"),
    f"{ENV_PREFIX}MONGO_ENABLED": ("persist", "mongo", "enabled"),
    f"{ENV_PREFIX}TIMESCALE_DSN": ("persist", "timescale", "dsn"),
    f"{ENV_PREFIX}MONGO_URL": ("persist", "mongo", "url"),
    f"{ENV_PREFIX}REST_IP_LABEL": ("rest_budget", "ip_label"),  # set per host or pod
    f"{ENV_PREFIX}LEASES_ENABLED": ("leases", "enabled"),
    f"{ENV_PREFIX}LEASES_INSTANCE_ID": ("leases", "instance_id"),  # set per host or pod
    **{
        f"{ENV_PREFIX}{name.upper()}_{key.upper()}": ("exchanges", name, key)
        for name in EXCHANGE_CONFIGS
        for key in ("ws_url", "rest_url")
    },
}


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate. Raises ConfigError."""
    try:
        raw = read_yaml(path)
    except ConfigFileError as e:
        raise ConfigError([str(e)]) from None
    return parse_config({} if raw is None else raw, environ)


def parse_config(raw: Any, environ: Mapping[str, str] | None = None) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a mapping of keys"])
    environ = os.environ if environ is None else environ
    raw = _with_env_overrides(raw, environ)
    problems: list[str] = []
    config = _build(Config, raw, "", problems)
    if not problems:
        _check_semantics(config, problems)
    if problems:
        raise ConfigError([_name_env_source(p, environ) for p in problems])
    assert isinstance(config, Config)
    return config


def _with_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    raw = dict(raw)
    for env_name, key_path in ENV_OVERRIDES.items():
        if env_name not in environ:
            continue
        node = raw
        for key in key_path[:-1]:
            child = node.get(key, None if key_path[0] == "exchanges" else {})
            if not isinstance(child, dict):
                break  # no such exchange configured (or not a mapping): nothing to override
            node[key] = child = dict(child)
            node = child
        else:
            node[key_path[-1]] = _env_value(environ[env_name])
    return raw


def _env_value(text: str) -> str | bool:
    """Environment values are text; true/false switch a boolean key."""
    return {"true": True, "false": False}.get(text.strip().lower(), text)


def _name_env_source(problem: str, environ: Mapping[str, str]) -> str:
    """`key: ...` -> `key (from VARIABLE): ...` when that key's value came from VARIABLE."""
    for env_name, key_path in ENV_OVERRIDES.items():
        key = ".".join(key_path)
        if env_name in environ and problem.startswith(f"{key}:"):
            return f"{key} (from {env_name}){problem[len(key) :]}"
    return problem


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from a mapping, collecting every problem found."""
    if not isinstance(raw, dict):
        problems.append(f"{path or '(top level)'}: expected a mapping, got {kind(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{_join(path, key)}: unknown key{hint}")
    values = {}
    for name in names:
        if name in raw:
            values[name] = _convert(hints[name], raw[name], _join(path, name), problems)
    try:
        return cls(**{k: v for k, v in values.items() if v is not None})
    except TypeError:
        return None


def _convert(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {kind(value)}")
            return None
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if origin in (Mapping, dict):
        return _exchanges(value, path, problems)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if isinstance(hint, types.UnionType):
        return value
    problems.append(f"{path}: expected {_type_name(hint)}, got {kind(value)} {short(value)}")
    return None


def _exchanges(value: Any, path: str, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping of exchange names, got {kind(value)}")
        return None
    result = {}
    for name, section in value.items():
        cls = EXCHANGE_CONFIGS.get(name)
        if cls is None:
            close = difflib.get_close_matches(str(name), list(EXCHANGE_CONFIGS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{_join(path, name)}: unknown exchange{hint}")
            continue
        built = _build(cls, {} if section is None else section, _join(path, name), problems)
        if built is not None:
            result[name] = built
    return result


def _check_semantics(config: Config, problems: list[str]) -> None:
    check_url(config.redis_url, "redis_url", ("redis", "rediss", "unix"), problems)
    check_range(config.health_port, "health_port", 0, 65535, problems)
    check_range(config.book_depth, "book_depth", 1, 1000, problems)
    check_range(config.publish_interval_ms, "publish_interval_ms", 0, 60_000, problems)
    check_range(config.market_data_ttl_s, "market_data_ttl_s", 1, 30 * 86400, problems)
    check_range(config.stale_after_s, "stale_after_s", 0.1, 86400, problems)
    check_range(config.reconnect.initial_delay_s, "reconnect.initial_delay_s", 0, 600, problems)
    check_range(config.reconnect.max_delay_s, "reconnect.max_delay_s", 0.001, 3600, problems)
    check_range(
        config.reconnect.max_connection_age_s, "reconnect.max_connection_age_s", 1, 86000, problems
    )
    if config.reconnect.max_delay_s < config.reconnect.initial_delay_s:
        problems.append("reconnect.max_delay_s: must not be below reconnect.initial_delay_s")
    if config.log_format not in ("text", "json"):
        problems.append(f"log_format: must be 'text' or 'json', not {config.log_format!r}")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(
            f"log_level: must be DEBUG, INFO, WARNING or ERROR, not {config.log_level!r}"
        )
    _check_spool_and_persist(config, problems)
    _check_cluster(config, problems)
    _check_rest_budget(config.rest_budget, problems)
    _check_leases(config.leases, problems)
    if not config.exchanges:
        problems.append("exchanges: configure at least one exchange with symbols")
    for name, exchange in config.exchanges.items():
        exchange.check(f"exchanges.{name}", config.book_depth, problems)


def _check_spool_and_persist(config: Config, problems: list[str]) -> None:
    spool, persist = config.spool, config.persist
    check_range(spool.max_entries, "spool.max_entries", 1000, 10**9, problems)
    check_range(spool.books_refuse_fraction, "spool.books_refuse_fraction", 0.0, 1.0, problems)
    check_range(spool.snapshot_interval_ms, "spool.snapshot_interval_ms", 10, 3_600_000, problems)
    if not spool.spill_path:
        problems.append("spool.spill_path: must not be empty")
    check_range(persist.health_port, "persist.health_port", 0, 65535, problems)
    check_range(persist.batch.max_rows, "persist.batch.max_rows", 1, 1_000_000, problems)
    check_range(persist.batch.max_ms, "persist.batch.max_ms", 1, 60_000, problems)
    check_range(persist.claim_idle_ms, "persist.claim_idle_ms", 100, 86_400_000, problems)
    if not persist.consumer:
        problems.append("persist.consumer: must not be empty")
    check_url(persist.timescale.dsn, "persist.timescale.dsn", ("postgresql", "postgres"), problems)
    check_url(persist.mongo.url, "persist.mongo.url", ("mongodb", "mongodb+srv"), problems)


def _check_cluster(config: Config, problems: list[str]) -> None:
    check_range(config.spool.partitions, "spool.partitions", 1, MAX_SPOOL_PARTITIONS, problems)
    if not config.redis_cluster:
        if config.spool.partitions > 1:
            problems.append("spool.partitions: more than 1 needs redis_cluster: true")
        return
    if config.redis_url.startswith("unix"):
        problems.append("redis_url: a Redis Cluster is reached over TCP, not a unix socket")
    elif urlsplit(config.redis_url).path.strip("/") not in ("", "0"):
        problems.append("redis_url: a Redis Cluster has only database 0 (redis_cluster: true)")


def _check_rest_budget(budget: RestBudgetConfig, problems: list[str]) -> None:
    label = budget.ip_label
    if not IP_LABEL.fullmatch(label):
        problems.append(
            f"rest_budget.ip_label: {short(label)} must be 1 to 64 letters, digits or . _ : -"
        )


def _check_leases(leases: LeasesConfig, problems: list[str]) -> None:
    check_range(leases.ttl_s, "leases.ttl_s", 0.5, 600, problems)
    if leases.instance_id and not IP_LABEL.fullmatch(leases.instance_id):
        problems.append(
            f"leases.instance_id: {short(leases.instance_id)} must be 1 to 64 letters, digits "
            "or . _ : - (or empty: hostname-pid-random)"
        )


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint)
    )
