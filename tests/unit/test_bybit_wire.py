"""Bybit v5 frames -> events: the shapes of the capture, replies, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketdata.venues.base import MalformedMessage
from marketdata.venues.bybit.wire import BookMessage, Pong, Reply, Ticker, Trades, parse

DELTA = (
    b'{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1786310818130,"data":{"s":"BTCUSDT",'
    b'"b":[["65095.30","0.005"],["65093.10","0"]],"a":[["65116.60","0"]],"u":15076953,'
    b'"seq":753843913870},"cts":1786310818129}'
)
TRADE = (
    b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[{"T":'
    b'1786310819680,"s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick","i":'
    b'"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}'
)


def test_a_delta_keeps_the_exchanges_text() -> None:
    (message,) = parse(DELTA, 2.5)
    assert message == BookMessage(
        "BTCUSDT", False, [(65095.3, 0.005, "65095.30", "0.005"), (65093.1, 0.0, "65093.10", "0")],
        [(65116.6, 0.0, "65116.60", "0")], 15076953, 753843913870, 1786310818130, 2.5,
    )  # fmt: skip


def test_a_trade_keeps_its_text_id_and_the_takers_side() -> None:
    (batch,) = parse(TRADE, 3.0)
    assert isinstance(batch, Trades)
    (trade,) = batch.trades
    assert (trade.exchange, trade.symbol, trade.trade_id, trade.side) == (
        "bybit", "BTCUSDT", "a9188a0a-82bc-50de-be60-03eedbe3cdd7", "sell",
    )  # fmt: skip
    assert (trade.price_text, trade.qty_text, trade.exchange_ts) == ("65114.20", "0.004",
                                                                     1786310819680)  # fmt: skip
    assert trade.sequence is None  # not a counter


def test_a_tickers_delta_carries_only_what_changed() -> None:
    frame = {"topic": "tickers.BTCUSDT", "type": "delta", "cs": 7, "ts": 1,
             "data": {"symbol": "BTCUSDT", "bid1Size": "6.054"}}  # fmt: skip
    expected = Ticker("BTCUSDT", None, "6.054", None, None, 7, 0.0)
    assert list(parse(json.dumps(frame), 0.0)) == [expected]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"success": True, "ret_msg": "", "conn_id": "c", "req_id": "3", "op": "subscribe"},
         Reply("subscribe", True, "", "3")),
        ({"success": False, "ret_msg": "error:handler not found", "op": "subscribe"},
         Reply("subscribe", False, "error:handler not found", "")),
        ({"success": True, "ret_msg": "", "req_id": "4", "op": "unsubscribe"},
         Reply("unsubscribe", True, "", "4")),
        ({"success": True, "ret_msg": "pong", "conn_id": "c", "req_id": "", "op": "ping"}, Pong()),
        ({"op": "pong", "args": ["1786310818000"], "conn_id": "c"}, Pong()),
    ],
)  # fmt: skip
def test_replies(reply: dict[str, Any], expected: Reply | Pong) -> None:
    assert list(parse(json.dumps(reply), 0.0)) == [expected]


def _delta(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(DELTA)
    message["data"].update(changes)
    return message


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{", "bad_json"),
        (b"[]", "bad_shape"),
        (json.dumps({"topic": "kline.1.BTCUSDT", "data": []}).encode(), "unknown_topic"),
        (json.dumps({"op": "auth", "success": True}).encode(), "unknown_message"),
        (json.dumps({**json.loads(DELTA), "type": "update"}).encode(), "bad_field"),
        (json.dumps(_delta(u="15076953")).encode(), "bad_type"),
        (json.dumps(_delta(u=0)).encode(), "bad_ids"),
        (json.dumps(_delta(b=[["-1", "2"]])).encode(), "bad_number"),
        (json.dumps(_delta(b=[["1e5", "2"]])).encode(), "bad_number"),
        (json.dumps(_delta(a=[["1", "2", "3"]])).encode(), "bad_level"),
        (json.dumps({k: v for k, v in json.loads(DELTA).items() if k != "ts"}).encode(),
         "missing_field"),
        (TRADE.replace(b'"Sell"', b'"sell"'), "bad_field"),
        (TRADE.replace(b'"i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7"', b'"i":""'), "bad_type"),
        (TRADE.replace(b'"v":"0.004"', b'"v":"0"'), "bad_number"),
        (TRADE.replace(b'"p":"65114.20"', b'"p":65114.2'), "bad_type"),
        (json.dumps({"op": "subscribe", "success": "true"}).encode(), "bad_type"),
    ],
)  # fmt: skip
def test_malformed_frames_are_refused_by_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(frame, 0.0)
    assert caught.value.reason == reason
