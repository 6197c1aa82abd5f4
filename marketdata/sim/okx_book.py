"""One `books` subscription's view of a generated market: the top 400 levels per side, and
the levels each market step changes in it, as OKX sends them. Pure.

An update carries every level that changed within the 400, sz "0" for one that left
them (also when a better level pushed it out), and the levels that moved into range. A
level is `[px, sz, "0", numOrders]`, numbers as texts without trailing zeros. The legacy
checksum is CRC32 of the top 25 levels interleaved `bidPx:bidSz:askPx:askSz:...` over
those texts, as a signed 32-bit integer.
"""

from __future__ import annotations

from collections.abc import Iterable
from zlib import crc32

from sortedcontainers import SortedDict

from marketdata.sim.kraken_book import plain
from marketdata.sim.market import SimMarket, fixed

DEPTH = 400  # the `books` channel
CHECKSUM_LEVELS = 25
Levels = list[tuple[int, int]]  # (ticks, lots), best first; lots 0: deleted
_SIDES = (("b", -1), ("a", 1))  # bids are kept by -ticks, so both sides rank ascending


class BookView:
    """What a client holding this subscription has, level for level."""

    def __init__(self, price_dp: int, qty_dp: int, depth: int = DEPTH) -> None:
        self.price_dp = price_dp
        self.qty_dp = qty_dp
        self.depth = depth
        self._sides: dict[str, SortedDict[int, int]] = {"b": SortedDict(), "a": SortedDict()}
        self._whole = {"b": False, "a": False}  # the view holds the market's entire side

    def snapshot(self, market: SimMarket) -> tuple[Levels, Levels]:
        """Take the market's top levels afresh: (bids, asks) to send as a snapshot."""
        for side, sign in _SIDES:
            view = self._sides[side]
            view.clear()
            view.update((sign * t, lots) for t, lots in top(market, side, self.depth))
            self._whole[side] = len(_book(market, side)) <= self.depth
        return self.levels("b"), self.levels("a")

    def update(
        self, market: SimMarket, changed: Iterable[tuple[str, int]]
    ) -> tuple[Levels, Levels]:
        """Follow one market step that touched `changed` ((side, ticks)); the levels to send."""
        touched: dict[str, list[int]] = {"b": [], "a": []}
        for side, ticks in changed:
            touched[side].append(ticks)
        out = []
        for side, sign in _SIDES:
            book = _book(market, side)
            if self._whole[side] and len(book) <= self.depth:
                out.append(self._touched(side, sign, book, touched[side]))
            else:
                out.append(self._rebuilt(market, side, sign))
        return out[0], out[1]

    def catch_up(self, market: SimMarket) -> tuple[Levels, Levels]:
        """Follow any number of market steps at once (after a silence): the levels to send."""
        bids, asks = (self._rebuilt(market, side, sign) for side, sign in _SIDES)
        return bids, asks

    def levels(self, side: str, limit: int | None = None) -> Levels:
        sign = -1 if side == "b" else 1
        items = self._sides[side].items()
        return [(sign * k, lots) for k, lots in (items if limit is None else items[:limit])]

    def checksum(self) -> int:
        bids = [self.texts(level) for level in self.levels("b", CHECKSUM_LEVELS)]
        asks = [self.texts(level) for level in self.levels("a", CHECKSUM_LEVELS)]
        parts: list[str] = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                parts += bids[i]
            if i < len(asks):
                parts += asks[i]
        value = crc32(":".join(parts).encode())
        return value - (1 << 32) if value >= 1 << 31 else value

    def texts(self, level: tuple[int, int]) -> tuple[str, str]:
        """A level's price and size as OKX writes them."""
        return plain(fixed(level[0], self.price_dp)), plain(fixed(level[1], self.qty_dp))

    def _touched(
        self, side: str, sign: int, book: SortedDict[int, int], prices: list[int]
    ) -> Levels:
        view = self._sides[side]
        sent: dict[int, int] = {}
        for ticks in prices:
            key, lots = sign * ticks, book.get(ticks, 0)
            if view.get(key, 0) != lots:
                if lots:
                    view[key] = lots
                else:
                    del view[key]
                sent[ticks] = lots
        return sorted(sent.items(), key=lambda level: sign * level[0])

    def _rebuilt(self, market: SimMarket, side: str, sign: int) -> Levels:
        view = self._sides[side]
        fresh = {sign * t: lots for t, lots in top(market, side, self.depth)}
        sent = {sign * k: 0 for k in view if k not in fresh}
        sent.update((sign * k, lots) for k, lots in fresh.items() if view.get(k) != lots)
        view.clear()
        view.update(fresh)
        self._whole[side] = len(_book(market, side)) <= self.depth
        return sorted(sent.items(), key=lambda level: sign * level[0])


def _book(market: SimMarket, side: str) -> SortedDict[int, int]:
    return market.bids if side == "b" else market.asks


def top(market: SimMarket, side: str, n: int) -> Levels:
    """The market's best `n` levels of a side, best first."""
    if side == "b":
        return list(reversed(market.bids.items()[-n:]))
    return list(market.asks.items()[:n])
