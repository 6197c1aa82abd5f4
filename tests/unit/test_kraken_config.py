"""The exchanges.kraken section: its defaults, its checks by key path, its env overrides,
and the feeds it builds (pairs grouped per connection)."""

from __future__ import annotations

from typing import Any

import pytest

from marketdata.config import ConfigError, parse_config
from marketdata.venues.kraken.config import KrakenConfig


def parse(kraken: dict[str, Any], environ: dict[str, str] | None = None, **top: Any) -> Any:
    return parse_config({"exchanges": {"kraken": kraken}, **top}, environ=environ or {})


def test_defaults_and_three_venues_in_one_config() -> None:
    parsed = parse_config(
        {
            "exchanges": {
                "binance_futures": {"symbols": ["BTCUSDT"]},
                "binance_spot": {"symbols": ["BTCUSDT"]},
                "kraken": {"symbols": ["btc/usd", "ETH/USD"]},
            }
        },
        environ={},
    )
    kraken = parsed.exchanges["kraken"]
    assert isinstance(kraken, KrakenConfig)
    assert kraken.symbols == ("BTC/USD", "ETH/USD")
    assert (kraken.ws_url, kraken.depth, kraken.symbols_per_connection) == (
        "wss://ws.kraken.com/v2", 100, 1,
    )  # fmt: skip
    assert list(parsed.exchanges) == ["binance_futures", "binance_spot", "kraken"]


@pytest.mark.parametrize(
    ("section", "top", "problem"),
    [
        ({"depth": 50}, {}, "exchanges.kraken.depth: 50 is not one of 10, 25, 100, 500, 1000"),
        ({"depth": 10}, {"book_depth": 20},
         "exchanges.kraken.depth: 10 is below book_depth 20; published levels would be missing"),
        ({"symbols_per_connection": 0}, {},
         "exchanges.kraken.symbols_per_connection: 0 is outside 1..100"),
        ({"ws_url": "https://ws.kraken.com/v2"}, {},
         "exchanges.kraken.ws_url: 'https://ws.kraken.com/v2' must start with ws://, wss://"),
        ({"subscribe_timeout_s": 0}, {},
         "exchanges.kraken.subscribe_timeout_s: 0.0 is outside 0.1..600"),
        ({"dept": 25}, {}, "exchanges.kraken.dept: unknown key (did you mean 'depth'?)"),
    ],
)  # fmt: skip
def test_each_problem_names_its_key_path(
    section: dict[str, Any], top: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"symbols": ["BTC/USD"], **section}, **top)
    assert problem in caught.value.problems


def test_a_pair_must_look_like_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"symbols": ["BTC/USD", "BTC USD", "BTC/USD"]})
    assert caught.value.problems == [
        "exchanges.kraken.symbols[1]: 'BTC USD' is not a symbol like BTCUSDT",
        "exchanges.kraken.symbols[2]: duplicate symbol 'BTC/USD'",
    ]


def test_the_url_can_come_from_the_environment_and_is_named_when_wrong() -> None:
    parsed = parse({"symbols": ["BTC/USD"]}, {"MARKETDATA_KRAKEN_WS_URL": "ws://127.0.0.1:1/v2"})
    assert parsed.exchanges["kraken"].ws_url == "ws://127.0.0.1:1/v2"
    with pytest.raises(ConfigError) as caught:
        parse({"symbols": ["BTC/USD"]}, {"MARKETDATA_KRAKEN_WS_URL": "nope"})
    assert caught.value.problems == [
        "exchanges.kraken.ws_url (from MARKETDATA_KRAKEN_WS_URL): 'nope' must start with "
        "ws://, wss://"
    ]


def test_pairs_are_grouped_per_connection() -> None:
    from marketdata.config import ReconnectConfig
    from marketdata.metrics import Metrics
    from marketdata.venue import FeedContext
    from marketdata.venues.kraken.feed import feeds_for

    config = parse({"symbols": ["A/USD", "B/USD", "C/USD"], "symbols_per_connection": 2})
    context = FeedContext(None, None, ReconnectConfig(), Metrics(), 30.0)  # type: ignore[arg-type]
    feeds = feeds_for(config.exchanges["kraken"], context)
    assert [(f.key, [s.symbol for s in f.states]) for f in feeds] == [
        ("kraken:connection1", ["A/USD", "B/USD"]),
        ("kraken:C/USD", ["C/USD"]),  # a group of one is named by its pair
    ]
