"""The venue's bookTicker as a check on the book, through the real parser, sync, audit and
SymbolFeed wiring, on the recorded capture."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from marketdata.book import OrderBook
from marketdata.config import ReconnectConfig
from marketdata.events import BookTicker, DepthDiff, Trade
from marketdata.metrics import Metrics
from marketdata.rest_gate import RestGate
from marketdata.sim.capture import CapturedFrame, load_capture
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed
from marketdata.sync import BookSync, Outcome
from marketdata.top_audit import TopAudit, Verdict
from marketdata.venues.binance import BinanceFutures
from tests.helpers import FUTURES_CAPTURE

SYMBOLS = ("AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT")
EXCHANGE = "binance_futures"


class NullPublisher:
    """Counts what the feed hands over; publishing itself is tested elsewhere."""

    def __init__(self) -> None:
        self.books_changed = 0

    def book_changed(self, state: SymbolState) -> None:
        self.books_changed += 1

    def trade(self, state: SymbolState, trade: Trade) -> None:
        pass


def make_feeds(metrics: Metrics, audit: bool = True) -> dict[str, SymbolFeed]:
    adapter, gate = BinanceFutures(), RestGate()
    session: Any = None  # no snapshot is fetched: the capture's own are handed over
    publisher: Any = NullPublisher()
    return {
        s: SymbolFeed(
            adapter,
            SymbolState(EXCHANGE, s, BookSync(adapter.continuity)),
            publisher,
            session,
            ReconnectConfig(),
            metrics,
            gate,
            30.0,
            top_audit_mismatches=3 if audit else 0,
        )  # fmt: skip
        for s in SYMBOLS
    }


def replay(feeds: dict[str, SymbolFeed], edit: Any = None, route: Any = None) -> None:
    """The capture in receive order through each symbol's feed; `edit(raw)` may rewrite
    a frame's text before it is parsed, and a frame `route(raw)` is false for is left out."""
    adapter = BinanceFutures()
    for record in load_capture(FUTURES_CAPTURE).records:
        if not isinstance(record, CapturedFrame):
            snapshot = adapter.parse_snapshot(record.symbol, record.raw.encode(), record.t)
            feeds[record.symbol]._apply_snapshot(snapshot)
        elif "@kline" not in record.stream:
            raw = edit(record.raw) if edit is not None else record.raw
            if route is not None and not route(raw):
                continue
            symbol = orjson.loads(raw)["data"]["s"]
            feeds[symbol].on_frame(raw.encode(), record.t)


def sample(metrics: Metrics, name: str, symbol: str) -> float:
    labels = {"exchange": EXCHANGE, "symbol": symbol}
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_real_capture_passes_every_check() -> None:
    metrics = Metrics()
    feeds = make_feeds(metrics)
    replay(feeds)
    for symbol in SYMBOLS:
        assert sample(metrics, "top_of_book_checks_total", symbol) >= 30, symbol
        assert sample(metrics, "top_of_book_mismatches_total", symbol) == 0, symbol
        assert sample(metrics, "resyncs_total", symbol) == 0, symbol
        assert sample(metrics, "book_synced", symbol) == 1, symbol


def quantity_change_to_drop(symbol: str) -> tuple[int, str, list[str]]:
    """(u of a diff, side, [price, qty]) to leave out of it: a quantity change at what becomes
    the best level, at a price the book already held, that stays the best level, untouched,
    for the longest stretch. Without it the chain is intact but the book's top is wrong."""
    touched: dict[tuple[str, str], set[int]] = defaultdict(set)  # (side, price) -> diffs
    best_prices: dict[str, list[str | None]] = {"b": [None], "a": [None]}  # after each diff
    candidates: list[tuple[int, int, str, list[str]]] = []
    for n, (data, before, after) in enumerate(applied_diffs(symbol), start=1):
        for side in ("b", "a"):
            best_prices[side].append(after[side][0][0] if after[side] else None)
            for price, qty in data[side]:
                touched[(side, price)].add(n)
                was = dict(before[side]).get(price)
                if after[side][:1] == [(price, qty)] and was not in (None, qty):
                    candidates.append((n, data["u"], side, [price, qty]))

    def wrong_at_the_top_for(candidate: tuple[int, int, str, list[str]]) -> int:
        at, _, side, (price, _qty) = candidate
        n = at + 1
        while n < len(best_prices[side]) and best_prices[side][n] == price:
            if n in touched[(side, price)]:
                break
            n += 1
        return n - at

    _, last_id, side, level = max(candidates, key=wrong_at_the_top_for)
    return last_id, side, level


def applied_diffs(symbol: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(diff data, top 5 before, top 5 after) for each diff of `symbol` applied, in order."""
    adapter, feeds = BinanceFutures(), make_feeds(Metrics(), audit=False)
    sync = feeds[symbol].state.sync
    for record in load_capture(FUTURES_CAPTURE).records:
        if not isinstance(record, CapturedFrame):
            if record.symbol == symbol:
                feeds[symbol]._apply_snapshot(
                    adapter.parse_snapshot(symbol, record.raw.encode(), 0.0)
                )
        elif "depthUpdate" in record.raw and f'"s":"{symbol}"' in record.raw:
            before = dict(zip("ba", sync.book.top(5), strict=True))
            (diff,) = adapter.parse(record.raw.encode(), 0.0)
            assert isinstance(diff, DepthDiff)
            if sync.on_diff(diff) is Outcome.APPLIED:
                after = dict(zip("ba", sync.book.top(5), strict=True))
                yield orjson.loads(record.raw)["data"], before, after


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_book_with_one_level_silently_wrong_is_caught_and_resynced(symbol: str) -> None:
    last_id, side, level = quantity_change_to_drop(symbol)

    def drop_level(raw: str) -> str:
        if "depthUpdate" not in raw or f'"u":{last_id},' not in raw:
            return raw
        message = orjson.loads(raw)
        message["data"][side].remove(level)
        return orjson.dumps(message).decode()

    metrics = Metrics()
    feeds = make_feeds(metrics)
    replay(feeds, drop_level)
    assert sample(metrics, "top_of_book_mismatches_total", symbol) >= 2  # in a row
    assert sample(metrics, "resyncs_total", symbol) == 1
    assert sample(metrics, "sequence_gaps_total", symbol) == 0  # the chain was never broken
    assert sample(metrics, "book_synced", symbol) == 0
    assert feeds[symbol].state.sync.needs_snapshot
    for other in SYMBOLS:
        if other != symbol:
            assert sample(metrics, "resyncs_total", other) == 0


def ticker(update_id: int, bid: str = "1.0", ask: str = "2.0") -> BookTicker:
    return BookTicker(EXCHANGE, "S", update_id, bid, "1", ask, "1", 0, 0.0)


def book(bid: str = "1.0", ask: str = "2.0") -> OrderBook:
    b = OrderBook()
    b.load([(float(bid), 1.0, bid, "1")], [(float(ask), 1.0, ask, "1")])
    return b


class Tally:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


def audit(max_mismatches: int = 3, window_s: float = 5.0) -> tuple[TopAudit, Tally, Tally]:
    checks, mismatches = Tally(), Tally()
    return TopAudit(checks, mismatches, max_mismatches, window_s), checks, mismatches


def test_each_top_is_judged_by_the_latest_ticker_at_or_below_its_id() -> None:
    top, checks, _ = audit()
    assert top.on_ticker(ticker(10, bid="0.5"), 0.0) is None
    assert top.on_book(20, book(), 0.0) is None  # a ticker in 11..20 may still come
    assert top.on_book(22, book(), 0.0) is None
    # A ticker inside the diff showed a top the diff has since moved past: not judged by.
    assert top.on_ticker(ticker(15), 0.0) is None
    assert checks.value == 0
    # Past both: the tops at 20 and 22 are judged by 15, the latest at or below them.
    assert top.on_ticker(ticker(25, bid="0.9"), 0.0) is Verdict.MATCH
    assert checks.value == 2
    assert top.on_book(23, book(bid="0.7"), 0.0) is Verdict.MISMATCH  # judged by 15 at once
    assert top.on_book(30, book(bid="0.9"), 0.0) is None
    assert top.on_ticker(ticker(31), 0.0) is Verdict.MATCH  # by 25


def test_a_mismatch_is_sustained_after_n_in_a_row_or_two_over_the_window() -> None:
    top, _, mismatches = audit(max_mismatches=3)
    wrong = book(bid="1.1")
    top.on_book(0, wrong, 0.0)  # the book before the ticker: it never makes the ticker's change
    top.on_ticker(ticker(1), 0.0)
    for book_id in (5, 6, 7):
        top.on_book(book_id, wrong, 0.0)
    assert top.on_ticker(ticker(9), 1.0) is Verdict.SUSTAINED
    assert mismatches.value == 3
    top, _, _ = audit(max_mismatches=3, window_s=5.0)
    top.on_ticker(ticker(1), 0.0)
    top.on_book(5, wrong, 0.0)
    assert top.on_ticker(ticker(9), 0.0) is Verdict.MISMATCH
    top.on_book(12, wrong, 6.0)
    assert top.on_ticker(ticker(13), 6.0) is Verdict.SUSTAINED


def test_a_match_ends_the_streak() -> None:
    top, _, _ = audit(max_mismatches=2)
    top.on_ticker(ticker(1), 0.0)
    top.on_book(5, book(bid="1.1"), 0.0)
    assert top.on_ticker(ticker(9), 0.0) is Verdict.MISMATCH
    top.on_book(12, book(), 0.0)
    assert top.on_ticker(ticker(13), 0.0) is Verdict.MATCH
    top.on_book(15, book(bid="1.1"), 0.0)
    assert top.on_ticker(ticker(19), 0.0) is Verdict.MISMATCH


def test_the_same_numbers_written_differently_match() -> None:
    top, _, _ = audit()
    top.on_ticker(ticker(1, bid="1.00"), 0.0)
    top.on_book(5, book(), 0.0)
    assert top.on_ticker(ticker(9), 0.0) is Verdict.MATCH


def test_a_book_that_moved_past_a_lost_ticker_counts_it_once() -> None:
    top, _, mismatches = audit(max_mismatches=3)
    top.on_book(0, book(), 0.0)
    top.on_ticker(ticker(1), 0.0)
    top.on_book(3, book(), 0.0)
    # The ticker at 4 that moved the bid to 1.1 is lost: every top after it disagrees with 1.
    for book_id in (5, 6, 7, 8):
        top.on_book(book_id, book(bid="1.1"), 0.0)
    assert top.on_ticker(ticker(9, bid="1.1"), 0.1) is Verdict.MISMATCH
    assert mismatches.value == 4
    top.on_book(10, book(bid="1.1"), 0.2)
    assert top.on_ticker(ticker(12, bid="1.1"), 0.2) is Verdict.MATCH


# One ticker of each symbol whose loss alone used to throw the book away.
LOST_TICKERS = (1, 4, 7, 10)


@pytest.mark.parametrize("lost", LOST_TICKERS)
def test_a_lost_ticker_never_resyncs_the_book(lost: int) -> None:
    tickers = [
        r.raw
        for r in load_capture(FUTURES_CAPTURE).records
        if isinstance(r, CapturedFrame) and "@bookTicker" in r.stream
    ]
    dropped = tickers[lost]
    symbol = orjson.loads(dropped)["data"]["s"]

    def lose_it(raw: str) -> str:  # as another symbol's ticker, which the audit never sees
        return raw.replace(f'"s":"{symbol}"', '"s":"LOST"') if raw == dropped else raw

    metrics = Metrics()
    feeds = make_feeds(metrics)
    replay(feeds, lose_it, route=lambda raw: "LOST" not in raw)
    assert sample(metrics, "top_of_book_mismatches_total", symbol) >= 3  # stale comparisons
    for each in SYMBOLS:
        assert sample(metrics, "resyncs_total", each) == 0, each
        assert sample(metrics, "book_synced", each) == 1, each
