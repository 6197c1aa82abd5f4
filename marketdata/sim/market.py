"""A generated order book for one symbol: random-walk mid, level churn, trades, and an
update-id chain with gaps like real futures ids (pu == previous u, U > previous u + 1).

Prices and sizes are integer ticks and lots internally, rendered with a fixed number of
decimals as the exchange does. Pure: the caller decides when to step.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sortedcontainers import SortedDict

KNOWN_PRICES = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0, "BNBUSDT": 600.0}
INITIAL_LEVELS = 300
TRADE_PROBABILITY = 0.3
RECENT_TRADES = 10_000  # kept for GET /fapi/v1/aggTrades (the exchange keeps them all)


@dataclass(frozen=True, slots=True)
class Shape:
    """A market's starting price and its precisions, where a venue fixes them."""

    price: float
    price_dp: int  # decimals of a price (the tick is 10**-price_dp)
    qty_dp: int  # decimals of a quantity
    typical_qty: float  # the order size levels are drawn around


@dataclass(frozen=True, slots=True)
class StepFrames:
    depth: dict[str, Any]
    book_ticker: dict[str, Any] | None
    trade: dict[str, Any] | None
    changed: frozenset[tuple[str, int]] = frozenset()  # ("b"|"a", ticks) the step touched


class SimMarket:
    def __init__(
        self,
        symbol: str,
        seed: int | None = None,
        start_ms: int = 0,
        consecutive: bool = False,
        shape: Shape | None = None,  # another venue's price and precisions (Kraken's)
    ) -> None:
        self.symbol = symbol
        self.consecutive = consecutive  # spot: U == previous u + 1, no gaps between events
        self._rng = random.Random(zlib.crc32(symbol.encode()) + 7919 * (seed or 0))
        if shape is None:
            price = KNOWN_PRICES.get(symbol, 1.0 + self._rng.random() * 100)
            self.price_dp = max(1, min(8, 6 - len(str(int(price)))))
            self.qty_dp = 3 if price > 100 else 0
            self._lot_scale = 10.0 ** max(self.qty_dp, 1)
        else:
            price, self.price_dp, self.qty_dp = shape.price, shape.price_dp, shape.qty_dp
            self._lot_scale = 10.0**self.qty_dp * shape.typical_qty
        tick = 10.0**-self.price_dp
        mid = round(price / tick)
        levels = range(1, INITIAL_LEVELS + 1)
        self.bids = SortedDict({mid - i: self._lots() for i in levels})  # ticks -> lots
        self.asks = SortedDict({mid + i: self._lots() for i in levels})
        self.last_id = 1_000_000_000 + self._rng.randrange(1_000_000)
        self.trade_id = 10_000_000
        self.recent_trades: deque[dict[str, Any]] = deque(maxlen=RECENT_TRADES)
        self.now_ms = start_ms
        self._bbo = self._best()

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = reversed(self.bids.items()[-limit:])
        asks = self.asks.items()[:limit]
        return {
            "lastUpdateId": self.last_id,
            "E": self.now_ms,
            "T": self.now_ms,
            "bids": [[self._price(p), self._qty(q)] for p, q in bids],
            "asks": [[self._price(p), self._qty(q)] for p, q in asks],
        }

    def agg_trades(self, from_id: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` recent trades as GET /fapi/v1/aggTrades renders them: from id
        `from_id` on (from the oldest one kept, if it is older), else the latest."""
        trades = self.recent_trades
        if not trades:
            return []
        if from_id is None:
            start = max(0, len(trades) - limit)
        else:
            start = max(0, from_id - trades[0]["a"])  # ids are contiguous
        end = min(len(trades), start + limit)
        return [
            {k: t[k] for k in ("a", "p", "q", "f", "l", "T", "m")}
            for t in islice(trades, start, end)
        ]

    def step(self, now_ms: int) -> StepFrames:
        """Advance the market by one depth event (and maybe a trade)."""
        self.now_ms = now_ms
        changes: dict[tuple[str, int], int] = {}
        trade = self._maybe_trade(changes) if self._rng.random() < TRADE_PROBABILITY else None
        for _ in range(self._rng.randint(1, 8)):
            self._churn(changes)
        self._replenish(changes)
        prev = self.last_id
        first = prev + 1 if self.consecutive else prev + self._rng.randint(1, 40)
        self.last_id = first + self._rng.randint(0, 30)
        depth = {
            "e": "depthUpdate", "E": now_ms, "T": now_ms, "s": self.symbol,
            "U": first, "u": self.last_id, "pu": prev,
            "b": self._render(changes, "b"), "a": self._render(changes, "a"),
        }  # fmt: skip
        bbo = self._best()
        ticker = None
        if bbo != self._bbo:
            self._bbo = bbo
            (bid, bid_qty), (ask, ask_qty) = bbo
            ticker = {
                "e": "bookTicker", "u": self.last_id, "s": self.symbol,
                "b": self._price(bid), "B": self._qty(bid_qty),
                "a": self._price(ask), "A": self._qty(ask_qty), "T": now_ms, "E": now_ms,
            }  # fmt: skip
        return StepFrames(depth, ticker, trade, frozenset(changes))

    def top(self, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        """The true top of book, as the exchange would render it."""
        snap = self.snapshot(depth)
        return snap["bids"], snap["asks"]

    def _maybe_trade(self, changes: dict[tuple[str, int], int]) -> dict[str, Any]:
        taker_buys = self._rng.random() < 0.5
        side, book = ("a", self.asks) if taker_buys else ("b", self.bids)
        price = book.peekitem(0 if taker_buys else -1)[0]
        qty = self._rng.randint(1, book[price])
        self._set(side, price, book[price] - qty, changes)
        self.trade_id += 1
        trade = {
            "e": "aggTrade", "E": self.now_ms, "a": self.trade_id, "s": self.symbol,
            "p": self._price(price), "q": self._qty(qty), "f": self.trade_id * 3,
            "l": self.trade_id * 3 + 2, "T": self.now_ms, "m": not taker_buys,
        }  # fmt: skip
        self.recent_trades.append(trade)
        return trade

    def _churn(self, changes: dict[tuple[str, int], int]) -> None:
        side = "b" if self._rng.random() < 0.5 else "a"
        book = self.bids if side == "b" else self.asks
        best_bid, best_ask = self.bids.peekitem(-1)[0], self.asks.peekitem(0)[0]
        distance = int(self._rng.expovariate(0.15))
        if side == "b":
            price = best_bid - distance if distance or best_ask - best_bid < 2 else best_bid + 1
        else:
            price = best_ask + distance if distance or best_ask - best_bid < 2 else best_ask - 1
        roll = self._rng.random()
        if price in book and roll < 0.3 and len(book) > 20:
            self._set(side, price, 0, changes)
        else:
            self._set(side, price, self._lots(), changes)

    def _replenish(self, changes: dict[tuple[str, int], int]) -> None:
        for side, book in (("b", self.bids), ("a", self.asks)):
            while len(book) < INITIAL_LEVELS // 2:
                far = book.peekitem(0)[0] - 1 if side == "b" else book.peekitem(-1)[0] + 1
                self._set(side, far, self._lots(), changes)

    def _set(self, side: str, price: int, lots: int, changes: dict[tuple[str, int], int]) -> None:
        book = self.bids if side == "b" else self.asks
        if lots > 0:
            book[price] = lots
        else:
            book.pop(price, None)
        if not book:  # never let a side run empty
            book[price] = self._lots()
        changes[(side, price)] = book.get(price, 0)

    def _render(self, changes: dict[tuple[str, int], int], side: str) -> list[list[str]]:
        return [
            [self._price(p), self._qty(q)] for (s, p), q in sorted(changes.items()) if s == side
        ]

    def _best(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.bids.peekitem(-1), self.asks.peekitem(0)

    def _lots(self) -> int:
        return max(1, int(self._rng.paretovariate(1.2) * self._lot_scale))

    def _price(self, ticks: int) -> str:
        return fixed(ticks, self.price_dp)

    def _qty(self, lots: int) -> str:
        return fixed(lots, self.qty_dp)


def fixed(units: int, decimals: int) -> str:
    """Integer units of 10**-decimals as a fixed-point decimal string, exactly."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"
