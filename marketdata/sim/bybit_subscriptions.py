"""What one Bybit connection is subscribed to, and the frames each topic makes.

A subscription listens to its symbol's market (bybit_market.BybitSource) and queues its
frames on its connection as each step happens. A book topic sends its snapshot, then the
source's delta of each step with its `u`; during a silence (the scenario's `silence_ms`)
it sends nothing and resumes with a snapshot (Bybit re-sends one after trouble on its
side), and a `publicTrade` subscription sends the trades held back in one frame.
`restart_every` makes a delta a snapshot with `u == 1`, as after a Bybit service restart:
this connection's ids for the topic then go on from there.
"""

from __future__ import annotations

import time
from typing import Protocol

from marketdata.sim import bybit_frames
from marketdata.sim.bybit_market import BybitSource, TradeEntry
from marketdata.sim.kraken_market import Pair
from marketdata.sim.market import SimMarket, StepFrames
from marketdata.sim.scenarios import Scenario, is_silent

RESTART_U = 1  # a book's u after a Bybit service restart


class Outbox(Protocol):
    """The connection a subscription's frames go out on."""

    scenario: Scenario
    category: str  # spot, linear or inverse

    def queue(self, subscription: Subscription | None, frame: bytes) -> None: ...

    def restarts_next_delta(self) -> bool:
        """Counts a book delta; True when the scenario wants a restart snapshot instead."""


class Subscription:
    def __init__(self, outbox: Outbox, source: BybitSource, pair: Pair, topic: str) -> None:
        self.outbox = outbox
        self.source = source
        self.pair = pair
        self.symbol = pair.symbol
        self.topic = topic
        self.active = True

    def start(self) -> None:
        self.source.listen(self.symbol, self.on_step)
        self.begin()

    def stop(self) -> None:
        self.active = False
        self.source.forget(self.symbol, self.on_step)

    def begin(self) -> None:
        """Send what a fresh subscription starts with."""

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        """Send what this market step means for this subscription."""

    def silent(self) -> bool:
        return is_silent(self.outbox.scenario, self.symbol)


class BookSubscription(Subscription):
    def __init__(
        self, outbox: Outbox, source: BybitSource, pair: Pair, topic: str, depth: int
    ) -> None:
        super().__init__(outbox, source, pair, topic)
        self.depth = depth
        self.book = source.topic(self.symbol, depth)
        self.offset = 0  # u on this connection = the topic's u - offset (after a restart)
        self.behind = False  # a silence left this connection's book behind
        self.sent_at = time.monotonic()  # of its last frame

    def begin(self) -> None:
        self.snapshot()

    def snapshot(self) -> None:
        bids, asks = self.book.snapshot()
        self._send("snapshot", bids, asks, self.book.u - self.offset)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        delta = self.source.deltas.get((self.symbol, self.depth))
        if delta is None:
            return
        if self.silent():
            self.behind = True
        elif self.behind:
            self.behind = False
            self.snapshot()
        elif self.outbox.restarts_next_delta():
            self.offset = self.book.u - RESTART_U
            self.snapshot()
        else:
            self._send("delta", delta.bids, delta.asks, delta.u - self.offset)

    def resend(self, now: float, after_s: float) -> None:
        """Re-send the snapshot, `u` unchanged, when nothing was sent for `after_s`."""
        if now - self.sent_at >= after_s and not self.silent():
            self.snapshot()

    def _send(self, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]],
              u: int) -> None:  # fmt: skip
        self.sent_at = time.monotonic()
        seq = self.source.seq[self.symbol]
        frame = bybit_frames.book(self.depth, self.pair, kind, bids, asks, u, seq, _now_ms())
        self.outbox.queue(self, frame)


class TradeSubscription(Subscription):
    """`publicTrade`: new trades only (no history on subscribing)."""

    def __init__(self, outbox: Outbox, source: BybitSource, pair: Pair, topic: str) -> None:
        super().__init__(outbox, source, pair, topic)
        self.held: list[TradeEntry] = []  # trades a silence holds back

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        trade = self.source.trades.get(self.symbol)
        if trade is not None:
            self.held.append(trade)
        if self.held and not self.silent():
            frame = bybit_frames.trades(self.symbol, self.held, self.outbox.category, _now_ms())
            self.outbox.queue(self, frame)
            self.held = []


class TickerSubscription(Subscription):
    """`tickers`: a snapshot, then deltas when the best bid/ask or the last price moves
    (spot: a snapshot every time, as Bybit's spot tickers are)."""

    def begin(self) -> None:
        self._send("snapshot")

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if (step.book_ticker is not None or step.trade is not None) and not self.silent():
            self._send("snapshot" if self.outbox.category == "spot" else "delta")

    def _send(self, kind: str) -> None:
        market, symbol = self.source.markets[self.symbol], self.symbol
        frame = bybit_frames.ticker(kind, self.pair, market, self.source.stats[symbol],
                                    self.source.seq[symbol], _now_ms())  # fmt: skip
        self.outbox.queue(self, frame)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
