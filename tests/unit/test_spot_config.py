"""Binance spot as a second exchange section, next to futures."""

from __future__ import annotations

from typing import Any

import pytest

from marketdata.config import ConfigError, parse_config
from marketdata.rest_gate import RestGate
from marketdata.venues.binance import ADAPTERS, BinanceFutures, BinanceSpot
from marketdata.venues.binance.config import BinanceSpotConfig
from marketdata.venues.binance.spot import snapshot_weight


def config(**exchanges: Any) -> Any:
    return parse_config({"exchanges": exchanges}, environ={})


def test_both_venues_in_one_config_with_their_own_defaults() -> None:
    parsed = config(
        binance_futures={"symbols": ["btcusdt"]},
        binance_spot={
            "symbols": ["ftmusdt"],
            "snapshot_limit": 5000,
            "max_levels_per_side": 10_000,
        },
    )
    spot = parsed.exchanges["binance_spot"]
    assert isinstance(spot, BinanceSpotConfig)
    assert spot.symbols == ("FTMUSDT",)
    assert spot.ws_url == "wss://stream.binance.com:9443"
    assert spot.rest_url == "https://api.binance.com"
    assert spot.top_audit_mismatches == 3  # the audit holds on the spot capture: on
    assert parsed.exchanges["binance_futures"].ws_url == "wss://fstream.binance.com"


@pytest.mark.parametrize(
    ("name", "limit", "problem"),
    [
        ("binance_spot", 0, "exchanges.binance_spot.snapshot_limit: 0 is outside 1..5000"),
        ("binance_spot", 5001, "exchanges.binance_spot.snapshot_limit: 5001 is outside 1..5000"),
        ("binance_futures", 5000, "exchanges.binance_futures.snapshot_limit: 5000 is not one of"),
    ],
)
def test_snapshot_limit_is_checked_against_each_venues_range(
    name: str, limit: int, problem: str
) -> None:
    with pytest.raises(ConfigError) as e:
        config(**{name: {"symbols": ["BTCUSDT"], "snapshot_limit": limit}})
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_spot_urls_come_from_the_environment_too() -> None:
    raw = {"exchanges": {"binance_spot": {"symbols": ["FTMUSDT"]}}}
    parsed = parse_config(raw, environ={"MARKETDATA_BINANCE_SPOT_REST_URL": "http://h:1"})
    assert parsed.exchanges["binance_spot"].rest_url == "http://h:1"


@pytest.mark.parametrize(
    ("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (1000, 50), (5000, 250)]
)
def test_spot_snapshot_weight_follows_the_documented_steps(limit: int, weight: int) -> None:
    assert snapshot_weight(limit) == weight
    assert BinanceSpot(snapshot_limit=limit).snapshot_weight == weight


def test_each_venue_brings_its_own_rest_weight_limit() -> None:
    assert ADAPTERS["binance_spot"] is BinanceSpot
    assert BinanceFutures.weight_limit_per_min == 2400
    assert BinanceSpot.weight_limit_per_min == 6000
    # The gate keeps a fifth in reserve of whichever limit it is given.
    assert RestGate(BinanceSpot.weight_limit_per_min).budget == 4800


def test_the_service_gives_each_venue_a_gate_with_that_venues_limit() -> None:
    from marketdata.service import Service

    service = Service(
        config(
            binance_futures={"symbols": ["BTCUSDT"]},
            binance_spot={"symbols": ["BTCUSDT", "FTMUSDT"]},
        )
    )
    session: Any = None  # nothing is fetched: only the feeds are built
    feeds: list[Any] = service._build_feeds(session)
    budgets = {(f.adapter.name, f.state.symbol): f._gate.budget for f in feeds}
    assert budgets == {
        ("binance_futures", "BTCUSDT"): 1920,
        ("binance_spot", "BTCUSDT"): 4800,
        ("binance_spot", "FTMUSDT"): 4800,
    }
    spot = [f._gate for f in feeds if f.adapter.name == "binance_spot"]
    assert spot[0] is spot[1]  # one gate per venue: its limit is per IP, across symbols
