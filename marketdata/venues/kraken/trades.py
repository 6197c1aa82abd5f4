"""Kraken trades seen once. Pure.

A `trade` subscription starts with a snapshot of the symbol's last 50 trades, so each
resubscribe (after a book resync or a reconnect) sends again trades already passed on.
Kraken's trade_id is a sequence number per book: a trade whose id is not above the last
one passed on for its symbol has been seen.
"""

from __future__ import annotations

from marketdata.events import Trade
from marketdata.venues.kraken.wire import Trades


class TradeGate:
    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def fresh(self, batch: Trades) -> list[Trade]:
        """The trades of `batch` not passed on before, in order."""
        last = self._last
        out = []
        for trade in batch.trades:
            if trade.trade_id > last.get(trade.symbol, -1):
                last[trade.symbol] = trade.trade_id
                out.append(trade)
        return out
