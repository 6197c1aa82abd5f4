"""Trades repeated by a resubscribe's snapshot are passed on once."""

from __future__ import annotations

from marketdata.events import Trade
from marketdata.venues.kraken.trades import TradeGate
from marketdata.venues.kraken.wire import Trades


def trade(symbol: str, trade_id: int) -> Trade:
    return Trade(
        "kraken", symbol, str(trade_id), 1.0, 1.0, "1.0", "1.0", "buy", 0, 0.0, sequence=trade_id
    )


def test_a_resubscribe_snapshot_passes_on_only_new_trades() -> None:
    gate = TradeGate()
    first = gate.fresh(Trades(True, [trade("A/B", i) for i in range(1, 51)]))
    assert [t.sequence for t in first] == list(range(1, 51))
    assert [t.sequence for t in gate.fresh(Trades(False, [trade("A/B", 51)]))] == [51]
    # resubscribed: the snapshot repeats the last 50, one of them new
    again = gate.fresh(Trades(True, [trade("A/B", i) for i in range(3, 53)]))
    assert [t.sequence for t in again] == [52]


def test_symbols_are_counted_apart() -> None:
    gate = TradeGate()
    gate.fresh(Trades(False, [trade("A/B", 100)]))
    batch = Trades(False, [trade("C/D", 5), trade("A/B", 100), trade("A/B", 101)])
    assert [(t.symbol, t.sequence) for t in gate.fresh(batch)] == [("C/D", 5), ("A/B", 101)]


def test_one_wild_id_does_not_freeze_the_trades_after_it() -> None:
    gate = TradeGate()
    gate.fresh(Trades(False, [trade("A/B", i) for i in range(100, 110)]))
    assert [t.sequence for t in gate.fresh(Trades(False, [trade("A/B", 2**52)]))] == [2**52]
    # the sequence goes on from 110: the wild id was an outlier, not the new high-water mark
    later = gate.fresh(Trades(False, [trade("A/B", i) for i in range(110, 115)]))
    assert [t.sequence for t in later] == list(range(110, 115))
    assert gate.fresh(Trades(False, [trade("A/B", 113)])) == []  # still a repeat


def test_an_outlier_retracted_within_its_batch_is_left_out() -> None:
    gate = TradeGate()
    gate.fresh(Trades(False, [trade("A/B", 100)]))
    batch = Trades(False, [trade("C/D", 7), trade("A/B", 2**52), trade("A/B", 101)])
    assert [(t.symbol, t.sequence) for t in gate.fresh(batch)] == [("C/D", 7), ("A/B", 101)]


def test_a_real_gap_is_passed_on_and_followed() -> None:
    gate = TradeGate()
    gate.fresh(Trades(False, [trade("A/B", 100)]))
    batch = Trades(False, [trade("A/B", 180), trade("A/B", 181), trade("A/B", 150)])
    assert [t.sequence for t in gate.fresh(batch)] == [180, 181]  # 150 came too late
