"""One Kraken symbol's book, kept by the v2 rules. Pure: the resync itself is the caller's.

Kraken sends no sequence numbers: the checksum on every book message is the only gap
detector. A snapshot replaces the book; an update applies all its levels (qty 0 deletes;
deleting an absent level is fine), then both sides are cut to the subscribed depth (no
delete comes for a level pushed out of range), then the checksum of the top 10 levels
must equal the message's. On a mismatch the book is discarded and the outcome says this
symbol needs a resync (unsubscribe and subscribe again for a fresh snapshot); updates
that arrive before that snapshot are ignored.

The checksum covers only the top 10 levels of each side, so an update whose every level
lies beyond the 10th (the common case on a deep book) leaves it unchanged: the checksum
worked out for the previous message is compared again instead of being recomputed. Each
level's rendered digits are cached, as the top levels repeat from one message to the next.
"""

from __future__ import annotations

import enum
import math
from zlib import crc32

from marketdata.book import OrderBook
from marketdata.events import Level
from marketdata.venues.kraken.checksum import CHECKSUM_LEVELS, RenderError, render
from marketdata.venues.kraken.wire import BookMessage, Precision

DEPTHS = (10, 25, 100, 500, 1000)
_TOKEN_CACHE_MAX = 20_000  # rendered levels kept per symbol before the cache starts over
_INF = math.inf


class Outcome(enum.Enum):
    APPLIED = "applied"  # the book is exact: its checksum matched
    WAITING = "waiting"  # an update before any snapshot (or after a mismatch): ignored
    RESYNC = "resync"  # checksum mismatch: book discarded, resubscribe this symbol


class KrakenBook:
    """Keeps one symbol's OrderBook exactly in step with Kraken, or says it is not."""

    __slots__ = (
        "_ask_bound",
        "_bid_bound",
        "_checksum",
        "_tokens",
        "book",
        "depth",
        "expected",
        "got",
        "precision",
        "symbol",
        "synced",
    )

    def __init__(self, symbol: str, depth: int, precision: Precision) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Kraken book depth {depth} is not one of {DEPTHS}")
        self.symbol = symbol
        self.depth = depth
        self.precision = precision
        self.book = OrderBook()
        self.synced = False
        self.expected = 0  # after a RESYNC: the checksum the message carried
        self.got = 0  # ... and the one the book gave
        self._checksum = -1  # of the book as it stands, when synced
        self._ask_bound = _INF  # 10th best ask (inf with fewer): asks above it are unseen
        self._bid_bound = -_INF  # 10th best bid (-inf with fewer)
        self._tokens: dict[Level, str] = {}

    def on_message(self, message: BookMessage) -> Outcome:
        book = self.book
        if message.snapshot:
            book.load(message.bids, message.asks)
            book.truncate(self.depth)
            got = self.checksum()
        elif self.synced:
            book.apply(message.bids, message.asks)
            book.truncate(self.depth)
            got = self._checksum if self._outside_top(message) else self.checksum()
        else:
            return Outcome.WAITING
        if got == message.checksum:
            self.synced = True
            return Outcome.APPLIED
        self.expected, self.got = message.checksum, got
        self.synced = False
        book.clear()
        return Outcome.RESYNC

    def _outside_top(self, message: BookMessage) -> bool:
        """Every level of the update lies beyond the top 10 of its side (as it was)."""
        bound = self._ask_bound
        for level in message.asks:
            if level[0] <= bound:
                return False
        bound = self._bid_bound
        for level in message.bids:
            if level[0] >= bound:
                return False
        return True

    def checksum(self) -> int:
        """The checksum of the book as it stands; -1 when a level cannot be rendered at
        the pair's precision (the precision is stale: a resync with fresh precision)."""
        bids, asks = self.book.best_levels(CHECKSUM_LEVELS)
        self._ask_bound = asks[-1][0] if len(asks) == CHECKSUM_LEVELS else _INF
        self._bid_bound = bids[-1][0] if len(bids) == CHECKSUM_LEVELS else -_INF
        tokens = self._tokens
        if len(tokens) > _TOKEN_CACHE_MAX:
            tokens.clear()
        parts = []
        try:
            for level in asks:
                token = tokens.get(level)
                if token is None:
                    token = tokens[level] = self._render(level)
                parts.append(token)
            for level in bids:
                token = tokens.get(level)
                if token is None:
                    token = tokens[level] = self._render(level)
                parts.append(token)
        except RenderError:
            self._checksum = -1
            return -1
        self._checksum = crc32("".join(parts).encode())
        return self._checksum

    def _render(self, level: Level) -> str:
        precision = self.precision
        return render(level[2], precision.price) + render(level[3], precision.qty)
