"""What one OKX connection is subscribed to, and the frames each subscription makes.

A subscription listens to its instrument's market (okx_market.OkxSource) and queues its
frames on its connection as each step happens. `books` keeps the view of the top 400
levels its client holds (okx_book.BookView) and chains its updates on the book's seqId:
each carries the seqId of the last one this subscription sent as its prevSeqId (a step
that changes nothing within the 400 levels sends nothing). During a silence (the
scenario's `silence_ms`) a subscription sends nothing: the book's next update then
carries every change since, and the trades held back follow in one frame.
"""

from __future__ import annotations

from typing import Any, Protocol

from marketdata.sim import okx_frames
from marketdata.sim.market import SimMarket, StepFrames
from marketdata.sim.okx_book import BookView, Levels
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.scenarios import Scenario, is_silent

CORRUPT = 0x5A5A5A5A  # xor'ed into a checksum the scenario wants wrong


class Outbox(Protocol):
    """The connection a subscription's frames go out on."""

    scenario: Scenario

    def queue(self, subscription: Subscription | None, frame: bytes) -> None: ...

    def corrupts_next_update(self) -> bool:
        """Counts a book update; True when the scenario wants it to fail its check."""


class Subscription:
    channel = ""

    def __init__(self, outbox: Outbox, source: OkxSource, inst_id: str) -> None:
        self.outbox = outbox
        self.source = source
        self.symbol = inst_id
        self.active = True

    @property
    def arg(self) -> dict[str, str]:
        return {"channel": self.channel, "instId": self.symbol}

    def start(self) -> None:
        market = self.source.listen(self.symbol, self.on_step)
        self.begin(market)

    def stop(self) -> None:
        self.active = False
        self.source.forget(self.symbol, self.on_step)

    def begin(self, market: SimMarket) -> None:
        """Send what a fresh subscription starts with."""

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        """Send what this market step means for this subscription."""

    def silent(self) -> bool:
        return is_silent(self.outbox.scenario, self.symbol)


class BooksSubscription(Subscription):
    channel = "books"

    def __init__(self, outbox: Outbox, source: OkxSource, inst_id: str) -> None:
        super().__init__(outbox, source, inst_id)
        shape = source.pairs[inst_id].shape
        self.view = BookView(shape.price_dp, shape.qty_dp)
        self.last_seq = -1  # the seqId of the last message sent
        self.behind = False  # a silence left the view behind the market

    def begin(self, market: SimMarket) -> None:
        bids, asks = self.view.snapshot(market)
        self._send("snapshot", bids, asks, self.source.seq[self.symbol], corrupt=False)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if self.silent():
            self.behind = True
            return
        if self.behind:
            self.behind = False
            bids, asks = self.view.catch_up(market)
        else:
            bids, asks = self.view.update(market, step.changed)
        if bids or asks:
            corrupt = self.outbox.corrupts_next_update()
            self._send("update", bids, asks, self.source.seq[self.symbol], corrupt)

    def _send(self, action: str, bids: Levels, asks: Levels, seq: int, corrupt: bool) -> None:
        checksum = self.view.checksum() if self.source.checksums else 0
        prev = self.last_seq
        if corrupt and checksum:
            checksum = checksum ^ CORRUPT or 1  # never right: the client must resync
        elif corrupt:
            prev -= 1  # no checksum to break: the seqId chain breaks instead
        texts = self.view.texts
        frame = okx_frames.book(
            action, self.symbol, [texts(b) for b in bids], [texts(a) for a in asks],
            checksum, prev, seq,
        )  # fmt: skip
        self.last_seq = seq
        self.outbox.queue(self, frame)


class TradesSubscription(Subscription):
    channel = "trades"

    def __init__(self, outbox: Outbox, source: OkxSource, inst_id: str) -> None:
        super().__init__(outbox, source, inst_id)
        self.held: list[dict[str, Any]] = []  # trades a silence holds back

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if step.trade is not None:
            self.held.append(step.trade)
        if self.held and not self.silent():
            self.outbox.queue(self, okx_frames.trades(self.symbol, self.held))
            self.held = []


class BboSubscription(Subscription):
    """`bbo-tbt`: the best bid and offer whenever either changes (and on subscribing)."""

    channel = "bbo-tbt"

    def begin(self, market: SimMarket) -> None:
        self._send(market)

    def on_step(self, market: SimMarket, step: StepFrames) -> None:
        if step.book_ticker is not None and not self.silent():
            self._send(market)

    def _send(self, market: SimMarket) -> None:
        shape = self.source.pairs[self.symbol].shape
        view = BookView(shape.price_dp, shape.qty_dp)
        bid, ask = view.texts(market.bids.peekitem(-1)), view.texts(market.asks.peekitem(0))
        self.outbox.queue(self, okx_frames.bbo(self.symbol, bid, ask, self.source.seq[self.symbol]))


CHANNELS: dict[str, type[Subscription]] = {
    "books": BooksSubscription,
    "trades": TradesSubscription,
    "bbo-tbt": BboSubscription,
}
