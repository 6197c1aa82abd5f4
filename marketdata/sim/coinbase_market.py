"""Generated Coinbase Advanced Trade markets: one SimMarket per product, at Coinbase's own
precisions, with the recent trades a `market_trades` snapshot repeats and the figures the
`ticker` channel reports.

Each market steps `rate` times a second once first used; every step is handed at once, in
the same tick, to every listener of the product (a connection's product stream, which
reads the market's book as it stands). Coinbase's level2 snapshot is the whole book: a
source made with `depth` > INITIAL_LEVELS holds that many levels per side (far from the
top, where the market's churn does not reach), for snapshot frames of many MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from marketdata.sim.market import INITIAL_LEVELS, Shape, SimMarket, StepFrames
from marketdata.sim.sources import run_steps

TRADE_SNAPSHOT = 100  # trades a `market_trades` snapshot repeats, newest first

# Coinbase's quote increments and base increments for some of its busiest products.
SHAPES = {
    "BTC-USD": Shape(60000.0, 2, 8, 500 / 60000),
    "ETH-USD": Shape(3000.0, 2, 8, 500 / 3000),
    "SOL-USD": Shape(150.0, 2, 8, 1.0),
    "XRP-USD": Shape(0.6, 4, 6, 1.0),
    "DOGE-USD": Shape(0.15, 5, 1, 1.0),
    "LTC-USD": Shape(80.0, 2, 8, 1.0),
    "ADA-USD": Shape(0.45, 4, 8, 1.0),
    "BTC-EUR": Shape(55000.0, 2, 8, 500 / 55000),
}
DEFAULT_PRODUCTS = tuple(SHAPES)

Listener = Callable[[SimMarket, StepFrames], None]


@dataclass(slots=True)
class Stats:
    """What the `ticker` channel reports of a product's trading since its market started."""

    open: int  # ticks: the first mid
    last: int
    low: int
    high: int
    volume: int = 0  # lots

    def trade(self, ticks: int, lots: int) -> None:
        self.last = ticks
        self.low, self.high = min(self.low, ticks), max(self.high, ticks)
        self.volume += lots


def shape_for(product: str) -> Shape:
    """The shape of a product this simulator lists (a made-up one if it has no entry)."""
    return SHAPES.get(product, Shape(10.0, 4, 8, 1.0))


class CoinbaseSource:
    """The products a generated Coinbase lists; their markets start on first use."""

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        symbols: Collection[str] | None = None,
        depth: int = INITIAL_LEVELS,  # levels per side a market starts with
    ) -> None:
        self.rate = rate
        self.seed = seed
        self.depth = depth
        self.products = {
            s: shape_for(s) for s in (DEFAULT_PRODUCTS if symbols is None else symbols)
        }
        self.markets: dict[str, SimMarket] = {}
        self.recent_trades: dict[str, deque[dict[str, Any]]] = {}  # Coinbase-shaped
        self.stats: dict[str, Stats] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.paused = False  # while True, markets stand still (tests compare final books)

    def listed(self) -> list[str]:
        return sorted(self.products)

    def market(self, product: str) -> SimMarket:
        market = self.markets.get(product)
        if market is None:
            shape = self.products[product]
            market = self.markets[product] = SimMarket(
                product, self.seed, int(time.time() * 1000), shape=shape
            )
            _deepen(market, self.depth, random.Random(self.seed))
            self.recent_trades[product] = deque(maxlen=TRADE_SNAPSHOT)
            mid = (market.bids.peekitem(-1)[0] + market.asks.peekitem(0)[0]) // 2
            self.stats[product] = Stats(open=mid, last=mid, low=mid, high=mid)
            self._tasks[product] = asyncio.get_running_loop().create_task(
                run_steps(market, self.rate, lambda: self.paused, self._stepped)
            )
        return market

    def listen(self, product: str, listener: Listener) -> SimMarket:
        """Call `listener` after each step of `product`'s market (the market starts now)."""
        market = self.market(product)
        self._listeners.setdefault(product, []).append(listener)
        return market

    def forget(self, product: str, listener: Listener) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._listeners[product].remove(listener)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stepped(self, market: SimMarket, frames: StepFrames) -> None:
        if frames.trade is not None:
            entry = trade_entry(market, frames.trade)
            self.recent_trades[market.symbol].append(entry)
            raw = frames.trade  # its texts at the market's fixed decimals
            self.stats[market.symbol].trade(_units(raw["p"]), _units(raw["q"]))
        for listener in list(self._listeners.get(market.symbol, ())):
            listener(market, frames)


def _deepen(market: SimMarket, depth: int, rng: random.Random) -> None:
    """Add levels beyond the market's last on each side until it holds `depth`."""
    lots = max(1, min(market.bids.values()))
    while len(market.bids) < depth:
        market.bids[market.bids.peekitem(0)[0] - 1 - rng.randrange(3)] = lots + rng.randrange(lots)
    while len(market.asks) < depth:
        market.asks[market.asks.peekitem(-1)[0] + 1 + rng.randrange(3)] = lots + rng.randrange(lots)


def trade_entry(market: SimMarket, trade: dict[str, Any]) -> dict[str, Any]:
    """A generated trade as `market_trades` renders it. `side` is the maker's, as Coinbase
    sends it: a taker buying lifts a resting offer, printed as SELL."""
    return {
        "product_id": market.symbol,
        "trade_id": str(trade["a"]),  # each product's trades counted one by one
        "price": plain(trade["p"]),
        "size": plain(trade["q"]),
        "time": rfc3339(time.time_ns() // 1000),
        "side": "BUY" if trade["m"] else "SELL",  # m: the buyer was the maker
    }


def plain(text: str) -> str:
    """A fixed-point text as Coinbase writes it, trailing zeros dropped ("65080.10" ->
    "65080.1", "65080.00" -> "65080")."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _units(text: str) -> int:
    """A fixed-point text the market rendered, back in its integer units."""
    return int(text.replace(".", ""))


def rfc3339(micros: int) -> str:
    """Unix microseconds as Coinbase writes an event time: "2026-08-09T21:05:48.210883Z"."""
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def rfc3339_nanos(nanos: int) -> str:
    """Unix nanoseconds as a frame's `timestamp`: "2026-08-09T21:05:48.505350477Z"."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
