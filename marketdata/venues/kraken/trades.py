"""Kraken trades seen once. Pure.

A `trade` subscription starts with a snapshot of the symbol's last 50 trades, so each
resubscribe (after a book resync or a reconnect) sends again trades already passed on.
Kraken's trade_id is a sequence number per book, so each symbol's ids are followed by a
marketdata.trade_ids.TradeIds, as Binance's aggTrade ids are: a recent id below the next
one expected is a repeat and is dropped. A high-water mark would not do: one wild id would
make every later real trade look seen. TradeIds lets the trade after a jump decide whether
the jump was an outlier, and then follows the old sequence again.
"""

from __future__ import annotations

from marketdata.events import Trade
from marketdata.trade_ids import TradeIds, Verdict
from marketdata.venues.kraken.wire import Trades


class TradeGate:
    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: dict[str, TradeIds] = {}

    def fresh(self, batch: Trades) -> list[Trade]:
        """The trades of `batch` not passed on before, in order. An outlier retracted by
        a later trade of the same batch is left out; one passed on in an earlier batch
        cannot be taken back."""
        out: list[Trade] = []
        for trade in batch.trades:
            ids = self._ids.get(trade.symbol)
            if ids is None:
                ids = self._ids[trade.symbol] = TradeIds()
            sequence = trade.sequence
            if sequence is None:  # the parser always sets it; nothing to check without
                out.append(trade)
                continue
            verdict = ids.classify(sequence)
            if verdict is Verdict.RETRACT:
                _drop_outlier(out, trade.symbol, ids.retracted)
                verdict = ids.classify(sequence)  # against the sequence before it
            if verdict is not Verdict.REPEAT:
                out.append(trade)
        return out


def _drop_outlier(out: list[Trade], symbol: str, sequence: int) -> None:
    for i in range(len(out) - 1, -1, -1):
        if out[i].symbol == symbol:
            if out[i].sequence == sequence:
                del out[i]
            return
