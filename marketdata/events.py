"""Normalized market events: the only vocabulary shared by adapters, sync and publishing.

Prices and quantities travel as both a float (for ordering and arithmetic checks) and the
exchange's own decimal text (for output). A float is never formatted back into a price.

Events are not changed once an adapter builds them, yet they are not frozen: a frozen
dataclass sets each field through object.__setattr__, which made building a DepthDiff
cost 1.4 us more, about a tenth of all the work per depth message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# (price, qty, price_text, qty_text); qty == 0 deletes the level.
Level = tuple[float, float, str, str]
Side = Literal["buy", "sell"]


@dataclass(slots=True)
class DepthDiff:
    """An incremental L2 update: absolute quantities for the levels that changed."""

    exchange: str
    symbol: str
    first_id: int  # U: first update id in the event
    last_id: int  # u: last update id in the event
    prev_last_id: int | None  # pu: last id of the previous event (futures only)
    bids: list[Level]
    asks: list[Level]
    exchange_ts: int  # E: event time, ms
    recv_ts: float  # our receive time, Unix seconds


@dataclass(slots=True)
class BookSnapshot:
    """A full book (to some depth) as of update id `last_id`."""

    exchange: str
    symbol: str
    last_id: int
    bids: list[Level]
    asks: list[Level]
    exchange_ts: int
    recv_ts: float


@dataclass(slots=True)
class Trade:
    """One trade as the exchange reports it (Binance futures: one aggTrade).

    `trade_id` is the venue's id as text: OKX, Coinbase and others send ids that are not
    all integers, and one type keeps the published and stored contract the same for every
    venue. `sequence` is set where the venue's ids count each symbol's trades one by one
    (Binance aggTrade `a`, Kraken `trade_id`): repeats and gaps are found on it.
    """

    exchange: str
    symbol: str
    trade_id: str
    price: float
    qty: float
    price_text: str
    qty_text: str
    side: Side  # the taker's side
    exchange_ts: int  # trade time, ms
    recv_ts: float
    backfilled: bool = False  # fetched over REST to fill a gap in the stream's ids
    sequence: int | None = None  # the id as a counter, where the venue's ids are one


@dataclass(slots=True)
class BookTicker:
    """Best bid/ask as pushed by the exchange's own top-of-book stream."""

    exchange: str
    symbol: str
    update_id: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    exchange_ts: int
    recv_ts: float


Event = DepthDiff | Trade | BookTicker
