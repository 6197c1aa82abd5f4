"""OKX trades seen once, and gaps in their ids counted. Pure.

OKX's `tradeId` is a string of digits counting each instrument's trades (contiguous on the
2022 recording: 7849..7852 for BTC-USD-220527, 338476307..338476375 for BTC-USDT), so the
ids are followed by a marketdata.trade_ids.TradeIds as Kraken's and Binance's are: a repeat
(a connection handover delivers some trades on both connections) is dropped, a gap is
reported. Since 2023 OKX may aggregate trades of one taker order: `count` trades end at
`tradeId`, so the aggregate's ids run from tradeId - count + 1. The `trades` channel sends
no history on subscribing, so a gap cannot be filled from the stream; it is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.events import Trade
from marketdata.trade_ids import TradeIds, Verdict
from marketdata.venues.okx.wire import Trades


@dataclass(slots=True)
class Gap:
    symbol: str
    first: int  # the first id missing
    last: int  # the last id missing


class TradeGate:
    __slots__ = ("_ids", "gaps")

    def __init__(self) -> None:
        self._ids: dict[str, TradeIds] = {}
        self.gaps: list[Gap] = []  # found by the last fresh() call

    def fresh(self, batch: Trades) -> list[Trade]:
        """The trades of `batch` not passed on before, in order."""
        out: list[Trade] = []
        self.gaps = []
        for trade, count in zip(batch.trades, batch.counts, strict=True):
            last = trade.sequence
            if last is None:  # not a counter: nothing to check it by
                out.append(trade)
                continue
            ids = self._ids.get(trade.symbol)
            if ids is None:
                ids = self._ids[trade.symbol] = TradeIds()
            verdict = ids.classify(last - count + 1)
            if verdict is Verdict.REPEAT:
                continue
            if verdict is Verdict.RETRACT:
                verdict = ids.classify(last - count + 1)  # against the sequence before
                if verdict is Verdict.REPEAT:
                    continue
            if verdict is Verdict.GAP:
                first, end = ids.missing
                self.gaps.append(Gap(trade.symbol, first, end))
            if count > 1:
                ids.rewind(last + 1)
            out.append(trade)
        return out
