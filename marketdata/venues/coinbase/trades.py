"""Coinbase trades passed on once. Pure.

A `market_trades` subscription starts with a snapshot of each product's recent trades
(100 in the recording), so every subscribe after a reconnect sends again trades already
passed on. Repeats are found by id: the ids of each product's most recent trades are
remembered, more of them than a snapshot holds. An id is not taken as a counter here: in
the recording the ids count each product's trades one by one, but frames list their
trades newest first and Coinbase documents no order, so a high-water mark (or
marketdata.trade_ids, which takes an id below the next one expected for a repeat) could
drop a real trade that came late.
"""

from __future__ import annotations

from collections import deque

from marketdata.events import Trade
from marketdata.venues.coinbase.wire import Trades

REMEMBERED = 4096  # ids per product: a snapshot repeats at most its last 100 trades


class TradeGate:
    __slots__ = ("_order", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}
        self._order: dict[str, deque[str]] = {}

    def fresh(self, batch: Trades) -> list[Trade]:
        """The trades of `batch` not passed on before, in the batch's order."""
        out = []
        for trade in batch.trades:
            seen = self._seen.get(trade.symbol)
            if seen is None:
                seen = self._seen[trade.symbol] = set()
                self._order[trade.symbol] = deque()
            trade_id = trade.trade_id
            if trade_id in seen:
                continue
            order = self._order[trade.symbol]
            if len(order) >= REMEMBERED:
                seen.discard(order.popleft())
            order.append(trade_id)
            seen.add(trade_id)
            out.append(trade)
        return out
