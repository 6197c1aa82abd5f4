from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marketdata.cli import main
from marketdata.config import ConfigError, load_config, mask_url, parse_config

VALID = "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_and_real_endpoints(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), environ={})
    exchange = config.exchanges["binance_futures"]
    assert exchange.ws_url == "wss://fstream.binance.com"
    assert exchange.rest_url == "https://fapi.binance.com"
    assert (config.health_port, config.book_depth, config.publish_interval_ms) == (9090, 20, 100)
    assert config.market_data_ttl_s == 300


def test_repository_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "config.yaml", environ={})
    assert config.exchanges["binance_futures"].symbols


def test_env_overrides_urls(tmp_path: Path) -> None:
    env = {
        "MARKETDATA_REDIS_URL": "redis://:s3cret@10.0.0.1:6380/1",
        "MARKETDATA_BINANCE_FUTURES_WS_URL": "ws://127.0.0.1:8765",
        "MARKETDATA_BINANCE_FUTURES_REST_URL": "http://127.0.0.1:8765",
    }
    config = load_config(write(tmp_path, VALID), environ=env)
    assert config.redis_url == "redis://:s3cret@10.0.0.1:6380/1"
    assert config.exchanges["binance_futures"].ws_url == "ws://127.0.0.1:8765"
    assert config.exchanges["binance_futures"].rest_url == "http://127.0.0.1:8765"
    assert "s3cret" not in repr(config)


def test_mask_url_hides_password() -> None:
    assert mask_url("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert mask_url("redis://host:1/0") == "redis://host:1/0"


def test_lowercase_symbols_are_normalised() -> None:
    raw = {"exchanges": {"binance_futures": {"symbols": ["btcusdt"]}}}
    assert parse_config(raw, environ={}).exchanges["binance_futures"].symbols == ("BTCUSDT",)


BAD_CASES = {
    "unknown key": (
        VALID + "publish_intervl_ms: 50\n",
        "publish_intervl_ms: unknown key (did you mean 'publish_interval_ms'?)",
    ),
    "unknown nested key": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    snapshot_limt: 100\n",
        "exchanges.binance_futures.snapshot_limt: unknown key (did you mean 'snapshot_limit'?)",
    ),
    "unknown exchange": (
        "exchanges:\n  binance_future:\n    symbols: [BTCUSDT]\n",
        "exchanges.binance_future: unknown exchange (did you mean 'binance_futures'?)",
    ),
    "wrong type": (VALID + "book_depth: twenty\n", "book_depth: expected an integer, got str"),
    "wrong type in list": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT, 42]\n",
        "exchanges.binance_futures.symbols[1]: expected a string, got int",
    ),
    "empty symbols": (
        "exchanges:\n  binance_futures:\n    symbols: []\n",
        "exchanges.binance_futures.symbols: list at least one symbol",
    ),
    "duplicate symbols": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT, ETHUSDT, btcusdt]\n",
        "exchanges.binance_futures.symbols[2]: duplicate symbol 'BTCUSDT'",
    ),
    "bad ws scheme": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n"
        "    ws_url: https://fstream.binance.com\n",
        "exchanges.binance_futures.ws_url: 'https://fstream.binance.com' must start with "
        "ws://, wss://",
    ),
    "bad rest scheme": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    rest_url: ftp://x\n",
        "exchanges.binance_futures.rest_url: 'ftp://x' must start with http://, https://",
    ),
    "bad redis scheme": (
        VALID + "redis_url: http://localhost:6379\n",
        "redis_url: 'http://localhost:6379' must start with redis://, rediss://, unix://",
    ),
    "snapshot limit": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    snapshot_limit: 30\n",
        "exchanges.binance_futures.snapshot_limit: 30 is not one of 5, 10, 20, 50, 100, 500, 1000",
    ),
    "levels cap without room above the snapshot": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    max_levels_per_side: 1999\n",
        "exchanges.binance_futures.max_levels_per_side: 1999 leaves no room above snapshot_limit "
        "1000 (diffs add levels beyond the snapshot, and a book at the cap is rebuilt); use at "
        "least 2000",
    ),
    "snapshot bytes": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    max_snapshot_bytes: 100\n",
        "exchanges.binance_futures.max_snapshot_bytes: 100 is outside 65536..1073741824",
    ),
    "top audit": (
        "exchanges:\n  binance_futures:\n    symbols: [BTCUSDT]\n    top_audit_mismatches: -1\n",
        "exchanges.binance_futures.top_audit_mismatches: -1 is outside 0..1000",
    ),
    "no exchanges": ("book_depth: 20\n", "exchanges: configure at least one exchange"),
    "not yaml": ("exchanges: [unclosed\n", "not valid YAML at line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_names_the_key_and_exits_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = BAD_CASES[case]
    assert main(["check-config", "--config", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_every_problem_reported_at_once() -> None:
    raw = {"book_depth": "x", "health_port": 99999, "exchanges": {"binance_futures": {}}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ={})
    assert len(info.value.problems) == 1  # type errors stop semantic checks...
    raw = {"health_port": 99999, "exchanges": {"binance_futures": {"symbols": []}}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ={})
    assert len(info.value.problems) == 2  # ...but every semantic problem is listed


def test_cli_exit_code_2_from_a_real_process(tmp_path: Path) -> None:
    path = write(tmp_path, "exchanges:\n  binance_futures:\n    symbols: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "marketdata.cli", "run", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "marketdata: config error: exchanges.binance_futures.symbols: list at least one symbol"
    ]


BOMB = (
    "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
        for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
    )
    + "exchanges:\n  binance_futures:\n    symbols: *i\n"
)
DEEP = VALID + "book_depth: " + "[" * 20_000 + "]" * 20_000 + "\n"


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return info.value.problems


def test_a_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"book_depth: 20\n\xff\xfe\x00\x01binary")
    (problem,) = problems_of(path)
    assert "not UTF-8 text" in problem
    assert "line 2" in problem


def test_control_characters_name_their_line(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, VALID + "book_depth: 2\x000\n"))
    assert "not valid YAML at line 4" in problem
    assert "#x0000" in problem


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, VALID + "#" * (1 << 20) + "\n"))
    assert "larger than 1 MiB" in problem


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, BOMB))
    assert "aliases" in problem
    assert "more than 100000" in problem


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, VALID + "book_depth: &a [*a]\n"))
    assert "aliases" in problem


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    text = (
        "reconnect: &r {initial_delay_s: 1.0}\n"
        "exchanges:\n  binance_futures:\n    symbols: &s [BTCUSDT, ETHUSDT]\n"
    )
    config = load_config(write(tmp_path, text), environ={})
    assert config.exchanges["binance_futures"].symbols == ("BTCUSDT", "ETHUSDT")
    assert config.reconnect.initial_delay_s == 1.0


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, DEEP))
    assert "not valid YAML at line 4" in problem
    assert "nested deeper than 50 levels" in problem


def test_invalid_yaml_keeps_the_parsers_reason_and_line(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, VALID + "book_depth: 20\n  bad: [1\n"))
    assert "not valid YAML at line 5" in problem
    assert "mapping values are not allowed here" in problem


URL_CASES = {
    "redis://u:pw@[::1": "redis_url: 'redis://u:***@[::1' is not a valid URL",
    "redis://127.0.0.1:notaport/0": "redis_url: port 'notaport' is not a number",
    "redis://127.0.0.1:0/0": "redis_url: port 0 is outside 1..65535",
    "redis://127.0.0.1:65536/0": "redis_url: port 65536 is outside 1..65535",
}


@pytest.mark.parametrize("url", sorted(URL_CASES))
def test_malformed_urls_and_ports_are_one_problem(url: str, tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, VALID + f"redis_url: '{url}'\n"))
    assert problem.startswith(URL_CASES[url])
    assert "pw" not in problem


def test_dsn_port_must_be_a_number(tmp_path: Path) -> None:
    text = VALID + "persist:\n  timescale:\n    dsn: postgresql://md@db:notaport/md\n"
    assert problems_of(write(tmp_path, text)) == [
        "persist.timescale.dsn: port 'notaport' is not a number"
    ]


def test_multi_host_dsn_is_accepted(tmp_path: Path) -> None:
    text = VALID + "persist:\n  timescale:\n    dsn: postgresql://md@h1:5432,h2:5433/md\n"
    assert load_config(write(tmp_path, text), environ={}).persist.timescale.dsn


def test_a_value_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    env = {"MARKETDATA_REDIS_URL": "redis://h:notaport/0"}
    assert problems_of(write(tmp_path, VALID), env) == [
        "redis_url (from MARKETDATA_REDIS_URL): port 'notaport' is not a number"
    ]
    env = {"MARKETDATA_BINANCE_FUTURES_WS_URL": "http://x"}
    (problem,) = problems_of(write(tmp_path, VALID), env)
    assert problem.startswith(
        "exchanges.binance_futures.ws_url (from MARKETDATA_BINANCE_FUTURES_WS_URL): 'http://x'"
    )


def test_a_huge_wrong_value_is_shown_shortened() -> None:
    raw = {"book_depth": "x" * 100_000, "exchanges": {"binance_futures": {"symbols": ["A1"]}}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ={})
    (problem,) = info.value.problems
    assert problem.startswith("book_depth: expected an integer, got str 'xxx")
    assert len(problem) < 200


CHECK_CONFIG_CASES = {
    "binary": b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe" * 100,
    "alias bomb": BOMB.encode(),
    "deep list": DEEP.encode(),
    "bad url": (VALID + "redis_url: 'redis://u:pw@[::1'\n").encode(),
}


@pytest.mark.parametrize("case", sorted(CHECK_CONFIG_CASES))
def test_check_config_process_gives_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(CHECK_CONFIG_CASES[case])
    result = subprocess.run(
        [sys.executable, "-m", "marketdata.cli", "check-config", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("marketdata: config error: ")
    assert "Traceback" not in result.stderr
