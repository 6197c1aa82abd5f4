from __future__ import annotations

import pytest

from marketdata.events import BookTicker, DepthDiff, Trade
from marketdata.venues.binance import BinanceFutures, MalformedMessage

DEPTH = (
    b'{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,'
    b'"T":1626992741024,"s":"SUSHIUSDT","U":600859599090,"u":600859600917,"pu":600859598061,'
    b'"b":[["7.5040","813"],["7.6090","0"]],"a":[["7.6150","1563"]]}}'
)
TRADE = (
    b'{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,'
    b'"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,'
    b'"m":false}}'
)
TICKER = (
    b'{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,'
    b'"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":1,"E":2}}'
)


def test_depth_update() -> None:
    (diff,) = BinanceFutures().parse(DEPTH, 5.0)
    assert isinstance(diff, DepthDiff)
    assert (diff.first_id, diff.last_id, diff.prev_last_id) == (
        600859599090, 600859600917, 600859598061,
    )  # fmt: skip
    assert diff.bids == [(7.504, 813.0, "7.5040", "813"), (7.609, 0.0, "7.6090", "0")]
    assert diff.asks == [(7.615, 1563.0, "7.6150", "1563")]
    assert (diff.symbol, diff.exchange_ts, diff.recv_ts) == ("SUSHIUSDT", 1626992741037, 5.0)


def test_agg_trade_side_is_the_takers() -> None:
    (trade,) = BinanceFutures().parse(TRADE, 1.0)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price_text, trade.qty_text) == ("16599292", "1.01100", "10")
    assert trade.side == "buy"  # m=false: the buyer was the taker
    (trade,) = BinanceFutures().parse(TRADE.replace(b'"m":false', b'"m":true'), 1.0)
    assert trade.side == "sell"


def test_book_ticker_and_subscribe_reply() -> None:
    (ticker,) = BinanceFutures().parse(TICKER, 1.0)
    assert isinstance(ticker, BookTicker)
    assert (ticker.bid_price, ticker.ask_qty, ticker.update_id) == ("7.6110", "297", 600859600576)
    assert BinanceFutures().parse(b'{"result":null,"id":1}', 1.0) == ()


def test_routed_urls() -> None:
    adapter = BinanceFutures("ws://127.0.0.1:9/", "http://127.0.0.1:9", 500)
    assert adapter.stream_urls("BTCUSDT") == [
        "ws://127.0.0.1:9/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker",
        "ws://127.0.0.1:9/market/stream?streams=btcusdt@aggTrade",
    ]
    assert adapter.snapshot_url("BTCUSDT") == (
        "http://127.0.0.1:9/fapi/v1/depth?symbol=BTCUSDT&limit=500"
    )


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"[1,2]", "bad_shape"),
        (b'{"stream":"x","data":{"e":"kline"}}', "unknown_event"),
        (DEPTH.replace(b'"U":600859599090,', b""), "missing_field"),
        (DEPTH.replace(b'"u":600859600917', b'"u":"600859600917"'), "bad_type"),
        (DEPTH.replace(b'"7.5040"', b'"NaN"'), "bad_number"),
        (DEPTH.replace(b'"7.5040"', b'"Infinity"'), "bad_number"),
        (DEPTH.replace(b'"7.5040"', b"7.504"), "bad_type"),
        (DEPTH.replace(b'"7.5040"', b'"-7.5"'), "bad_number"),
        (DEPTH.replace(b'"813"', b'"-1"'), "bad_number"),
        (DEPTH.replace(b'"7.5040"', b'"0.000"'), "bad_level"),
        (DEPTH.replace(b'"7.5040"', b'["7.5040"]'), "bad_type"),
        (DEPTH.replace(b'"7.5040","813"', b'"7.5040"'), "bad_level"),
        (DEPTH.replace(b'"U":600859599090', b'"U":700859599090'), "bad_ids"),
        (TRADE.replace(b'"p":"1.01100"', b'"p":"0"'), "bad_trade"),
        (TRADE.replace(b'"m":false', b'"m":"no"'), "bad_type"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        BinanceFutures().parse(frame, 0.0)
    assert info.value.reason == reason


def test_snapshot() -> None:
    body = b'{"lastUpdateId":42,"E":7,"T":6,"bids":[["1.0","2"]],"asks":[["1.1","3"]]}'
    snapshot = BinanceFutures().parse_snapshot("BTCUSDT", body, 1.0)
    assert (snapshot.last_id, snapshot.exchange_ts) == (42, 7)
    assert snapshot.bids == [(1.0, 2.0, "1.0", "2")]
    with pytest.raises(MalformedMessage, match="BTCUSDT snapshot has no 'lastUpdateId'"):
        BinanceFutures().parse_snapshot("BTCUSDT", b'{"bids":[],"asks":[]}', 1.0)


def test_instrument_list_gives_each_symbols_status():
    body = (
        b'{"timezone":"UTC","symbols":[{"symbol":"BTCUSDT","status":"TRADING"},'
        b'{"symbol":"ICPUSDT","status":"SETTLING"}]}'
    )
    adapter = BinanceFutures("ws://x", "http://x")
    assert adapter.parse_instruments(body) == {"BTCUSDT": "TRADING", "ICPUSDT": "SETTLING"}
    assert adapter.instruments_url() == "http://x/fapi/v1/exchangeInfo"
    with pytest.raises(MalformedMessage):
        adapter.parse_instruments(b'{"symbols": [{"name": "BTCUSDT"}]}')
