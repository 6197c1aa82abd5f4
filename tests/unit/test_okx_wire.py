"""The OKX v5 frame parser: every frame of the recording, replies, and refusals by reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.venues.base import MalformedMessage
from marketdata.venues.okx.wire import (
    Bbo,
    BookMessage,
    ErrorReply,
    Notice,
    Pong,
    Reply,
    Trades,
    parse,
    parse_rest_book,
)
from tests.okx_capture import load


def test_every_frame_of_the_recording_parses() -> None:
    capture = load()
    kinds: dict[str, int] = {}
    for frame in capture.frames:
        for event in parse(frame, 1.0):
            kinds[type(event).__name__] = kinds.get(type(event).__name__, 0) + 1
    assert kinds == {"Reply": 18, "BookMessage": 290, "Trades": 74, "Bbo": 28}


def test_a_book_update_keeps_the_exchange_text() -> None:
    frame = (
        b'{"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"update","data":[{'
        b'"asks":[["30249.4","0","0","0"],["30261","4","0","1"]],"bids":[["30182.6","452","0",'
        b'"1"]],"ts":"1652459225464","checksum":-914047754,"prevSeqId":7,"seqId":9}]}'
    )
    (message,) = parse(frame, 2.5)
    assert message == BookMessage(
        "BTC-USD-220527", False, [(30182.6, 452.0, "30182.6", "452")],
        [(30249.4, 0.0, "30249.4", "0"), (30261.0, 4.0, "30261", "4")],
        -914047754, 9, 7, 1652459225464, 2.5,
    )  # fmt: skip


def test_trades_keep_the_id_as_text_with_its_counter() -> None:
    frame = json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
        {"instId": "BTC-USDT", "tradeId": "338476307", "px": "30243.5", "sz": "0.0012",
         "side": "sell", "ts": "1652459226001", "count": "3"}]})  # fmt: skip
    (batch,) = parse(frame, 1.0)
    assert isinstance(batch, Trades)
    assert batch.counts == [3]
    (trade,) = batch.trades
    assert (trade.trade_id, trade.sequence, trade.price_text, trade.qty_text, trade.side) == (
        "338476307", 338476307, "30243.5", "0.0012", "sell",
    )  # fmt: skip


def test_replies_errors_notices_and_pong() -> None:
    assert parse(b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},'
                 b'"connId":"a4d3ae55"}', 1.0) == (
        Reply("subscribe", "books", "BTC-USDT", "a4d3ae55"),
    )  # fmt: skip
    assert parse(b'{"event":"error","code":"60012","msg":"Invalid request","connId":"x"}', 1.0) == (
        ErrorReply("60012", "Invalid request", "x"),
    )
    notice = b'{"event":"notice","code":"64008","msg":"The connection will soon be closed"}'
    assert parse(notice, 1.0) == (Notice("64008", "The connection will soon be closed", None),)
    assert parse(b"pong", 1.0) == (Pong(),)
    count = b'{"event":"channel-conn-count","channel":"books","connCount":"2","connId":"x"}'
    assert parse(count, 1.0) == (Notice("channel-conn-count", "books on 2 connection(s)", "x"),)


def test_bbo_tbt_gives_the_top_with_its_seq_id() -> None:
    frame = json.dumps({"arg": {"channel": "bbo-tbt", "instId": "BTC-USDT"}, "data": [
        {"asks": [["101.5", "2", "0", "1"]], "bids": [["101.4", "0.5", "0", "3"]],
         "ts": "1700000000000", "seqId": 42}]})  # fmt: skip
    assert parse(frame, 1.0) == [
        Bbo("BTC-USDT", "101.4", "0.5", "101.5", "2", 42, 1700000000000, 1.0)
    ]


def test_rest_book_with_its_seq_id() -> None:
    body = json.dumps({"code": "0", "msg": "", "data": [
        {"asks": [["101", "2", "0", "1"]], "bids": [["99", "3", "0", "1"]], "ts": "900",
         "seqId": 12345}]}).encode()  # fmt: skip
    snapshot = parse_rest_book(body, "BTC-USDT", 1.0)
    assert (snapshot.seq_id, snapshot.bids, snapshot.exchange_ts) == (
        12345, [(99.0, 3.0, "99", "3")], 900,
    )  # fmt: skip
    with pytest.raises(MalformedMessage, match="rest_error: BTC-USDT books: code 51001"):
        parse_rest_book(b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}',
                        "BTC-USDT", 1.0)  # fmt: skip
    with pytest.raises(MalformedMessage, match="has no .seqId."):
        parse_rest_book(b'{"code":"0","data":[{"asks":[],"bids":[],"ts":"1"}]}', "X", 1.0)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "bad_json"),
        (b"[1]", "bad_shape"),
        (b'{"arg":{"channel":"candle1m","instId":"X"},"data":[]}', "unknown_channel"),
        (b'{"arg":{"channel":"books","instId":"X"},"action":"partial","data":[]}', "bad_field"),
        (b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],'
         b'"bids":[["1e5","1","0","1"]],"ts":"1"}]}', "bad_number"),
        (b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],'
         b'"bids":[],"ts":"1","seqId":"5"}]}', "bad_ids"),
        (b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],'
         b'"bids":[],"ts":"1","checksum":4294967295}]}', "bad_checksum"),
        (b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[]}]}',
         "missing_field"),
        (b'{"arg":{"channel":"trades","instId":"X"},"data":[{"instId":"X","tradeId":"1",'
         b'"px":"1","sz":"1","side":"up","ts":"1"}]}', "bad_field"),
        (b'{"event":"login"}', "unknown_message"),
    ],
)  # fmt: skip
def test_malformed_frames_are_refused_by_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as raised:
        parse(frame, 1.0)
    assert raised.value.reason == reason


@given(st.binary(max_size=200))
def test_any_bytes_either_parse_or_raise_malformed(frame: bytes) -> None:
    try:
        parse(frame, 1.0)
    except MalformedMessage:
        pass


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
))  # fmt: skip
def test_any_json_inside_a_books_frame_parses_or_raises_malformed(data: object) -> None:
    frame = {"arg": {"channel": "books", "instId": "X"}, "action": "update", "data": data}
    try:
        parse(json.dumps(frame), 1.0)
    except MalformedMessage:
        pass
