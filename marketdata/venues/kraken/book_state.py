"""One Kraken symbol's book, kept by the v2 rules. Pure: the resync itself is the caller's.

Kraken sends no sequence numbers: the checksum on every book message is the only gap
detector. A snapshot replaces the book; an update applies all its levels (qty 0 deletes;
deleting an absent level is fine), then both sides are cut to the subscribed depth (no
delete comes for a level pushed out of range), then the checksum of the top 10 levels
must equal the message's. On a mismatch the book is discarded and the outcome says this
symbol needs a resync (unsubscribe and subscribe again for a fresh snapshot); updates
that arrive before that snapshot are ignored.

The checksum is CRC32(asks text + bids text) over the top 10 levels of each side, so a
side none of whose updated levels reaches its 10th level keeps its text: only the sides
an update touches are rendered again (most updates touch one side, many touch none on a
deep book), and CRC32 goes on from the asks' value over the bids' bytes. Each level's
rendered digits are cached, as the top levels repeat from one message to the next.
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
        "_ask_crc",
        "_bid_bound",
        "_bid_bytes",
        "_checksum",
        "_tokens",
        "book",
        "depth",
        "expected",
        "got",
        "last_exchange_ts",
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
        self.last_exchange_ts = 0  # ms, of the last message applied
        self._tokens: dict[Level, str] = {}
        # Of the book as it stands (valid while synced): its checksum, CRC32 of the asks'
        # text, the bids' text, and each side's 10th price (beyond it: outside the top 10).
        self._checksum = -1
        self._ask_crc = 0
        self._bid_bytes = b""
        self._ask_bound = _INF  # inf with fewer than 10 asks: any ask reaches the top
        self._bid_bound = -_INF

    @property
    def last_id(self) -> None:
        """Kraken sends no update ids: the checksum is what proves the book."""
        return None

    def set_precision(self, precision: Precision) -> None:
        """The pair's precision, from the `instrument` channel (it may change)."""
        if precision != self.precision:
            self.precision = precision
            self._tokens.clear()
            self.discard()

    def discard(self) -> None:
        """Forget the book until the next snapshot (a resubscribe, a lost connection)."""
        self.synced = False
        self.book.clear()
        self._ask_bound, self._bid_bound = _INF, -_INF

    def on_message(self, message: BookMessage) -> Outcome:
        book = self.book
        if message.snapshot:
            book.load(message.bids, message.asks)
            book.truncate(self.depth)
            got = self._recompute(True, True)
        elif self.synced:
            book.apply(message.bids, message.asks)
            book.truncate(self.depth)
            got = self._recompute(self._reaches_asks(message), self._reaches_bids(message))
        else:
            return Outcome.WAITING
        if got == message.checksum:
            self.synced = True
            self.last_exchange_ts = message.exchange_ts
            return Outcome.APPLIED
        self.expected, self.got = message.checksum, got
        self.synced = False
        book.clear()
        return Outcome.RESYNC

    def _reaches_asks(self, message: BookMessage) -> bool:
        bound = self._ask_bound
        for level in message.asks:
            if level[0] <= bound:
                return True
        return False

    def _reaches_bids(self, message: BookMessage) -> bool:
        bound = self._bid_bound
        for level in message.bids:
            if level[0] >= bound:
                return True
        return False

    def checksum(self) -> int:
        """The checksum of the book as it stands, worked out afresh."""
        return self._recompute(True, True)

    def _recompute(self, asks_changed: bool, bids_changed: bool) -> int:
        """-1 when a level cannot be rendered at the pair's precision (stale precision:
        the caller resyncs, with fresh precision)."""
        if not (asks_changed or bids_changed):
            return self._checksum
        try:
            if asks_changed:
                asks = self.book.best_asks(CHECKSUM_LEVELS)
                self._ask_bound = asks[-1][0] if len(asks) == CHECKSUM_LEVELS else _INF
                self._ask_crc = crc32(self._text(asks))
            if bids_changed:
                bids = self.book.best_bids(CHECKSUM_LEVELS)
                self._bid_bound = bids[-1][0] if len(bids) == CHECKSUM_LEVELS else -_INF
                self._bid_bytes = self._text(bids)
        except RenderError:
            self._ask_bound, self._bid_bound = _INF, -_INF  # recompute both next time
            self._checksum = -1
            return -1
        self._checksum = crc32(self._bid_bytes, self._ask_crc)
        return self._checksum

    def _text(self, levels: list[Level]) -> bytes:
        tokens = self._tokens
        if len(tokens) > _TOKEN_CACHE_MAX:
            tokens.clear()
        parts = []
        for level in levels:
            token = tokens.get(level)
            if token is None:
                precision = self.precision
                token = render(level[2], precision.price) + render(level[3], precision.qty)
                tokens[level] = token
            parts.append(token)
        return "".join(parts).encode()
