"""Kraken v2 wire parser: every channel and reply, exact number texts, clear refusals."""

from __future__ import annotations

import json

import orjson
import pytest

from marketdata.events import Trade
from marketdata.venues.base import MalformedMessage
from marketdata.venues.kraken.wire import (
    Ack,
    Bbo,
    BookMessage,
    Heartbeat,
    Instruments,
    Pong,
    Precision,
    Status,
    Trades,
    parse,
)

BOOK_UPDATE = (
    b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",'
    b'"bids":[{"price":45283.5,"qty":0.00001},{"price":45280,"qty":0}],'
    b'"asks":[{"price":45285.2,"qty":12345678.12345678901}],'
    b'"checksum":2439117997,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)


def test_book_update_keeps_each_numbers_own_digits() -> None:
    (message,) = parse(BOOK_UPDATE, 1.5)
    assert isinstance(message, BookMessage)
    assert message.symbol == "BTC/USD"
    assert message.snapshot is False
    assert [level[2:] for level in message.bids] == [("45283.5", "0.00001"), ("45280", "0")]
    # 19 significant digits: a float would have changed them
    assert message.asks[0][3] == "12345678.12345678901"
    assert repr(orjson.loads(BOOK_UPDATE)["data"][0]["asks"][0]["qty"]) != "12345678.12345678901"
    assert message.bids[0][:2] == (45283.5, 0.00001)
    assert message.checksum == 2439117997
    assert message.exchange_ts == 1696613755440
    assert message.recv_ts == 1.5


def test_book_snapshot_is_marked() -> None:
    frame = BOOK_UPDATE.replace(b'"update"', b'"snapshot"')
    (message,) = parse(frame.decode(), 0.0)  # str frames too
    assert isinstance(message, BookMessage)
    assert message.snapshot is True


def test_one_book_frame_may_carry_several_symbols() -> None:
    entry = json.loads(BOOK_UPDATE, parse_float=str)["data"][0]  # no 1e-05 for 0.00001
    frame = {"channel": "book", "type": "update", "data": [entry, {**entry, "symbol": "ETH/USD"}]}
    events = parse(json.dumps(frame), 0.0)
    assert [e.symbol for e in events if isinstance(e, BookMessage)] == ["BTC/USD", "ETH/USD"]


def test_trade_frame() -> None:
    frame = (
        b'{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
        b'"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
        b'"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
    )
    (batch,) = parse(frame, 2.0)
    assert isinstance(batch, Trades)
    assert batch.snapshot is False
    assert batch.trades == [
        Trade(
            exchange="kraken",
            symbol="MATIC/USD",
            trade_id="4665906",
            price=0.5117,
            qty=40.0,
            price_text="0.5117",
            qty_text="40.0",
            side="sell",
            exchange_ts=1695628177708,
            recv_ts=2.0,
            sequence=4665906,
        )
    ]
    (snapshot,) = parse(frame.replace(b'"update"', b'"snapshot"'), 2.0)
    assert isinstance(snapshot, Trades)
    assert snapshot.snapshot is True


def test_ticker_bbo_frame() -> None:
    frame = (
        b'{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025,'
        b'"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,'
        b'"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,'
        b'"change":-0.00017,"change_pct":-0.17}]}'
    )
    assert parse(frame, 3.0) == [
        Bbo("ALGO/USD", "0.10025", "740.0", "0.10036", "1361.44813783", 3.0)
    ]


def test_control_frames() -> None:
    assert parse(b'{"channel":"heartbeat"}', 4.0) == [Heartbeat(4.0)]
    status = (
        b'{"channel":"status","type":"update","data":[{"api_version":"v2",'
        b'"connection_id":12393906104898154338,"system":"online","version":"2.0.0"}]}'
    )
    assert parse(status, 0.0) == [Status("online", "v2", 12393906104898154338, "2.0.0")]
    pong = b'{"method":"pong","req_id":7,"time_in":"2023-09-24T14:10:23.799685Z"}'
    assert parse(pong, 0.0) == (Pong(7),)


def test_subscribe_replies() -> None:
    ok = (
        b'{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,'
        b'"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z",'
        b'"time_out":"2023-09-25T09:04:31.742648Z","req_id":3}'
    )
    assert parse(ok, 0.0) == (Ack("subscribe", True, 3, "book", "BTC/USD", None),)
    failed = (
        b'{"error":"Currency pair not supported ALGO/ABC","method":"subscribe",'
        b'"success":false,"symbol":"ALGO/ABC","req_id":4}'
    )
    assert parse(failed, 0.0) == (
        Ack("subscribe", False, 4, None, "ALGO/ABC", "Currency pair not supported ALGO/ABC"),
    )


def test_instrument_precisions() -> None:
    frame = (
        b'{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":['
        b'{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online",'
        b'"qty_precision":8,"qty_increment":0.00000001,"price_precision":1,'
        b'"price_increment":0.1}]}}'
    )
    assert parse(frame, 0.0) == [Instruments({"BTC/USD": Precision(1, 8)})]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{not json", "bad_json"),
        (b'{"channel":"heartbeat"} x', "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_shape"),
        (b'{"channel":"ohlc","type":"update","data":[]}', "unknown_channel"),
        (b'{"method":"amend"}', "unknown_message"),
        (b'{"channel":"book","type":"update"}', "missing_field"),
        (b'{"channel":"book","type":"delta","data":[]}', "bad_field"),
        (b'{"channel":"book","type":"update","data":{}}', "bad_shape"),
        (b'{"channel":"book","type":"update","data":[7]}', "bad_shape"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(frame, 0.0)
    assert caught.value.reason == reason


def _book_with(**changes: object) -> bytes:
    entry = json.loads(BOOK_UPDATE, parse_float=str)["data"][0]  # no 1e-05 for 0.00001
    entry.update(changes)
    return json.dumps({"channel": "book", "type": "update", "data": [entry]}).encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"checksum": -1}, "bad_checksum"),
        ({"checksum": 1 << 32}, "bad_checksum"),
        ({"checksum": "123"}, "bad_checksum"),
        ({"bids": {}}, "bad_field"),
        ({"bids": [[45283.5, 1]]}, "bad_level"),
        ({"bids": [{"price": 1}]}, "bad_level"),
        ({"bids": [{"price": True, "qty": 1}]}, "bad_type"),
        ({"bids": [{"price": None, "qty": 1}]}, "bad_type"),
        ({"bids": [{"price": "abc", "qty": 1}]}, "bad_number"),
        ({"bids": [{"price": 0, "qty": 1}]}, "bad_level"),
        ({"bids": [{"price": 1, "qty": -1}]}, "bad_number"),  # not a canonical decimal
        ({"asks": [{"price": "NaN", "qty": 1}]}, "bad_number"),
        ({"symbol": ""}, "bad_type"),
        ({"timestamp": "yesterday"}, "bad_field"),
        ({"timestamp": "2023-10-06T17:35:55"}, "bad_field"),  # no zone
    ],
)
def test_bad_book_fields_are_refused(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(_book_with(**changes), 0.0)
    assert caught.value.reason == reason


def test_bad_trade_fields_are_refused() -> None:
    trade = {"symbol": "X/Y", "side": "buy", "price": 1.5, "qty": 2, "ord_type": "limit",
             "trade_id": 1, "timestamp": "2023-09-25T07:49:37.708706Z"}  # fmt: skip
    for changes, reason in (
        ({"side": "short"}, "bad_field"),
        ({"trade_id": "1"}, "bad_type"),
        ({"price": 0}, "bad_number"),
        ({"qty": "x"}, "bad_number"),
    ):
        frame = {"channel": "trade", "type": "update", "data": [{**trade, **changes}]}
        with pytest.raises(MalformedMessage) as caught:
            parse(json.dumps(frame), 0.0)
        assert caught.value.reason == reason, changes


def _book_level(price: str, qty: str) -> bytes:
    """A book update with one bid whose price and qty are written as given (raw JSON)."""
    return (
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":'
        + price.encode()
        + b',"qty":'
        + qty.encode()
        + b'}],"asks":[],"checksum":1,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
    )


@pytest.mark.parametrize(
    ("price", "qty"),
    [
        ("1e5", "1"),  # exponent: float() takes it, the checksum text would be wrong
        ("1E+2", "1"),
        ("45283.5", "1.5e-3"),
        ("-45283.5", "1"),
        ("45283.5", "-0.5"),
        ('" 1"', "1"),  # float() strips spaces
        ('"1_0"', "1"),  # and takes underscores
        ('"1."', "1"),
        ('".5"', "1"),
        ('"\\u0661"', "1"),  # ARABIC-INDIC DIGIT ONE: isdigit(), yet not ASCII
        ('"inf"', "1"),
        ("45283.5", '"nan"'),
        ("1" * 400, "1"),  # an integer too large for a float
    ],
)
def test_a_book_number_that_is_not_a_plain_decimal_is_bad_number(price: str, qty: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(_book_level(price, qty), 0.0)
    assert caught.value.reason == "bad_number"


def test_integers_and_plain_decimals_are_book_numbers() -> None:
    (message,) = parse(_book_level("45280", "0"), 0.0)
    assert isinstance(message, BookMessage)
    assert message.bids == [(45280.0, 0.0, "45280", "0")]
    (message,) = parse(_book_level("0.00001", "12345678.12345678901"), 0.0)
    assert isinstance(message, BookMessage)
    assert message.bids == [(0.00001, 12345678.12345678901, "0.00001", "12345678.12345678901")]


def test_an_unhashable_book_number_is_bad_type() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(_book_level("[1]", "1"), 0.0)
    assert caught.value.reason == "bad_type"


TRADE = (
    b'{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
    b'"price":%s,"qty":%s,"ord_type":"market","trade_id":%d,'
    b'"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
)


@pytest.mark.parametrize("trade_id", [2**53, 2**53 + 1, 2**63, -1])
def test_an_implausible_trade_id_is_bad_ids(trade_id: int) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(TRADE % (b"0.5117", b"40.0", trade_id), 0.0)
    assert caught.value.reason == "bad_ids"


@pytest.mark.parametrize("trade_id", [0, 2**53 - 1])
def test_trade_ids_from_zero_to_just_below_2_to_the_53_are_taken(trade_id: int) -> None:
    (batch,) = parse(TRADE % (b"0.5117", b"40.0", trade_id), 0.0)
    assert isinstance(batch, Trades)
    assert (batch.trades[0].trade_id, batch.trades[0].sequence) == (str(trade_id), trade_id)


@pytest.mark.parametrize(("price", "qty"), [(b"5e-1", b"40"), (b"0.5117", b"4E1"), (b"-1", b"1")])
def test_a_trade_number_that_is_not_a_plain_decimal_is_bad_number(price: bytes, qty: bytes) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(TRADE % (price, qty, 1), 0.0)
    assert caught.value.reason == "bad_number"


def test_a_ticker_number_that_is_not_a_plain_decimal_is_bad_number() -> None:
    frame = (
        b'{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":1.0025e-1,'
        b'"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783}]}'
    )
    with pytest.raises(MalformedMessage) as caught:
        parse(frame, 0.0)
    assert caught.value.reason == "bad_number"
