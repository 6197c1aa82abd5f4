"""The Coinbase frame parser: each kind of recorded frame, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.venues.base import MalformedMessage
from marketdata.venues.coinbase.wire import (
    BookEvent,
    Error,
    Heartbeat,
    Subscriptions,
    Ticker,
    Trades,
    parse,
    to_ms,
)
from tests.coinbase_capture import Capture, load


@pytest.fixture(scope="module")
def capture() -> Capture:
    return load()


def _frame(channel: str, events: list[Any], sequence: int = 7) -> bytes:
    message = {"channel": channel, "timestamp": "2026-08-09T21:05:48.1Z",
               "sequence_num": sequence, "events": events}  # fmt: skip
    return json.dumps(message).encode()


def test_the_recorded_snapshot_keeps_every_level_as_text(capture: Capture) -> None:
    frame = next(f for f in capture.frames if b'"type":"snapshot","product_id":"BTC-USD"' in f)
    parsed = parse(frame, 2.5)
    assert (parsed.sequence, parsed.channel) == (13, "l2_data")
    (event,) = parsed.events
    assert isinstance(event, BookEvent)
    assert event.snapshot
    assert (event.symbol, len(event.bids), len(event.asks)) == ("BTC-USD", 18764, 27236)
    assert event.bids[0] == (65083.66, 0.20371215, "65083.66", "0.20371215")
    assert event.asks[0][2] == "65083.67"
    assert event.exchange_ts == to_ms("2026-08-09T21:05:48.170326Z", "") == 1786309548170
    assert event.recv_ts == 2.5


def test_every_recorded_frame_parses_in_sequence(capture: Capture) -> None:
    kinds: dict[str, int] = {}
    for number, frame in enumerate(capture.frames):
        parsed = parse(frame, 1.0)
        assert parsed.sequence == number
        kinds[parsed.channel] = kinds.get(parsed.channel, 0) + 1
    assert kinds == {"l2_data": 775, "ticker": 160, "market_trades": 59, "heartbeats": 25,
                     "candles": 6, "subscriptions": 5}  # fmt: skip


def test_trades_come_out_oldest_first_with_the_takers_side() -> None:
    trades = [
        {"product_id": "BTC-USD", "trade_id": "102", "price": "65083.67", "size": "0.5",
         "time": "2026-08-09T21:05:53.915769Z", "side": "SELL"},
        {"product_id": "BTC-USD", "trade_id": "101", "price": "65083.66", "size": "0.25",
         "time": "2026-08-09T21:05:53.915769Z", "side": "BUY"},
    ]  # fmt: skip
    (batch,) = parse(_frame("market_trades", [{"type": "update", "trades": trades}]), 1.0).events
    assert isinstance(batch, Trades)
    assert not batch.snapshot
    assert [(t.trade_id, t.sequence, t.side) for t in batch.trades] == [
        ("101", 101, "sell"),  # BUY: the maker bought, at the bid: a taker sold
        ("102", 102, "buy"),
    ]
    assert batch.trades[1].price_text == "65083.67"
    assert batch.trades[1].qty_text == "0.5"


def test_a_trade_id_that_is_not_a_number_stays_text_without_a_sequence() -> None:
    trade = {"product_id": "BTC-USD", "trade_id": "a1-b2", "price": "1", "size": "2",
             "time": "2026-08-09T21:05:53Z", "side": "BUY"}  # fmt: skip
    (batch,) = parse(_frame("market_trades", [{"type": "snapshot", "trades": [trade]}]), 1).events
    assert isinstance(batch, Trades)
    assert [(t.trade_id, t.sequence) for t in batch.trades] == [("a1-b2", None)]


def test_ticker_subscriptions_heartbeat_and_error() -> None:
    ticker = {"type": "ticker", "product_id": "ETH-USD", "price": "1919.41",
              "best_bid": "1919.44", "best_ask": "1919.49", "best_bid_quantity": "0.02858092",
              "best_ask_quantity": "0.07814824"}  # fmt: skip
    (event,) = parse(_frame("ticker", [{"type": "update", "tickers": [ticker]}]), 1).events
    assert event == Ticker("ETH-USD", "1919.44", "0.02858092", "1919.49", "0.07814824")
    listing = {"subscriptions": {"level2": ["BTC-USD"], "heartbeats": ["heartbeats"]}}
    (event,) = parse(_frame("subscriptions", [listing]), 1).events
    assert event == Subscriptions(
        {"level2": frozenset({"BTC-USD"}), "heartbeats": frozenset({"heartbeats"})}
    )
    beat = {"current_time": "2026-08-09 21:05:48", "heartbeat_counter": 41691}
    assert parse(_frame("heartbeats", [beat]), 1).events == [Heartbeat(41691)]
    error = parse(b'{"type":"error","message":"Failed to subscribe"}', 1)
    assert (error.sequence, error.events) == (None, [Error("Failed to subscribe")])


def test_a_channel_not_used_is_passed_over_with_its_sequence() -> None:
    parsed = parse(_frame("candles", [{"type": "update", "candles": []}], 41), 1)
    assert (parsed.sequence, parsed.channel, parsed.events) == (41, "candles", [])


_UPDATE = {"side": "bid", "event_time": "2026-08-09T21:05:48.210883Z",
           "price_level": "65062.5", "new_quantity": "0"}  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "bad_json"),
        (b"[1]", "bad_shape"),
        (b'{"type":"ack"}', "unknown_message"),
        (b'{"channel":"l2_data","events":[]}', "missing_field"),
        (b'{"channel":"l2_data","sequence_num":-1,"events":[]}', "bad_ids"),
        (b'{"channel":"l2_data","sequence_num":"3","events":[]}', "bad_ids"),
        (_frame("l2_data", [{"type": "delta", "product_id": "X-Y", "updates": []}]), "bad_field"),
        (
            _frame(
                "l2_data",
                [{"type": "update", "product_id": "X-Y", "updates": [{**_UPDATE, "side": "ask"}]}],
            ),
            "bad_field",
        ),  # fmt: skip
        (
            _frame(
                "l2_data",
                [
                    {
                        "type": "update",
                        "product_id": "X-Y",
                        "updates": [{**_UPDATE, "price_level": "1e5"}],
                    }
                ],
            ),
            "bad_number",
        ),  # fmt: skip
        (
            _frame(
                "l2_data",
                [
                    {
                        "type": "update",
                        "product_id": "X-Y",
                        "updates": [{**_UPDATE, "new_quantity": 1.5}],
                    }
                ],
            ),
            "bad_type",
        ),  # fmt: skip
        (
            _frame(
                "l2_data",
                [
                    {
                        "type": "update",
                        "product_id": "X-Y",
                        "updates": [{**_UPDATE, "price_level": "0"}],
                    }
                ],
            ),
            "bad_level",
        ),  # fmt: skip
        (_frame("l2_data", [{"type": "update", "product_id": 5, "updates": []}]), "bad_type"),
        (
            _frame("market_trades", [{"type": "update", "trades": [{"product_id": "X-Y"}]}]),
            "missing_field",
        ),  # fmt: skip
        (_frame("subscriptions", [{"subscriptions": {"level2": "BTC-USD"}}]), "bad_field"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as refused:
        parse(frame, 1.0)
    assert refused.value.reason == reason


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_are_refused_as_malformed(frame: bytes) -> None:
    try:
        parse(frame, 1.0)
    except MalformedMessage:
        pass


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "product_id",
                    "updates",
                    "trades",
                    "tickers",
                    "side",
                    "price_level",
                    "new_quantity",
                    "event_time",
                    "subscriptions",
                ]
            ),
            inner,
            max_size=5,
        )
    ),  # fmt: skip
    max_leaves=20,
)


@given(
    st.sampled_from(["l2_data", "market_trades", "ticker", "subscriptions", "heartbeats"]),
    st.lists(_JSON, max_size=3),
)
def test_any_shape_of_event_parses_or_is_refused_as_malformed(
    channel: str, events: list[Any]
) -> None:
    try:
        parse(_frame(channel, events), 1.0)
    except MalformedMessage:
        pass


def test_a_snapshot_checked_in_bulk_gives_the_levels_checked_one_by_one(
    capture: Capture,
) -> None:
    from marketdata.venues.coinbase.wire import _levels

    frame = next(f for f in capture.frames if b'"type":"snapshot","product_id":"ETH-USD"' in f)
    (event,) = parse(frame, 1.0).events
    assert isinstance(event, BookEvent)
    updates = json.loads(frame)["events"][0]["updates"]
    assert (event.bids, event.asks) == _levels(updates, "ETH-USD")


def _snapshot(bad: dict[str, Any]) -> bytes:
    levels = [{**_UPDATE, "price_level": f"{100 + i}.5", "new_quantity": "1"} for i in range(300)]
    levels[150] = {**levels[150], **bad}
    return _frame("l2_data", [{"type": "snapshot", "product_id": "X-Y", "updates": levels}])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"price_level": "1e5"}, "bad_number"),
        ({"price_level": "1\n2"}, "bad_number"),
        ({"new_quantity": "-1"}, "bad_number"),
        ({"new_quantity": "9" * 400}, "bad_number"),
        ({"price_level": "0.0"}, "bad_level"),
        ({"price_level": 101}, "bad_type"),
        ({"side": "ask"}, "bad_field"),
    ],
)
def test_a_bad_level_in_a_large_snapshot_is_named(bad: dict[str, Any], reason: str) -> None:
    assert len(parse(_snapshot({}), 1.0).events[0].bids) == 300  # type: ignore[union-attr]
    with pytest.raises(MalformedMessage) as refused:
        parse(_snapshot(bad), 1.0)
    assert refused.value.reason == reason
