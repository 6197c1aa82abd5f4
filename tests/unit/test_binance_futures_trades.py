"""aggTrade ids on the stream, and GET /fapi/v1/aggTrades."""

from __future__ import annotations

import pytest

from marketdata.venues.base import MAX_ID
from marketdata.venues.binance import BinanceFutures, MalformedMessage

TRADE = (
    b'{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,'
    b'"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,'
    b'"m":false}}'
)
REST = (
    b'[{"a":16599292,"p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,'
    b'"m":false},{"a":16599293,"p":"1.01200","q":"3","f":23961323,"l":23961324,'
    b'"T":1626992742715,"m":true}]'
)


@pytest.mark.parametrize("trade_id", [2**63, 2**63 - 1, MAX_ID + 1, MAX_ID, -1])
def test_an_implausible_aggtrade_id_is_malformed(trade_id: int) -> None:
    frame = TRADE.replace(b"16599292", str(trade_id).encode())
    with pytest.raises(MalformedMessage) as e:
        BinanceFutures().parse(frame, 1.0)
    assert e.value.reason == "bad_ids"


def test_the_largest_plausible_id_is_a_trade() -> None:
    (trade,) = BinanceFutures().parse(TRADE.replace(b"16599292", b"%d" % (MAX_ID - 1)), 1.0)
    assert trade.trade_id == str(MAX_ID - 1)
    assert not trade.backfilled


def test_trade_ids_count_from_zero() -> None:
    (trade,) = BinanceFutures().parse(TRADE.replace(b"16599292", b"0"), 1.0)
    assert trade.trade_id == "0"


def test_rest_agg_trades_url_and_body() -> None:
    adapter = BinanceFutures("ws://127.0.0.1:9", "http://127.0.0.1:9/")
    assert adapter.agg_trades_url("ctkusdt", 16599292, 1000) == (
        "http://127.0.0.1:9/fapi/v1/aggTrades?symbol=CTKUSDT&fromId=16599292&limit=1000"
    )
    trades = adapter.parse_agg_trades("CTKUSDT", REST, 7.0)
    assert [(t.trade_id, t.price_text, t.qty_text, t.side) for t in trades] == [
        ("16599292", "1.01100", "10", "buy"), ("16599293", "1.01200", "3", "sell"),
    ]  # fmt: skip
    assert all(t.backfilled and t.symbol == "CTKUSDT" and t.recv_ts == 7.0 for t in trades)
    assert adapter.parse_agg_trades("CTKUSDT", b"[]", 7.0) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "bad_json"),
        (b'{"code":-1121,"msg":"Invalid symbol."}', "bad_shape"),
        (b"[1]", "bad_shape"),
        (b'[{"a":1,"p":"1","q":"1","T":1}]', "missing_field"),
        (b'[{"a":1.5,"p":"1","q":"1","T":1,"m":true}]', "bad_type"),
    ],
)
def test_a_malformed_rest_reply_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as e:
        BinanceFutures().parse_agg_trades("CTKUSDT", body, 1.0)
    assert e.value.reason == reason
