"""OrderBook: per side, a dict of levels and a SortedList of their prices. No I/O.

The dict answers "is this price here" and holds the level; the SortedList keeps the
order, and is touched only when a price appears or goes. Most diff levels change the
quantity at a price already held, so they cost one dict store (a SortedDict would run a
Python method per level: this layout applies diffs in about half the time). Bid prices
are negated in the SortedList so index 0 is the best level on both sides. Levels keep
the exchange's text, so output is exactly what the exchange sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from marketdata.events import Level

PriceLevel = tuple[str, str]  # (price_text, qty_text)

# Levels held per side, at most. A snapshot brings 1000 (the largest limit); diffs add the
# prices that come into play beyond them, which only matter as the market moves there.
# 5000 is five snapshots' worth, about 1.6 MB per side; past it the book is rebuilt.
DEFAULT_MAX_LEVELS = 5000


class OrderBook:
    __slots__ = ("_ask_prices", "_asks", "_bid_prices", "_bids", "max_levels")

    def __init__(self, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        self.max_levels = max_levels
        self._bids: dict[float, Level] = {}
        self._asks: dict[float, Level] = {}
        self._bid_prices: SortedList[float] = SortedList()  # -price, best (highest) first
        self._ask_prices: SortedList[float] = SortedList()  # price, best (lowest) first

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
        """Replace the whole book with a snapshot's levels; False when a side holds more
        than max_levels (nothing is kept then)."""
        self._bids = {level[0]: level for level in bids if level[1] > 0}
        self._asks = {level[0]: level for level in asks if level[1] > 0}
        if not self._within_limit():
            self.clear()
            return False
        self._bid_prices = SortedList(-price for price in self._bids)
        self._ask_prices = SortedList(self._asks)
        return True

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
        """Set each level to its absolute quantity; quantity 0 removes the level. False when
        a side now holds more than max_levels: the caller must rebuild the book."""
        levels, prices = self._bids, self._bid_prices
        for level in bids:
            price = level[0]
            if level[1] == 0:
                if levels.pop(price, None) is not None:
                    prices.remove(-price)
            else:
                if price not in levels:
                    prices.add(-price)
                levels[price] = level
        levels, prices = self._asks, self._ask_prices
        for level in asks:
            price = level[0]
            if level[1] == 0:
                if levels.pop(price, None) is not None:
                    prices.remove(price)
            else:
                if price not in levels:
                    prices.add(price)
                levels[price] = level
        return len(self._bids) <= self.max_levels >= len(levels)  # inline: once per diff

    def _within_limit(self) -> bool:
        return len(self._bids) <= self.max_levels >= len(self._asks)

    def best_bid(self) -> PriceLevel | None:
        return _text(self._bids[-self._bid_prices[0]]) if self._bids else None

    def best_ask(self) -> PriceLevel | None:
        return _text(self._asks[self._ask_prices[0]]) if self._asks else None

    def best_levels(self) -> tuple[Level | None, Level | None]:
        """The best bid and ask as held (numbers and text), None for an empty side."""
        bid = self._bids[-self._bid_prices[0]] if self._bids else None
        return bid, self._asks[self._ask_prices[0]] if self._asks else None

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask: the book cannot be right."""
        if not self._bids or not self._asks:
            return False
        return -self._bid_prices[0] >= self._ask_prices[0]

    def top(self, depth: int) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """The best `depth` levels of each side, best first."""
        bids, asks = self._bids, self._asks
        return (
            [_text(bids[-price]) for price in self._bid_prices.islice(0, depth)],
            [_text(asks[price]) for price in self._ask_prices.islice(0, depth)],
        )

    def level_counts(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)

    def truncate(self, depth: int) -> None:
        """Drop every level beyond the best `depth` of each side (for venues that send no
        delete for a level pushed out of the subscribed depth, e.g. Kraken)."""
        if len(self._bid_prices) > depth:
            for key in self._bid_prices.islice(depth):
                del self._bids[-key]
            del self._bid_prices[depth:]
        if len(self._ask_prices) > depth:
            for key in self._ask_prices.islice(depth):
                del self._asks[key]
            del self._ask_prices[depth:]

    def best_bids(self, depth: int) -> list[Level]:
        """The best `depth` bid Levels, best first. A SortedList slice within its first
        sublist is one list slice: cheaper than `top` for a few levels per message."""
        bids = self._bids
        return [bids[-price] for price in self._bid_prices[:depth]]

    def best_asks(self, depth: int) -> list[Level]:
        """The best `depth` ask Levels, best first."""
        asks = self._asks
        return [asks[price] for price in self._ask_prices[:depth]]


def _text(level: Level) -> PriceLevel:
    return level[2], level[3]
