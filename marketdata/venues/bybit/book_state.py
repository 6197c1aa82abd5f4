"""One Bybit symbol's book, kept by the v5 rules. Pure: the resync itself is the caller's.

- Every `snapshot` replaces the book: the first after subscribing, the periodic re-send
  with an unchanged `u`, and one with `u == 1` after a Bybit service restart (the ids
  start over: not a gap).
- A `delta` applies absolute sizes ("0" deletes) and must carry `u == previous u + 1`.
  Bybit documents no previous-id field; any other `u` is a break: the book is discarded
  and the caller resubscribes the symbol's orderbook topic for a fresh snapshot. Deltas
  before that snapshot are ignored.
- After every message the book must not be crossed (best bid below best ask); a crossed
  book is discarded and resynced the same way.
Bybit sends the delete of a level pushed beyond the subscribed depth (no book of the
recording ever holds more than 200 levels a side), so the book is not cut here.
"""

from __future__ import annotations

import enum

from marketdata.book import OrderBook
from marketdata.venues.bybit.wire import BookMessage

DEPTHS = (1, 50, 200, 1000)  # orderbook.{depth}.{symbol} (spot, linear and inverse)
RESTART_ID = 1  # a snapshot's `u` after a Bybit service restart


class Outcome(enum.Enum):
    SNAPSHOT = "snapshot"  # the book was replaced by a snapshot
    RESTART = "restart"  # a snapshot with u == 1 replaced a synced book: ids start over
    APPLIED = "applied"  # a delta continued the book
    WAITING = "waiting"  # a delta before any snapshot (or after a break): ignored
    GAP = "gap"  # a delta's u did not follow: book discarded, resubscribe
    CROSSED = "crossed"  # best bid >= best ask after the message: discarded, resubscribe
    OVERSIZE = "oversize"  # a side past the book's level limit: discarded, resubscribe


class BybitBook:
    """Keeps one symbol's OrderBook in step with Bybit's update ids, or says it is not."""

    __slots__ = ("_u", "book", "expected", "got", "last_exchange_ts", "symbol", "synced")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = OrderBook()
        self.synced = False
        self._u = 0  # u of the last message applied (while synced)
        self.last_exchange_ts = 0  # ms, of the last message applied
        self.expected = 0  # after a GAP: the u that should have come
        self.got = 0  # ... and the one that did

    @property
    def last_id(self) -> int | None:
        """The `u` the book is exact at; None while not synced."""
        return self._u if self.synced else None

    def discard(self) -> None:
        """Forget the book until the next snapshot (a resubscribe, a lost connection)."""
        self.synced = False
        self.book.clear()

    def on_message(self, message: BookMessage) -> Outcome:
        book = self.book
        if message.snapshot:
            restart = self.synced and message.update_id == RESTART_ID
            if not book.load(message.bids, message.asks):
                self.discard()
                return Outcome.OVERSIZE
            outcome = Outcome.RESTART if restart else Outcome.SNAPSHOT
        elif not self.synced:
            return Outcome.WAITING
        elif message.update_id != self._u + 1:
            self.expected, self.got = self._u + 1, message.update_id
            self.discard()
            return Outcome.GAP
        elif not book.apply(message.bids, message.asks):
            self.discard()
            return Outcome.OVERSIZE
        else:
            outcome = Outcome.APPLIED
        if book.is_crossed():
            self.discard()
            return Outcome.CROSSED
        self.synced = True
        self._u = message.update_id
        self.last_exchange_ts = message.exchange_ts
        return outcome
