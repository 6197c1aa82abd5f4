"""One `book` subscription's view of a generated market: the top `depth` levels per side,
and the levels each market step changes in it, as Kraken sends them. Pure.

Kraken's rules (and its client's, venues/kraken/book_state.py): an update carries the
levels that changed within the subscribed depth, qty 0 for one that left the book, and
the levels that moved into range when others left; a level pushed out of range by a
better one gets no delete (the client cuts its book to `depth` after each message).
The checksum is CRC32 over the top 10 asks then the top 10 bids, each level's price then
quantity at the pair's precision without the `.` and leading zeros: for integer ticks
and lots that text is just their decimal digits, so this is worked out independently of
the client's rendering of the numbers on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from zlib import crc32

import orjson
from sortedcontainers import SortedDict

from marketdata.sim.market import SimMarket, fixed

CHECKSUM_LEVELS = 10
DEPTHS = (10, 25, 100, 500, 1000)
Levels = list[tuple[int, int]]  # (ticks, lots), best first
_SIDES = (("b", -1), ("a", 1))  # bids are kept by -ticks, so both sides rank ascending


class BookView:
    """What a client holding this subscription has, level for level."""

    def __init__(self, depth: int) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Kraken book depth {depth} is not one of {DEPTHS}")
        self.depth = depth
        self._sides: dict[str, SortedDict[int, int]] = {"b": SortedDict(), "a": SortedDict()}

    def snapshot(self, market: SimMarket) -> tuple[Levels, Levels]:
        """Take the market's top levels afresh: (bids, asks) to send as a snapshot."""
        for side, sign in _SIDES:
            view = self._sides[side]
            view.clear()
            view.update((sign * t, lots) for t, lots in _top(market, side, self.depth))
        return self.levels("b"), self.levels("a")

    def update(
        self, market: SimMarket, changed: Iterable[tuple[str, int]]
    ) -> tuple[Levels, Levels]:
        """Follow one market step that touched `changed` ((side, ticks)); the levels to send."""
        touched: dict[str, list[int]] = {"b": [], "a": []}
        for side, ticks in changed:
            touched[side].append(ticks)
        bids = self._update_side(market, "b", -1, touched["b"])
        asks = self._update_side(market, "a", 1, touched["a"])
        return bids, asks

    def catch_up(self, market: SimMarket) -> tuple[Levels, Levels]:
        """Follow any number of market steps at once (after a silence): the levels to send."""
        out = []
        for side, sign in _SIDES:
            view, book = self._sides[side], _book(market, side)
            fresh = {sign * t: lots for t, lots in _top(market, side, self.depth)}
            sent = {sign * k: 0 for k in view if k not in fresh and sign * k not in book}
            sent.update((sign * k, lots) for k, lots in fresh.items() if view.get(k) != lots)
            view.clear()
            view.update(fresh)
            out.append(sorted(sent.items(), key=lambda level: sign * level[0]))
        return out[0], out[1]

    def levels(self, side: str, limit: int | None = None) -> Levels:
        sign = -1 if side == "b" else 1
        items = self._sides[side].items()
        return [(sign * k, lots) for k, lots in (items if limit is None else items[:limit])]

    def checksum(self) -> int:
        text = "".join(
            f"{ticks}{lots}"
            for side in ("a", "b")
            for ticks, lots in self.levels(side, CHECKSUM_LEVELS)
        )
        return crc32(text.encode())

    def _update_side(self, market: SimMarket, side: str, sign: int, prices: list[int]) -> Levels:
        view, book, depth = self._sides[side], _book(market, side), self.depth
        # Below a full view's last level the market may hold levels the client never had.
        bound = view.peekitem(-1)[0] if len(view) >= depth else None
        sent: dict[int, int] = {}
        for ticks in prices:
            key, lots = sign * ticks, book.get(ticks, 0)
            held = view.get(key)
            if held is not None:
                if lots != held:
                    if lots:
                        view[key] = lots
                    else:
                        del view[key]
                    sent[ticks] = lots
            elif lots and (bound is None or key < bound):
                view[key] = sent[ticks] = lots
        while len(view) > depth:
            view.popitem(-1)  # pushed out of range: no delete is sent
        while len(view) < depth:  # levels moving into range from below
            last = sign * view.peekitem(-1)[0] if view else None
            level = _next(book, sign, last)
            if level is None:
                break
            view[sign * level[0]] = sent[level[0]] = level[1]
        return sorted(sent.items(), key=lambda level: sign * level[0])


def _book(market: SimMarket, side: str) -> SortedDict[int, int]:
    return market.bids if side == "b" else market.asks


def _top(market: SimMarket, side: str, n: int) -> Levels:
    if side == "b":
        return list(reversed(market.bids.items()[-n:]))
    return list(market.asks.items()[:n])


def _next(book: SortedDict[int, int], sign: int, after: int | None) -> tuple[int, int] | None:
    """The market's best level worse than `after` (its best level if None)."""
    if sign > 0:
        i = 0 if after is None else book.bisect_right(after)
        return book.peekitem(i) if i < len(book) else None
    i = len(book) - 1 if after is None else book.bisect_left(after) - 1
    return book.peekitem(i) if i >= 0 else None


def number(units: int, decimals: int) -> orjson.Fragment:
    """Integer units of 10**-decimals as a JSON number, trailing zeros dropped as Kraken
    does (`0.566`, `60000`, `0`): exact digits, never a float or an exponent."""
    return orjson.Fragment(plain(fixed(units, decimals)))


def plain(text: str) -> str:
    """A fixed-point text without trailing zeros ("0.5660" -> "0.566", "7.0" -> "7")."""
    return text.rstrip("0").rstrip(".") if "." in text else text
