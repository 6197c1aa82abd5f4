"""Everything the service knows about one symbol of one exchange.

The book itself is kept by the venue's own rules (a BookSync bridging REST snapshots by
ids, a KrakenBook checked by checksums, ...): this holds it as a BookView, what publishing
needs of any of them.
"""

from __future__ import annotations

import time
from typing import Any, Generic, Protocol, TypeVar

from marketdata.book import OrderBook, PriceLevel
from marketdata.channels import Channels, channels_for
from marketdata.events import Trade
from marketdata.market_stats import RollingTradeStats
from marketdata.messages import market_data_message, orderbook_message
from marketdata.spool import book_entry
from marketdata.trade_ids import TradeIds


class BookView(Protocol):
    """A venue's book keeper, as publishing sees it."""

    @property
    def synced(self) -> bool:
        """The book is exact (as of last_id, where the venue has update ids)."""

    @property
    def last_id(self) -> int | None:
        """The venue's update id the book is exact at; None where the venue has none."""

    @property
    def last_exchange_ts(self) -> int:
        """The venue's time (ms) of the last update applied; 0 while unknown."""

    @property
    def book(self) -> OrderBook: ...


View = TypeVar("View", bound=BookView)


class SymbolState(Generic[View]):
    def __init__(self, exchange: str, symbol: str, sync: View) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.channels: Channels = channels_for(exchange, symbol)
        self.sync = sync
        self.stats = RollingTradeStats()
        self.trade_ids = TradeIds()  # repeats and gaps in the trade ids
        self.last_recv_ts = 0.0  # receive time of the last diff applied
        self.book_unpublished = False  # a diff was applied since the book was last published

    def record_trade(self, trade: Trade) -> None:
        """A trade about to be published (in id order; trade_ids has sorted out repeats)."""
        self.stats.add(trade)

    def render_orderbook(self, depth: int) -> bytes | None:
        """Top-`depth` book JSON, or None while the book is not synced."""
        top = self._synced_top(depth)
        if top is None:
            return None
        bids, asks, last_id = top
        return orderbook_message(
            self.exchange, self.symbol, bids, asks, last_id, self.sync.last_exchange_ts,
            self.last_recv_ts,
        )  # fmt: skip

    def spool_book_entry(self, depth: int, time_ms: int) -> dict[str, str | bytes] | None:
        """A top-`depth` snapshot for spool:books, or None while the book is not synced."""
        top = self._synced_top(depth)
        if top is None:
            return None
        bids, asks, last_id = top
        return book_entry(
            self.exchange, self.symbol, last_id, time_ms, self.sync.last_exchange_ts,
            self.last_recv_ts, bids, asks,
        )  # fmt: skip

    def _synced_top(
        self, depth: int
    ) -> tuple[list[PriceLevel], list[PriceLevel], int | None] | None:
        """(bids, asks, the id they are exact at), or None while the book is not synced."""
        sync = self.sync
        if not sync.synced:
            return None
        bids, asks = sync.book.top(depth)
        return bids, asks, sync.last_id

    def render_market_data(self) -> bytes:
        book = self.sync.book
        synced = self.sync.synced
        return market_data_message(
            self.exchange,
            self.symbol,
            book.best_bid() if synced else None,
            book.best_ask() if synced else None,
            self.stats.last_price,
            self.stats.last_qty,
            self.stats.window(),
            int(time.time() * 1000),
        )


AnyState = SymbolState[Any]  # what publishing handles: any venue's symbol
