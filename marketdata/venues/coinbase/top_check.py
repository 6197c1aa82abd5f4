"""The book's best bid and ask prices, checked against Coinbase's own `ticker`.

The ticker carries best_bid/best_ask (and their quantities) but no id to place it among
the l2_data frames. In the recording, BTC-USD's ticker prices equal the book's at the
ticker's place in the connection's sequence on all 70 tickers after the snapshot; ETH-USD's
on 62 of 84: the ticker is not made in step with l2_data and is mostly one book event ahead
(up to 5 behind). The quantities agree less often (58 of BTC-USD's 70): a ticker is sent
when the price or the last trade moves, not on every size change, so they are not checked.

So a ticker is judged by prices against the product's tops within `reach` book events of
its place, before or after it: it matches when any of them has its best bid and best ask.
One that matches none is a mismatch (on the recording there are none, at a reach of 5 or
more); `max_mismatches` tickers in a row that match nothing mean the book is wrong, and the
product is resynced. A book that stops moving while the ticker moves piles up waiting
tickers: past `MAX_WAITING` the oldest is judged with what has come. No I/O.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Protocol

from marketdata.book import OrderBook
from marketdata.events import Level
from marketdata.venues.coinbase.wire import Ticker

DEFAULT_REACH = 8  # book events either side of a ticker's place
DEFAULT_MAX_MISMATCHES = 3
MAX_WAITING = 16  # tickers waiting for the book events after them

Top = tuple[Level | None, Level | None]  # (best bid, best ask); None for an empty side


class Count(Protocol):
    def inc(self, amount: float = 1.0) -> None: ...


class Verdict(enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"  # no top within reach had the ticker's prices; not yet sustained
    SUSTAINED = "sustained"  # `max_mismatches` in a row: the book is wrong


class _Waiting:
    __slots__ = ("after", "ticker", "top")

    def __init__(self, ticker: Ticker, top: Top) -> None:
        self.ticker = ticker
        self.top = top
        self.after = 0  # book events seen since the ticker


class TopCheck:
    """One product's checks. Feed it every ticker and every book event applied."""

    def __init__(
        self,
        checks: Count,
        mismatches: Count,
        reach: int = DEFAULT_REACH,
        max_mismatches: int = DEFAULT_MAX_MISMATCHES,
    ) -> None:
        self.reach = reach
        self.max_mismatches = max_mismatches
        self._checks = checks
        self._mismatches = mismatches
        self._recent: deque[Top] = deque(maxlen=reach + 1)  # the current top last
        self._waiting: deque[_Waiting] = deque()
        self._streak = 0
        self.evidence = ""  # the last mismatch, for a log line

    def book_discarded(self) -> None:
        """The book was thrown away (a resync, a lost connection): nothing to judge."""
        self._recent.clear()
        self._waiting.clear()
        self._streak = 0

    def on_book(self, book: OrderBook) -> Verdict | None:
        """The book took an event. The worst verdict on the tickers it settles, if any."""
        top = _top(book)
        self._recent.append(top)
        worst = None
        for waiting in list(self._waiting):
            waiting.after += 1
            if _same(top, waiting.ticker):
                self._waiting.remove(waiting)
                worst = _worse(worst, self._judged(True, waiting, top))
        while self._waiting and self._waiting[0].after >= self.reach:
            waiting = self._waiting.popleft()
            worst = _worse(worst, self._judged(False, waiting, top))
        return worst

    def on_ticker(self, ticker: Ticker) -> Verdict | None:
        """A ticker while the book is synced: its verdict now, or None while it waits."""
        if not self._recent:
            return None  # no book yet to judge by
        if any(_same(top, ticker) for top in self._recent):
            return self._judged(True, None, self._recent[-1])
        self._waiting.append(_Waiting(ticker, self._recent[-1]))
        if len(self._waiting) > MAX_WAITING:
            return self._judged(False, self._waiting.popleft(), self._recent[-1])
        return None

    def _judged(self, match: bool, waiting: _Waiting | None, top: Top) -> Verdict:
        self._checks.inc()
        if match:
            self._streak = 0
            return Verdict.MATCH
        assert waiting is not None
        self._mismatches.inc()
        ticker = waiting.ticker
        self.evidence = (
            f"ticker {ticker.bid_price} / {ticker.ask_price}; book {_text(waiting.top)} at the "
            f"ticker, {_text(top)} {waiting.after} book events later"
        )
        self._streak += 1
        if self._streak >= self.max_mismatches:
            self.book_discarded()
            return Verdict.SUSTAINED
        return Verdict.MISMATCH


def _top(book: OrderBook) -> Top:
    return book.best_levels()


def _same(top: Top, ticker: Ticker) -> bool:
    """The same prices: the same text, or the same numbers written differently."""
    return _at(top[0], ticker.bid_price) and _at(top[1], ticker.ask_price)


def _at(level: Level | None, price_text: str) -> bool:
    return level is not None and (level[2] == price_text or level[0] == float(price_text))


def _text(top: Top) -> str:
    bid, ask = top
    return f"{'none' if bid is None else bid[2]} / {'none' if ask is None else ask[2]}"


_SEVERITY = {Verdict.MATCH: 0, Verdict.MISMATCH: 1, Verdict.SUSTAINED: 2}


def _worse(a: Verdict | None, b: Verdict) -> Verdict:
    return b if a is None or _SEVERITY[b] > _SEVERITY[a] else a
