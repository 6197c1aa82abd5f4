"""The `exchanges.okx` section: defaults, and each problem named by its key path."""

from __future__ import annotations

import pytest

from marketdata.config import ConfigError, parse_config
from marketdata.venues.okx.config import OkxConfig


def test_defaults_and_a_section_read_from_the_config() -> None:
    raw = {"exchanges": {"okx": {"symbols": ["btc-usdt", "BTC-USD-220527"], "snapshot": "rest"}}}
    config = parse_config(raw, environ={}).exchanges["okx"]
    assert isinstance(config, OkxConfig)
    assert config.symbols == ("BTC-USDT", "BTC-USD-220527")
    assert (config.snapshot, config.ws_url, config.rest_url) == (
        "rest", "wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com",
    )  # fmt: skip
    assert OkxConfig().snapshot == "in_band"
    assert OkxConfig().ping_interval_s < 30


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"snapshot": "sometimes"}, "snapshot: 'sometimes' is not one of in_band, rest"),
        ({"top_of_book": "tickers"}, "top_of_book: 'tickers' is not one of none, bbo-tbt"),
        ({"ping_interval_s": 30}, "ping_interval_s: 30.0 is outside 1..29"),
        ({"symbols_per_connection": 101}, "symbols_per_connection: 101 is outside 1..100"),
    ],
)  # fmt: skip
def test_each_problem_names_its_key(section: dict[str, object], problem: str) -> None:
    raw = {"exchanges": {"okx": {"symbols": ["BTC-USDT"], **section}}}
    with pytest.raises(ConfigError) as raised:
        parse_config(raw, environ={})
    assert f"exchanges.okx.{problem}" in str(raised.value)


def test_a_book_depth_beyond_400_levels_is_refused() -> None:
    raw = {"book_depth": 500, "exchanges": {"okx": {"symbols": ["BTC-USDT"]}}}
    with pytest.raises(ConfigError) as raised:
        parse_config(raw, environ={})
    assert "exchanges.okx: book_depth 500 is above the 400 levels" in str(raised.value)
