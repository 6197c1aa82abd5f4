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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from marketdata.book import DEFAULT_MAX_LEVELS
from marketdata.capped_read import DEFAULT_MAX_SNAPSHOT_BYTES
from marketdata.config_yaml import ConfigFileError, read_yaml
from marketdata.exchanges import binance_futures, binance_spot

ENV_PREFIX = "MARKETDATA_"
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_\-/]{1,31}$")
_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*):[^/@]*@")


class ConfigError(Exception):
    """One or more problems in the configuration, each `key.path: what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
class ExchangeConfig:
    """The keys every exchange section has; each venue sets its URLs and snapshot limits."""

    snapshot_limits: ClassVar[Collection[int]] = ()  # the venue's allowed depth limits
    symbols: tuple[str, ...] = ()
    ws_url: str = ""
    rest_url: str = ""
    snapshot_limit: int = 1000
    # Resync a book whose top disagrees with bookTicker this many comparisons in a row; 0: off.
    top_audit_mismatches: int = 3
    max_levels_per_side: int = DEFAULT_MAX_LEVELS  # past it the book is rebuilt
    max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES  # a larger snapshot body is refused

    def __post_init__(self) -> None:
        upper = tuple(s.upper() if isinstance(s, str) else s for s in self.symbols)
        object.__setattr__(self, "symbols", upper)


@dataclass(frozen=True)
class BinanceFuturesConfig(ExchangeConfig):
    snapshot_limits: ClassVar[Collection[int]] = binance_futures.SNAPSHOT_LIMITS
    ws_url: str = binance_futures.DEFAULT_WS_URL
    rest_url: str = binance_futures.DEFAULT_REST_URL


@dataclass(frozen=True)
class BinanceSpotConfig(ExchangeConfig):
    snapshot_limits: ClassVar[Collection[int]] = range(
        binance_spot.MIN_SNAPSHOT_LIMIT, binance_spot.MAX_SNAPSHOT_LIMIT + 1
    )
    ws_url: str = binance_spot.DEFAULT_WS_URL
    rest_url: str = binance_spot.DEFAULT_REST_URL


@dataclass(frozen=True)
class Config:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
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
    exchanges: Mapping[str, ExchangeConfig] = field(default_factory=dict)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Config(redis_url={mask_url(self.redis_url)!r}, {fields})"


EXCHANGE_CONFIGS: dict[str, type[ExchangeConfig]] = {
    "binance_futures": BinanceFuturesConfig,
    "binance_spot": BinanceSpotConfig,
}

# Keys that may come from the environment instead of the file (URLs and secrets).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    f"{ENV_PREFIX}REDIS_URL": ("redis_url",),
    f"{ENV_PREFIX}HEALTH_HOST": ("health_host",),  # 0.0.0.0 in a container
    f"{ENV_PREFIX}PERSIST_HEALTH_HOST": ("persist", "health_host"),
    f"{ENV_PREFIX}TIMESCALE_ENABLED": ("persist", "timescale", "enabled"),
    f"{ENV_PREFIX}MONGO_ENABLED": ("persist", "mongo", "enabled"),
    f"{ENV_PREFIX}TIMESCALE_DSN": ("persist", "timescale", "dsn"),
    f"{ENV_PREFIX}MONGO_URL": ("persist", "mongo", "url"),
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


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, even when the URL is malformed."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


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
        problems.append(f"{path or '(top level)'}: expected a mapping, got {_kind(raw)}")
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
            problems.append(f"{path}: expected a list, got {_kind(value)}")
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
    problems.append(f"{path}: expected {_type_name(hint)}, got {_kind(value)} {_short(value)}")
    return None


def _exchanges(value: Any, path: str, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping of exchange names, got {_kind(value)}")
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
    _check_url(config.redis_url, "redis_url", ("redis", "rediss", "unix"), problems)
    _check_range(config.health_port, "health_port", 0, 65535, problems)
    _check_range(config.book_depth, "book_depth", 1, 1000, problems)
    _check_range(config.publish_interval_ms, "publish_interval_ms", 0, 60_000, problems)
    _check_range(config.market_data_ttl_s, "market_data_ttl_s", 1, 30 * 86400, problems)
    _check_range(config.stale_after_s, "stale_after_s", 0.1, 86400, problems)
    _check_range(config.reconnect.initial_delay_s, "reconnect.initial_delay_s", 0, 600, problems)
    _check_range(config.reconnect.max_delay_s, "reconnect.max_delay_s", 0.001, 3600, problems)
    _check_range(
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
    if not config.exchanges:
        problems.append("exchanges: configure at least one exchange with symbols")
    for name, exchange in config.exchanges.items():
        _check_exchange(config, name, exchange, problems)


def _check_spool_and_persist(config: Config, problems: list[str]) -> None:
    spool, persist = config.spool, config.persist
    _check_range(spool.max_entries, "spool.max_entries", 1000, 10**9, problems)
    _check_range(spool.books_refuse_fraction, "spool.books_refuse_fraction", 0.0, 1.0, problems)
    _check_range(spool.snapshot_interval_ms, "spool.snapshot_interval_ms", 10, 3_600_000, problems)
    if not spool.spill_path:
        problems.append("spool.spill_path: must not be empty")
    _check_range(persist.health_port, "persist.health_port", 0, 65535, problems)
    _check_range(persist.batch.max_rows, "persist.batch.max_rows", 1, 1_000_000, problems)
    _check_range(persist.batch.max_ms, "persist.batch.max_ms", 1, 60_000, problems)
    _check_range(persist.claim_idle_ms, "persist.claim_idle_ms", 100, 86_400_000, problems)
    if not persist.consumer:
        problems.append("persist.consumer: must not be empty")
    _check_url(persist.timescale.dsn, "persist.timescale.dsn", ("postgresql", "postgres"), problems)
    _check_url(persist.mongo.url, "persist.mongo.url", ("mongodb", "mongodb+srv"), problems)


def _check_exchange(
    config: Config, name: str, exchange: ExchangeConfig, problems: list[str]
) -> None:
    path = f"exchanges.{name}"
    _check_url(exchange.ws_url, f"{path}.ws_url", ("ws", "wss"), problems)
    _check_url(exchange.rest_url, f"{path}.rest_url", ("http", "https"), problems)
    if exchange.snapshot_limit not in exchange.snapshot_limits:
        problems.append(f"{path}.snapshot_limit: {_not_allowed(exchange)}")
    elif config.book_depth > exchange.snapshot_limit:
        problems.append(
            f"{path}.snapshot_limit: {exchange.snapshot_limit} is below book_depth "
            f"{config.book_depth}; published levels would be missing"
        )
    _check_range(exchange.top_audit_mismatches, f"{path}.top_audit_mismatches", 0, 1000, problems)
    _check_range(exchange.max_levels_per_side, f"{path}.max_levels_per_side", 1, 10**6, problems)
    if exchange.max_levels_per_side < 2 * exchange.snapshot_limit:
        problems.append(
            f"{path}.max_levels_per_side: {exchange.max_levels_per_side} leaves no room above "
            f"snapshot_limit {exchange.snapshot_limit} (diffs add levels beyond the snapshot, "
            f"and a book at the cap is rebuilt); use at least {2 * exchange.snapshot_limit}"
        )
    _check_range(
        exchange.max_snapshot_bytes, f"{path}.max_snapshot_bytes", 65_536, 1 << 30, problems
    )
    if not exchange.symbols:
        problems.append(f"{path}.symbols: list at least one symbol")
    seen: set[str] = set()
    for i, symbol in enumerate(exchange.symbols):
        if not symbol or not SYMBOL_PATTERN.match(symbol):
            problems.append(f"{path}.symbols[{i}]: {symbol!r} is not a symbol like BTCUSDT")
        elif symbol in seen:
            problems.append(f"{path}.symbols[{i}]: duplicate symbol {symbol!r}")
        seen.add(symbol)


def _not_allowed(exchange: ExchangeConfig) -> str:
    allowed, limit = exchange.snapshot_limits, exchange.snapshot_limit
    if isinstance(allowed, range):
        return f"{limit} is outside {allowed.start}..{allowed.stop - 1}"
    return f"{limit} is not one of {', '.join(map(str, allowed))}"


def _check_url(url: str, path: str, schemes: tuple[str, ...], problems: list[str]) -> None:
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - parses the netloc: a bracket left open raises here
    except ValueError as e:
        problems.append(f"{path}: {_short(mask_url(url))} is not a valid URL ({e})")
        return
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        problems.append(f"{path}: {_short(mask_url(url))} must start with {allowed}")
    elif parts.scheme != "unix" and not parts.hostname:
        problems.append(f"{path}: {_short(mask_url(url))} has no host")
    else:
        _check_port(parts.netloc, path, problems)


def _check_port(netloc: str, path: str, problems: list[str]) -> None:
    """The port of the last host in netloc (libpq and MongoDB allow `h1:p1,h2:p2`)."""
    hostport = netloc.rpartition("@")[2].rpartition(",")[2]
    host, colon, port = hostport.rpartition(":")
    if not colon or host.startswith("[") and not host.endswith("]"):
        return  # no port, or a colon inside a bracketed IPv6 address
    if not port:
        return
    if not port.isdigit():
        problems.append(f"{path}: port {_short(port)} is not a number")
    elif not 1 <= int(port) <= 65535:
        problems.append(f"{path}: port {int(port)} is outside 1..65535")


def _check_range(value: float, path: str, low: float, high: float, problems: list[str]) -> None:
    if not low <= value <= high:
        problems.append(f"{path}: {value} is outside {low}..{high}")


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a wrong value may be a whole document)."""
    if isinstance(value, list | dict) and len(value) > limit:
        return f"<{_kind(value)} of {len(value)}>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint)
    )
