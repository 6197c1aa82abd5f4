"""Generated Kraken spot markets: one SimMarket per pair, with Kraken's precisions.

Each pair's market is stepped `rate` times a second; every step is handed at once, in
the same tick, to every listener of the pair, which reads the market's book as it stands
(a connection's book subscription keeps its own view of the top `depth` levels).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from marketdata.sim.market import Shape, SimMarket, StepFrames
from marketdata.sim.sources import run_steps

TRADE_SNAPSHOT = 50  # trades a `trade` snapshot repeats


@dataclass(frozen=True, slots=True)
class Pair:
    """One pair as the `instrument` channel lists it."""

    symbol: str  # "BTC/USD"
    shape: Shape  # starting price, price_precision, qty_precision, typical order size
    qty_min: str
    cost_min: str = "0.5"

    @property
    def base(self) -> str:
        return self.symbol.split("/", 1)[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/", 1)[1]


def _pair(symbol: str, price: float, price_dp: int, qty_min: str, qty_dp: int = 8) -> Pair:
    return Pair(symbol, Shape(price, price_dp, qty_dp, min(1.0, 500 / price)), qty_min)


# Kraken's own precisions (pair_decimals / lot_decimals) for some of its busiest pairs.
PAIRS = {
    p.symbol: p
    for p in (
        _pair("BTC/USD", 60000.0, 1, "0.00005"),
        _pair("ETH/USD", 3000.0, 2, "0.002"),
        _pair("SOL/USD", 150.0, 2, "0.02"),
        _pair("XRP/USD", 0.6, 5, "2"),
        _pair("DOGE/USD", 0.15, 7, "20"),
        _pair("ADA/USD", 0.45, 6, "10"),
        _pair("LTC/USD", 80.0, 2, "0.05"),
        _pair("DOT/USD", 6.0, 4, "0.6"),
        _pair("LINK/USD", 14.0, 5, "0.2"),
        _pair("AVAX/USD", 30.0, 2, "0.1"),
        _pair("BTC/EUR", 55000.0, 1, "0.00005"),
        _pair("ETH/BTC", 0.05, 5, "0.002"),
        _pair("USDT/USD", 1.0, 5, "5"),
    )
}
DEFAULT_PAIRS = tuple(PAIRS)

Listener = Callable[[SimMarket, StepFrames], None]


@dataclass(slots=True)
class Stats:
    """What the `ticker` channel reports of a pair's trading since its market started."""

    open: int  # ticks: the first mid
    last: int
    low: int
    high: int
    volume: int = 0  # lots
    notional: int = 0  # ticks * lots, for the vwap

    def trade(self, ticks: int, lots: int) -> None:
        self.last = ticks
        self.low, self.high = min(self.low, ticks), max(self.high, ticks)
        self.volume += lots
        self.notional += ticks * lots


def pair_for(symbol: str) -> Pair:
    """The pair of a symbol this simulator lists (a made-up shape if it has no entry)."""
    known = PAIRS.get(symbol)
    if known is not None:
        return known
    return _pair(symbol, 10.0, 4, "1")


class KrakenSource:
    """The pairs a generated Kraken lists; their markets start on first use."""

    def __init__(
        self, rate: float, seed: int | None = None, symbols: Collection[str] | None = None
    ) -> None:
        self.rate = rate
        self.seed = seed
        self.pairs = {s: pair_for(s) for s in (DEFAULT_PAIRS if symbols is None else symbols)}
        self.markets: dict[str, SimMarket] = {}
        self.recent_trades: dict[str, deque[dict[str, Any]]] = {}  # Kraken-shaped
        self.stats: dict[str, Stats] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.paused = False

    def listed(self) -> list[str]:
        return sorted(self.pairs)

    def market(self, symbol: str) -> SimMarket:
        market = self.markets.get(symbol)
        if market is None:
            shape = self.pairs[symbol].shape
            market = self.markets[symbol] = SimMarket(
                symbol, self.seed, int(time.time() * 1000), shape=shape
            )
            self.recent_trades[symbol] = deque(maxlen=TRADE_SNAPSHOT)
            mid = (market.bids.peekitem(-1)[0] + market.asks.peekitem(0)[0]) // 2
            self.stats[symbol] = Stats(open=mid, last=mid, low=mid, high=mid)
            self._tasks[symbol] = asyncio.get_running_loop().create_task(
                run_steps(market, self.rate, lambda: self.paused, self._stepped)
            )
        return market

    def listen(self, symbol: str, listener: Listener) -> SimMarket:
        """Call `listener` after each step of `symbol`'s market (the market starts now)."""
        market = self.market(symbol)
        self._listeners.setdefault(symbol, []).append(listener)
        return market

    def forget(self, symbol: str, listener: Listener) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._listeners[symbol].remove(listener)

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
            self.stats[market.symbol].trade(_units(entry["price"]), _units(entry["qty"]))
        for listener in list(self._listeners.get(market.symbol, ())):
            listener(market, frames)


def trade_entry(market: SimMarket, trade: dict[str, Any]) -> dict[str, Any]:
    """A generated trade as Kraken's `trade` channel renders it (numbers as their text)."""
    trade_id = int(trade["a"])
    return {
        "symbol": market.symbol,
        "side": "sell" if trade["m"] else "buy",  # the taker's side
        "price": trade["p"],
        "qty": trade["q"],
        "ord_type": "limit" if trade_id % 5 == 0 else "market",
        "trade_id": trade_id,
        "timestamp": rfc3339(time.time_ns() // 1000),
    }


def _units(text: str) -> int:
    """A fixed-point text the market rendered, back in its integer units."""
    return int(text.replace(".", ""))


def rfc3339(micros: int) -> str:
    """Unix microseconds as Kraken writes a time: "2023-10-06T17:35:55.440295Z"."""
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def now_rfc3339() -> str:
    return rfc3339(time.time_ns() // 1000)
