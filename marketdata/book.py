"""OrderBook: two SortedDicts of price levels. No I/O, no asyncio.

Keys are floats (bids negated, so index 0 is the best level on both sides); values keep
the exchange's text so that output is exactly what the exchange sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedDict

from marketdata.events import Level

PriceLevel = tuple[str, str]  # (price_text, qty_text)


class OrderBook:
    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()  # -price -> (price_text, qty_text)
        self._asks: SortedDict = SortedDict()  # price -> (price_text, qty_text)

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book with a snapshot's levels."""
        self._bids = SortedDict({-p: (pt, qt) for p, q, pt, qt in bids if q > 0})
        self._asks = SortedDict({p: (pt, qt) for p, q, pt, qt in asks if q > 0})

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Set each level to its absolute quantity; quantity 0 removes the level."""
        side = self._bids
        for price, qty, price_text, qty_text in bids:
            if qty == 0:
                side.pop(-price, None)
            else:
                side[-price] = (price_text, qty_text)
        side = self._asks
        for price, qty, price_text, qty_text in asks:
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = (price_text, qty_text)

    def best_bid(self) -> PriceLevel | None:
        return self._bids.peekitem(0)[1] if self._bids else None

    def best_ask(self) -> PriceLevel | None:
        return self._asks.peekitem(0)[1] if self._asks else None

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask: the book cannot be right."""
        if not self._bids or not self._asks:
            return False
        return -self._bids.peekitem(0)[0] >= self._asks.peekitem(0)[0]

    def top(self, depth: int) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """The best `depth` levels of each side, best first."""
        return self._bids.values()[:depth], self._asks.values()[:depth]

    def level_counts(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)
