"""Update ids and trade ids share one bound, MAX_ID = 2^53, refused at the bound itself:
2^53 is the first integer a JSON peer cannot hold exactly."""

from __future__ import annotations

import pytest

from marketdata.venues.base import MAX_ID, to_trade_id, to_update_id
from marketdata.venues.binance import BinanceFutures, BinanceSpot, MalformedMessage

SPOT_DEPTH = (
    b'{"stream":"x@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"FTMUSDT",'
    b'"U":%d,"u":%d,"b":[],"a":[]}}'
)
TRADE = (
    b'{"stream":"x@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"FTMUSDT","p":"1.0",'
    b'"q":"2","f":1,"l":1,"T":1,"m":true}}'
)
REST = b'[{"a":%d,"p":"1.0","q":"2","f":1,"l":1,"T":1,"m":true}]'


def test_the_bound_is_2_to_the_53() -> None:
    assert MAX_ID == 2**53


@pytest.mark.parametrize("check", [to_update_id, to_trade_id])
def test_both_kinds_of_id_refuse_the_bound_and_take_one_below(check: object) -> None:
    assert callable(check)
    assert check(MAX_ID - 1, "id") == MAX_ID - 1
    for wild in (MAX_ID, MAX_ID + 1):
        with pytest.raises(MalformedMessage) as e:
            check(wild, "id")
        assert e.value.reason == "bad_ids"


def test_only_trade_ids_may_be_zero() -> None:
    assert to_trade_id(0, "a") == 0
    with pytest.raises(MalformedMessage, match="bad_ids"):
        to_update_id(0, "u")


@pytest.mark.parametrize("adapter", [BinanceFutures(), BinanceSpot()], ids=["futures", "spot"])
def test_a_trade_id_at_the_bound_is_refused_on_stream_and_rest(
    adapter: BinanceFutures | BinanceSpot,
) -> None:
    (trade,) = adapter.parse(TRADE % (MAX_ID - 1), 1.0)
    assert (trade.trade_id, trade.sequence) == (str(MAX_ID - 1), MAX_ID - 1)
    with pytest.raises(MalformedMessage, match="bad_ids"):
        adapter.parse(TRADE % MAX_ID, 1.0)
    with pytest.raises(MalformedMessage, match="bad_ids"):
        adapter.parse_agg_trades("FTMUSDT", REST % MAX_ID, 1.0)


def test_a_spot_update_id_at_the_bound_is_refused() -> None:
    (diff,) = BinanceSpot().parse(SPOT_DEPTH % (MAX_ID - 1, MAX_ID - 1), 1.0)
    assert diff.last_id == MAX_ID - 1
    with pytest.raises(MalformedMessage, match="bad_ids"):
        BinanceSpot().parse(SPOT_DEPTH % (MAX_ID - 1, MAX_ID), 1.0)
