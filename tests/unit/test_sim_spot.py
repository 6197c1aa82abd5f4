"""The simulator's spot dialect: consecutive ids and spot-shaped frames."""

from __future__ import annotations

import orjson

from marketdata.events import BookTicker, DepthDiff
from marketdata.sim.capture import load_capture
from marketdata.sim.market import SimMarket
from marketdata.sim.spot_server import spot_shaped
from marketdata.venues.binance import BinanceSpot
from tests.helpers import SPOT_CAPTURE


def test_a_spot_market_chains_ids_consecutively_and_sends_spot_fields_only() -> None:
    market, adapter = SimMarket("BTCUSDT", seed=1, consecutive=True), BinanceSpot()
    previous = market.last_id
    tickers = 0
    for _ in range(200):
        frames = market.step(1)
        depth = orjson.loads(spot_shaped(orjson.dumps({"stream": "x", "data": frames.depth})))
        assert set(depth["data"]) == {"e", "E", "s", "U", "u", "b", "a"}
        assert depth["data"]["U"] == previous + 1
        (diff,) = adapter.parse(orjson.dumps(depth), 0.0)
        assert isinstance(diff, DepthDiff)
        assert adapter.continuity.follows(diff, previous)
        previous = diff.last_id
        if frames.book_ticker is not None:
            raw = spot_shaped(orjson.dumps({"stream": "x", "data": frames.book_ticker}))
            assert set(orjson.loads(raw)["data"]) == {"u", "s", "b", "B", "a", "A"}
            (ticker,) = adapter.parse(raw, 0.0)
            assert isinstance(ticker, BookTicker)
            assert ticker.update_id == previous
            tickers += 1
    assert tickers > 0
    snapshot = orjson.loads(spot_shaped(orjson.dumps(market.snapshot(5))))
    assert set(snapshot) == {"lastUpdateId", "bids", "asks"}


def test_a_futures_market_still_has_gaps_between_events() -> None:
    market = SimMarket("BTCUSDT", seed=1)
    gaps = 0
    for _ in range(50):
        previous = market.last_id
        gaps += market.step(1).depth["U"] > previous + 1
    assert gaps > 0


def test_replayed_spot_frames_pass_unchanged() -> None:
    capture = load_capture(SPOT_CAPTURE)
    for frame in capture.frames[:300]:
        assert spot_shaped(frame.raw.encode()) == frame.raw.encode()
    for rest in capture.snapshots.values():
        assert spot_shaped(rest.raw.encode()) == rest.raw.encode()
