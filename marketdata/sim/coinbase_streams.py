"""One product on one Coinbase connection: the channels subscribed to it, and the events
each market step makes for them.

One listener per product and connection, so a step's events go out in one order:
the `l2_data` update (every level the step changed, at its absolute quantity), then the
`market_trades` update, then the `ticker`, whose best bid and ask are the book's as it
stands after that update (the client checks them against its book). A subscribe starts
with its snapshot: the whole book, the last 100 trades (newest first), the ticker.

During a silence (the scenario's `silence_ms`) the product sends nothing: the next update
then carries every level changed since, at its quantity now, and the trades held back
follow in one frame.
"""

from __future__ import annotations

import time
from typing import Protocol

from marketdata.sim import coinbase_frames as frames
from marketdata.sim.coinbase_frames import Event
from marketdata.sim.coinbase_market import CoinbaseSource, rfc3339
from marketdata.sim.market import SimMarket, StepFrames
from marketdata.sim.scenarios import Scenario, is_silent

PRODUCT_CHANNELS = ("level2", "market_trades", "ticker")
DATA_CHANNEL = {"level2": "l2_data", "market_trades": "market_trades", "ticker": "ticker"}


class Outbox(Protocol):
    """The connection a product's frames go out on."""

    scenario: Scenario

    def queue(self, product: str | None, channel: str, event: Event) -> None: ...


class ProductStream:
    def __init__(self, outbox: Outbox, source: CoinbaseSource, product: str) -> None:
        self.outbox = outbox
        self.source = source
        self.product = product
        self.shape = source.products[product]
        self.channels: set[str] = set()
        self._held: set[tuple[str, int]] = set()  # levels changed during a silence
        self._held_trades: list[Event] = []
        self._behind = False

    def subscribe(self, channel: str) -> None:
        """Subscribe `channel` (again: a fresh snapshot) and queue its snapshot."""
        if not self.channels:
            self.source.listen(self.product, self.on_step)
        self.channels.add(channel)
        market = self.source.market(self.product)
        if channel == "level2":
            event = frames.book("snapshot", self.product, self.shape, frames.whole_book(market),
                                self._now())  # fmt: skip
        elif channel == "market_trades":
            event = frames.trades("snapshot", self.source.recent_trades[self.product])
        else:
            event = self._ticker("snapshot", market)
        self.outbox.queue(self.product, DATA_CHANNEL[channel], event)

    def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if not self.channels:
            self.stop()

    def stop(self) -> None:
        self.channels.clear()
        self.source.forget(self.product, self.on_step)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if step.trade is not None:
            self._held_trades.append(self.source.recent_trades[self.product][-1])
        self._held.update(step.changed)
        if is_silent(self.outbox.scenario, self.product):
            self._behind = True
            return
        changed, self._held = self._held, set()
        trades, self._held_trades = self._held_trades, []
        moved = step.book_ticker is not None or bool(trades) or self._behind
        self._behind = False
        if "level2" in self.channels and changed:
            levels = [(side, ticks, _lots(market, side, ticks)) for side, ticks in sorted(changed)]
            event = frames.book("update", self.product, self.shape, levels, self._now())
            self.outbox.queue(self.product, "l2_data", event)
        if "market_trades" in self.channels and trades:
            self.outbox.queue(self.product, "market_trades", frames.trades("update", trades))
        if "ticker" in self.channels and moved:
            self.outbox.queue(self.product, "ticker", self._ticker("update", market))

    def _ticker(self, kind: str, market: SimMarket) -> Event:
        stats = self.source.stats[self.product]
        return frames.ticker(kind, self.product, self.shape, market, stats)

    @staticmethod
    def _now() -> str:
        return rfc3339(time.time_ns() // 1000)


def _lots(market: SimMarket, side: str, ticks: int) -> int:
    book = market.bids if side == "b" else market.asks
    return int(book.get(ticks, 0))
