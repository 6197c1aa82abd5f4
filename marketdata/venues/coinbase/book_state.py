"""One Coinbase product's book, kept by the level2 rules. Pure: the resync is the caller's.

A `snapshot` event replaces the book (the whole book: Coinbase sends every level, tens of
thousands on BTC-USD); an `update` sets each level to its absolute `new_quantity`, "0"
deleting it. Updates are not numbered per product: the connection's `sequence_num`
(marketdata.venues.coinbase.sequence) is what proves none was lost, and Coinbase documents
no checksum. What the book can check itself is that it is not crossed after each event (a
best bid at or above the best ask cannot be right) and that it stays within its level
bound. Either failure discards the book: the caller resubscribes the product for a new
snapshot, and updates that come before it are ignored.
"""

from __future__ import annotations

import enum

from marketdata.book import OrderBook
from marketdata.venues.coinbase.wire import BookEvent

# Levels held per side, at most. The recorded BTC-USD snapshot holds 27,236 offers and
# 18,764 bids (ETH-USD: 16,399 and 6,935): the whole book, far from the top.
DEFAULT_MAX_LEVELS = 100_000


class Outcome(enum.Enum):
    APPLIED = "applied"  # the book took the event (a snapshot loaded, an update applied)
    WAITING = "waiting"  # an update before any snapshot (or after a discard): ignored
    CROSSED = "crossed"  # best bid >= best ask after the event: book discarded
    OVERFLOW = "overflow"  # a side grew past max_levels: book discarded


class CoinbaseBook:
    """Keeps one product's OrderBook in step with Coinbase's level2, or says it is not."""

    __slots__ = ("book", "last_exchange_ts", "symbol", "synced")

    def __init__(self, symbol: str, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        self.symbol = symbol
        self.book = OrderBook(max_levels)
        self.synced = False
        self.last_exchange_ts = 0  # ms, of the last event applied

    @property
    def last_id(self) -> None:
        """Coinbase numbers frames per connection, not per book: no update id to give."""
        return None

    def discard(self) -> None:
        """Forget the book until the next snapshot (a resync, a lost connection)."""
        self.synced = False
        self.book.clear()

    def on_event(self, event: BookEvent) -> Outcome:
        book = self.book
        if event.snapshot:
            within = book.load(event.bids, event.asks)
        elif self.synced:
            within = book.apply(event.bids, event.asks)
        else:
            return Outcome.WAITING
        if not within:
            self.discard()
            return Outcome.OVERFLOW
        if book.is_crossed():
            self.discard()
            return Outcome.CROSSED
        self.synced = True
        if event.exchange_ts:
            self.last_exchange_ts = event.exchange_ts
        return Outcome.APPLIED
