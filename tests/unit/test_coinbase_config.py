"""The `exchanges.coinbase` section: read from a config, each key's problem named."""

from __future__ import annotations

import pytest

from marketdata.config import ConfigError, parse_config
from marketdata.venues.coinbase.config import DEFAULT_MAX_FRAME_BYTES, CoinbaseConfig
from marketdata.venues.registry import VENUES


def test_a_coinbase_section_is_read_with_its_defaults() -> None:
    config = parse_config({"exchanges": {"coinbase": {"symbols": ["btc-usd", "ETH-USD"]}}})
    section = config.exchanges["coinbase"]
    assert isinstance(section, CoinbaseConfig)
    assert section.symbols == ("BTC-USD", "ETH-USD")
    assert section.ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert section.symbols_per_connection == 1
    # Larger than the recording's largest frame (BTC-USD's 5,079,379-byte snapshot).
    assert section.max_frame_bytes == DEFAULT_MAX_FRAME_BYTES > 5_079_379 * 6
    assert VENUES["coinbase"].name == "coinbase"


def test_each_bad_key_is_named() -> None:
    section = {
        "symbols": ["BTCUSD"],
        "symbols_per_connection": 0,
        "messages_per_second": 20,
        "max_frame_bytes": 1000,
        "max_levels": 10,
        "top_check_reach": 0,
        "top_check_mismatches": 0,
        "subscribe_timeout_s": 0,
    }
    with pytest.raises(ConfigError) as refused:
        parse_config({"exchanges": {"coinbase": section}})
    text = str(refused.value)
    for key in ("symbols[0]", *list(section)[1:]):
        assert f"exchanges.coinbase.{key}:" in text, key
