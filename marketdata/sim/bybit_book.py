"""One `orderbook.{depth}.{symbol}` topic of a generated market: the top `depth` levels per
side, its update id `u`, and the delta each market step makes of it, as Bybit sends them.
Pure.

Bybit's rules (and its client's, venues/bybit/book_state.py): a delta carries the levels
that changed within the depth with their absolute size, "0" for one that left, including
a level pushed out of range by a better one (the client does not cut its book), and the
levels that moved into range when others left. `u` is +1 on every delta the topic sends
and is the same for every connection (it belongs to Bybit's book, not to a connection); a
snapshot carries the `u` of the last delta.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedDict

from marketdata.sim.market import SimMarket

DEPTHS = (1, 50, 200, 1000)
Levels = list[tuple[int, int]]  # (ticks, lots), best first; lots 0: the level left
_SIDES = (("b", -1), ("a", 1))  # bids are kept by -ticks, so both sides rank ascending


class BookTopic:
    """What a client holding this topic has, level for level, and the topic's `u`."""

    def __init__(self, depth: int, first_u: int) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Bybit book depth {depth} is not one of {DEPTHS}")
        self.depth = depth
        self.u = first_u
        self._sides: dict[str, SortedDict[int, int]] = {"b": SortedDict(), "a": SortedDict()}

    def load(self, market: SimMarket) -> None:
        """Take the market's top levels afresh (a new topic)."""
        for side, sign in _SIDES:
            view = self._sides[side]
            view.clear()
            view.update((sign * t, lots) for t, lots in _top(market, side, self.depth))

    def snapshot(self) -> tuple[Levels, Levels]:
        """(bids, asks) as the topic stands: a snapshot's levels."""
        return self.levels("b"), self.levels("a")

    def step(self, market: SimMarket, changed: Iterable[tuple[str, int]]) -> tuple[Levels, Levels]:
        """Follow one market step that touched `changed` ((side, ticks)): the delta's levels;
        `u` moves on when there are any."""
        touched: dict[str, list[int]] = {"b": [], "a": []}
        for side, ticks in changed:
            touched[side].append(ticks)
        bids = self._step_side(market, "b", -1, touched["b"])
        asks = self._step_side(market, "a", 1, touched["a"])
        if bids or asks:
            self.u += 1
        return bids, asks

    def levels(self, side: str) -> Levels:
        sign = -1 if side == "b" else 1
        return [(sign * k, lots) for k, lots in self._sides[side].items()]

    def _step_side(self, market: SimMarket, side: str, sign: int, prices: list[int]) -> Levels:
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
        while len(view) > depth:  # pushed out of range: Bybit sends its delete
            key, _ = view.popitem(-1)
            sent[sign * key] = 0
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
