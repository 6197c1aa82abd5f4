"""OKX trades once by tradeId (text kept), aggregated trades' counts, gaps counted."""

from __future__ import annotations

from marketdata.events import Trade
from marketdata.venues.okx.trades import Gap, TradeGate
from marketdata.venues.okx.wire import Trades


def trade(trade_id: str, symbol: str = "BTC-USDT") -> Trade:
    sequence = int(trade_id) if trade_id.isdigit() else None
    return Trade("okx", symbol, trade_id, 1.0, 1.0, "1", "1", "buy", 0, 0.0, sequence=sequence)


def batch(*ids: str, counts: list[int] | None = None, symbol: str = "BTC-USDT") -> Trades:
    return Trades([trade(i, symbol) for i in ids], counts or [1] * len(ids))


def ids(trades: list[Trade]) -> list[str]:
    return [t.trade_id for t in trades]


def test_repeats_are_dropped_and_instruments_are_apart() -> None:
    gate = TradeGate()
    assert ids(gate.fresh(batch("7849", "7850"))) == ["7849", "7850"]
    assert ids(gate.fresh(batch("7850", "7851"))) == ["7851"]  # a handover overlap
    assert ids(gate.fresh(batch("12883020", symbol="UNI-USD-SWAP"))) == ["12883020"]
    assert gate.gaps == []


def test_a_gap_is_reported_with_the_ids_missing() -> None:
    gate = TradeGate()
    gate.fresh(batch("100"))
    assert ids(gate.fresh(batch("104"))) == ["104"]
    assert gate.gaps == [Gap("BTC-USDT", 101, 103)]
    gate.fresh(batch("105"))
    assert gate.gaps == []


def test_an_aggregated_trade_covers_count_ids() -> None:
    gate = TradeGate()
    gate.fresh(batch("100"))
    assert ids(gate.fresh(batch("103", counts=[3]))) == ["103"]  # ids 101..103 in one
    assert gate.gaps == []
    assert ids(gate.fresh(batch("104", "103"))) == ["104"]
    assert gate.gaps == []
    gate.fresh(batch("110", counts=[2]))  # 109..110: 105..108 missing
    assert gate.gaps == [Gap("BTC-USDT", 105, 108)]


def test_an_id_that_is_no_counter_passes_unchecked() -> None:
    gate = TradeGate()
    assert ids(gate.fresh(batch("a1", "a1"))) == ["a1", "a1"]
