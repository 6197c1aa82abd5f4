"""Prices and quantities: only the venue's canonical decimal form reaches a book or Redis."""

from __future__ import annotations

import pytest

from marketdata.sim.capture import CapturedFrame, load_capture
from marketdata.venues.base import decimal_value
from marketdata.venues.binance import BinanceFutures, MalformedMessage
from tests.helpers import FUTURES_CAPTURE

DEPTH = (
    '{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"SUSHIUSDT",'
    '"U":600859599090,"u":600859600917,"pu":600859598061,"b":[[PRICE,QTY]],"a":[]}}'
)
TICKER = (
    '{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,'
    '"s":"SUSHIUSDT","b":PRICE,"B":QTY,"a":"7.6120","A":"297","T":1,"E":2}}'
)
SNAPSHOT = '{"lastUpdateId":42,"E":7,"T":6,"bids":[[PRICE,QTY]],"asks":[]}'

# Each of these float() accepts, and each once reached orderbook: or market_data verbatim.
NOT_CANONICAL = [
    "٩٩.٩٩٢",  # Arabic-Indic digits
    "９９.５",  # full-width digits
    "1_000",
    " 99.5",
    "99.5 ",
    "+99.5",
    "-0",
    "1e308",
    "1e-400",  # 0.0: as a quantity it deleted a level
    "1E3",
    ".5",
    "5.",
    "nan",
    "inf",
    "Infinity",
    "",
    "1.2.3",
    "9" * 400,  # canonical, yet not finite as a float
]


def frame(template: str, price: str, qty: str) -> bytes:
    quoted = (f'"{price}"', f'"{qty}"')
    return template.replace("PRICE", quoted[0]).replace("QTY", quoted[1]).encode()


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_depth_snapshot_and_ticker_refuse_a_non_canonical_number(text: str) -> None:
    adapter = BinanceFutures()
    for price, qty in ((text, "1"), ("7.5", text)):
        for template in (DEPTH, TICKER):
            with pytest.raises(MalformedMessage) as info:
                adapter.parse(frame(template, price, qty), 0.0)
            assert info.value.reason == "bad_number", (template[:30], price, qty)
        with pytest.raises(MalformedMessage) as info:
            adapter.parse_snapshot("SUSHIUSDT", frame(SNAPSHOT, price, qty), 0.0)
        assert info.value.reason == "bad_number", (price, qty)


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_decimal_value_refuses_it_the_second_time_too(text: str) -> None:
    for _ in range(2):
        with pytest.raises(MalformedMessage, match="bad_number"):
            decimal_value(text, "trade price")


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0.0), ("813", 813.0), ("7.6120", 7.612), ("0.00000001", 1e-8)]
)
def test_canonical_decimals_are_read(text: str, value: float) -> None:
    assert decimal_value(text, "x") == value
    assert decimal_value(text, "x") == value  # and again, from what is already known


@pytest.mark.parametrize("value", [7.5, 7, None, True, ["7.5"]])
def test_a_json_value_that_is_not_a_string_is_a_bad_type(value: object) -> None:
    with pytest.raises(MalformedMessage, match="bad_type"):
        decimal_value(value, "x")


def test_every_number_in_the_capture_is_canonical() -> None:
    adapter, checked = BinanceFutures(), 0
    for record in load_capture(FUTURES_CAPTURE).records:
        if not isinstance(record, CapturedFrame):
            snapshot = adapter.parse_snapshot(record.symbol, record.raw.encode(), 0.0)
            checked += len(snapshot.bids) + len(snapshot.asks)
        elif "@depth" in record.stream or "@bookTicker" in record.stream:
            checked += len(adapter.parse(record.raw.encode(), 0.0))
    assert checked > 1000
