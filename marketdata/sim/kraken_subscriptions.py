"""What one Kraken connection is subscribed to, and the frames each subscription makes.

A subscription listens to its pair's market (kraken_market.KrakenSource) and queues its
frames on its connection as each step happens; a `book` one keeps the view of the top
`depth` levels its client holds (kraken_book.BookView). During a silence (the scenario's
`silence_ms`) a subscription sends nothing: the book's next update then carries every
change since, as one coalesced update, and the trades held back follow in one frame.
"""

from __future__ import annotations

from typing import Any, Protocol

from marketdata.sim import kraken_frames
from marketdata.sim.kraken_book import BookView
from marketdata.sim.kraken_market import KrakenSource, Pair, now_rfc3339
from marketdata.sim.market import SimMarket, StepFrames
from marketdata.sim.scenarios import Scenario, is_silent


class Outbox(Protocol):
    """The connection a subscription's frames go out on."""

    scenario: Scenario

    def queue(self, subscription: Subscription | None, frame: bytes) -> None: ...

    def corrupts_next_update(self) -> bool:
        """Counts a book update; True when the scenario wants its checksum wrong."""


class Subscription:
    channel = ""

    def __init__(self, outbox: Outbox, source: KrakenSource, pair: Pair, snapshot: bool) -> None:
        self.outbox = outbox
        self.source = source
        self.pair = pair
        self.symbol = pair.symbol
        self.snapshot = snapshot
        self.active = True

    def start(self) -> None:
        market = self.source.listen(self.symbol, self.on_step)
        self.begin(market)

    def stop(self) -> None:
        self.active = False
        self.source.forget(self.symbol, self.on_step)

    def result(self, method: str) -> dict[str, Any]:
        """The `result` of a successful (un)subscribe reply."""
        if method == "unsubscribe":
            return {"channel": self.channel, "symbol": self.symbol}
        return {"channel": self.channel, "snapshot": self.snapshot, "symbol": self.symbol}

    def begin(self, market: SimMarket) -> None:
        """Send what a fresh subscription starts with."""

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        """Send what this market step means for this subscription."""

    def silent(self) -> bool:
        return is_silent(self.outbox.scenario, self.symbol)


class BookSubscription(Subscription):
    channel = "book"

    def __init__(
        self, outbox: Outbox, source: KrakenSource, pair: Pair, snapshot: bool, depth: int
    ) -> None:
        super().__init__(outbox, source, pair, snapshot)
        self.view = BookView(depth)
        self.behind = False  # a silence left the view behind the market

    def result(self, method: str) -> dict[str, Any]:
        return dict(sorted({"depth": self.view.depth, **super().result(method)}.items()))

    def begin(self, market: SimMarket) -> None:
        bids, asks = self.view.snapshot(market)
        if self.snapshot:
            frame = kraken_frames.book(
                "snapshot", self.pair, bids, asks, self.view.checksum(), now_rfc3339()
            )
            self.outbox.queue(self, frame)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if self.silent():
            self.behind = True
            return
        if self.behind:
            self.behind = False
            bids, asks = self.view.catch_up(market)
        else:
            bids, asks = self.view.update(market, step.changed)
        if not (bids or asks):
            return
        checksum = self.view.checksum()
        if self.outbox.corrupts_next_update():
            checksum ^= 0x5A5A5A5A  # never equal: the client must resync this symbol
        frame = kraken_frames.book("update", self.pair, bids, asks, checksum, now_rfc3339())
        self.outbox.queue(self, frame)


class TradeSubscription(Subscription):
    channel = "trade"

    def __init__(self, outbox: Outbox, source: KrakenSource, pair: Pair, snapshot: bool) -> None:
        super().__init__(outbox, source, pair, snapshot)
        self.held: list[dict[str, Any]] = []  # trades a silence holds back

    def begin(self, market: SimMarket) -> None:
        if self.snapshot:
            recent = self.source.recent_trades[self.symbol]
            self.outbox.queue(self, kraken_frames.trades("snapshot", recent))

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if step.trade is not None:
            self.held.append(self.source.recent_trades[self.symbol][-1])
        if self.held and not self.silent():
            self.outbox.queue(self, kraken_frames.trades("update", self.held))
            self.held = []


class TickerSubscription(Subscription):
    channel = "ticker"

    def __init__(
        self, outbox: Outbox, source: KrakenSource, pair: Pair, snapshot: bool, trigger: str
    ) -> None:
        super().__init__(outbox, source, pair, snapshot)
        self.trigger = trigger  # "trades": on each trade; "bbo": on each best bid/ask change

    def result(self, method: str) -> dict[str, Any]:
        return dict(sorted({"event_trigger": self.trigger, **super().result(method)}.items()))

    def begin(self, market: SimMarket) -> None:
        if self.snapshot:
            self._send("snapshot", market)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        event = step.trade if self.trigger == "trades" else step.book_ticker
        if event is not None and not self.silent():
            self._send("update", market)

    def _send(self, kind: str, market: SimMarket) -> None:
        stats = self.source.stats[self.symbol]
        self.outbox.queue(self, kraken_frames.ticker(kind, self.pair, market, stats))
