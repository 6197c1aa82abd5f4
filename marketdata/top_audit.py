"""The book's best bid/ask, checked against the venue's own top-of-book stream.

On Binance futures, after each applied diff the best bid and ask (price and quantity)
equal the latest bookTicker whose `u` is not above the diff's `u` (every check of the
recorded capture holds). Each stream comes in id order, but not in step with the other:
a ticker inside a diff's 100 ms shows a top the diff has since moved past, and a ticker
may come before or after the diffs around it. So the top after each diff is kept until it
is certain which ticker to judge it by: once a ticker past the diff's id has come, the one
before it is the latest at or below that id.

One mismatch can be a ticker lost in transit; a book that stays wrong keeps mismatching.
A lost ticker leaves the tops after it judged by the one before it, so the book moving past
a ticker counts once however many tops disagree with it. Only a book that has not moved
since before the ticker, while the ticker has, counts at every top: the venue told of a
change the book never made. A mismatch is sustained after `max_mismatches` counted in a
row, or two in a row at least `window_s` apart: then the book is wrong and must be rebuilt.
No I/O.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Protocol

from marketdata.book import OrderBook
from marketdata.events import BookTicker, Level

DEFAULT_MAX_MISMATCHES = 3
DEFAULT_WINDOW_S = 5.0
MAX_UNJUDGED = 256  # tops kept while no ticker past them comes (a quiet top of book)

Top = tuple[int, Level | None, Level | None]  # (book id, best bid, best ask)


class Count(Protocol):
    def inc(self, amount: float = 1.0) -> None: ...


class Verdict(enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"  # the book's top differs from the venue's; not yet sustained
    SUSTAINED = "sustained"  # it has kept differing: the book is wrong


_SEVERITY = {Verdict.MATCH: 0, Verdict.MISMATCH: 1, Verdict.SUSTAINED: 2}


class TopAudit:
    """One symbol's comparisons. Feed it every ticker and every id the book reaches."""

    def __init__(
        self,
        checks: Count,
        mismatches: Count,
        max_mismatches: int = DEFAULT_MAX_MISMATCHES,
        window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.max_mismatches = max_mismatches
        self.window_s = window_s
        self._checks = checks
        self._mismatches = mismatches
        self._last: BookTicker | None = None  # the newest ticker
        self._prev: BookTicker | None = None  # the one before it
        self._before_last: Top | None = None  # the newest top below the newest ticker's id
        self._before_prev: Top | None = None  # the same for the one before it
        self._unjudged: deque[Top] = deque(maxlen=MAX_UNJUDGED)  # no ticker past them yet
        self._streak = 0  # mismatches counted in a row
        self._since = 0.0  # when the first of them was seen
        self._counted: BookTicker | None = None  # the ticker the streak last counted
        self.evidence = ""  # the last mismatch, for a log line

    def reset(self) -> None:
        """The connection (and so both streams) starts afresh."""
        self._last = self._prev = None
        self._before_last = self._before_prev = None
        self.book_discarded()

    def book_discarded(self) -> None:
        """The book was thrown away: nothing left to judge, no streak."""
        self._unjudged.clear()
        self._streak = 0
        self._counted = None

    def on_book(self, book_id: int, book: OrderBook, now: float) -> Verdict | None:
        """The book is now exact as of `book_id` (a diff applied, or a snapshot loaded)."""
        last = self._last
        if last is None or last.update_id <= book_id:
            bid, ask = book.best_levels()  # a later ticker at or below book_id may still come
            self._unjudged.append((book_id, bid, ask))
            return None
        prev = self._prev
        if prev is None or prev.update_id > book_id:
            return None  # the ticker for this id is not among those kept
        bid, ask = book.best_levels()
        verdict = self._judge(book_id, bid, ask, prev, self._before_prev, now)
        self._before_last = (book_id, bid, ask)
        return verdict

    def on_ticker(self, ticker: BookTicker, now: float) -> Verdict | None:
        """Judge the tops this ticker is past; the worst verdict, None if none was judged."""
        last = self._last
        if last is not None and ticker.update_id < last.update_id:
            return None  # out of order: not a ticker to judge by
        self._prev, self._last = last, ticker
        before = self._before_prev = self._before_last
        unjudged = self._unjudged
        worst = None
        while unjudged and unjudged[0][0] < ticker.update_id:
            top = self._before_last = unjudged.popleft()
            book_id, bid, ask = top
            if last is not None and last.update_id <= book_id:
                verdict = self._judge(book_id, bid, ask, last, before, now)
                if worst is None or _SEVERITY[verdict] > _SEVERITY[worst]:
                    worst = verdict
        return worst

    def _judge(
        self,
        book_id: int,
        bid: Level | None,
        ask: Level | None,
        ticker: BookTicker,
        before: Top | None,  # the book's top just before the ticker
        now: float,
    ) -> Verdict:
        self._checks.inc()
        if _same(bid, ticker.bid_price, ticker.bid_qty) and _same(
            ask, ticker.ask_price, ticker.ask_qty
        ):
            self._streak = 0
            self._counted = None
            return Verdict.MATCH
        self._mismatches.inc()
        self.evidence = (
            f"book at id {book_id}: {_text(bid)} / {_text(ask)}, bookTicker u={ticker.update_id}: "
            f"{ticker.bid_qty}@{ticker.bid_price} / {ticker.ask_qty}@{ticker.ask_price}"
        )
        if ticker is self._counted and (before is None or before[1] != bid or before[2] != ask):
            return Verdict.MISMATCH  # the book moved past a ticker already counted: stale?
        self._counted = ticker
        self._streak += 1
        if self._streak == 1:
            self._since = now
        if self._streak >= self.max_mismatches or (
            self._streak >= 2 and now - self._since >= self.window_s
        ):
            self.book_discarded()
            return Verdict.SUSTAINED
        return Verdict.MISMATCH


def _same(level: Level | None, price_text: str, qty_text: str) -> bool:
    """Same level: the same text, or the same numbers written differently ("7.61" "7.610")."""
    if level is None:
        return False
    if level[2] == price_text and level[3] == qty_text:
        return True
    return level[0] == float(price_text) and level[1] == float(qty_text)


def _text(level: Level | None) -> str:
    return "none" if level is None else f"{level[3]}@{level[2]}"
