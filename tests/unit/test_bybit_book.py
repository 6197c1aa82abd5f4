"""Bybit book rules on the recorded linear capture (real frames, real parser) and by hand."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

from marketdata.venues.bybit.book_state import BybitBook, Outcome
from marketdata.venues.bybit.wire import BookMessage, Ticker, Trades, parse
from tests.bybit_v5 import DEPTH, SYMBOLS, Capture, book_message, load

DELTAS = 1594  # book deltas in the capture
TRADES = 327  # trades in its publicTrade frames


@cache
def capture() -> Capture:
    return load()


Outcomes = Counter[tuple[str, Outcome]]


def replay(frames: list[bytes]) -> tuple[dict[str, BybitBook], Outcomes, int]:
    """The books after `frames`, the outcome of each book message, and how many times a
    book was crossed after a message (checked apart from the book's own rule)."""
    books = {symbol: BybitBook(symbol) for symbol in SYMBOLS}
    outcomes: Outcomes = Counter()
    crossed = 0
    for frame in frames:
        for event in parse(frame, 0.0):
            if isinstance(event, BookMessage):
                book = books[event.symbol]
                outcomes[event.symbol, book.on_message(event)] += 1
                bid, ask = book.book.best_levels()
                crossed += bid is not None and ask is not None and bid[0] >= ask[0]
    return books, outcomes, crossed


def test_every_symbol_syncs_from_its_snapshot_and_every_delta_chains() -> None:
    cap = capture()
    assert sum(cap.deltas.values()) == DELTAS
    assert cap.snapshots == {symbol: 1 for symbol in SYMBOLS}
    books, outcomes, crossed = replay(cap.topic_frames("orderbook"))
    expected: Outcomes = Counter()
    for symbol in SYMBOLS:
        expected[symbol, Outcome.SNAPSHOT] = 1
        expected[symbol, Outcome.APPLIED] = cap.deltas[symbol]
    assert outcomes == expected  # no gap, no crossed book, nothing waiting
    assert crossed == 0
    assert all(book.synced for book in books.values())
    # Bybit deletes what leaves the depth: no side ever holds more than 200 levels
    assert max(max(book.book.level_counts()) for book in books.values()) == DEPTH


def test_the_books_last_ids_are_the_captures_last_u() -> None:
    books, _, _ = replay(capture().topic_frames("orderbook"))
    last: dict[str, int] = {}
    for frame in capture().frames:
        message = json.loads(frame)
        if message.get("topic", "").startswith("orderbook."):
            last[message["data"]["s"]] = message["data"]["u"]
    assert {symbol: book.last_id for symbol, book in books.items()} == last


def test_one_missing_delta_is_one_gap_of_that_symbol() -> None:
    frames = capture().topic_frames("orderbook")
    index = _nth_delta(frames, "ETHUSDT", 10)
    books, outcomes, _ = replay(frames[:index] + frames[index + 1 :])
    gaps = {key: n for key, n in outcomes.items() if key[1] is Outcome.GAP}
    assert gaps == {("ETHUSDT", Outcome.GAP): 1}
    assert not books["ETHUSDT"].synced  # the rest waits for a new snapshot
    assert outcomes["ETHUSDT", Outcome.WAITING] == capture().deltas["ETHUSDT"] - 11
    assert all(books[s].synced for s in SYMBOLS if s != "ETHUSDT")


def _nth_delta(frames: list[bytes], symbol: str, n: int) -> int:
    seen = 0
    for i, frame in enumerate(frames):
        message = json.loads(frame)
        if message.get("type") == "delta" and message["data"]["s"] == symbol:
            seen += 1
            if seen == n:
                return i
    raise AssertionError(f"{symbol} has fewer than {n} deltas")


def _messages(*frames: bytes) -> list[BookMessage]:
    return [e for f in frames for e in parse(f, 0.0) if isinstance(e, BookMessage)]


def _apply(book: BybitBook, frame: bytes) -> Outcome:
    (message,) = _messages(frame)
    return book.on_message(message)


def test_a_snapshot_with_u_1_resets_the_book_without_a_gap() -> None:
    book = BybitBook("X")
    assert _apply(book, book_message("X", "snapshot", 500, [["9", "1"]], [["11", "1"]])) \
        is Outcome.SNAPSHOT  # fmt: skip
    assert _apply(book, book_message("X", "delta", 501, [["10", "2"]], [])) is Outcome.APPLIED
    restart = book_message("X", "snapshot", 1, [["7", "3"]], [["8", "3"]])
    assert _apply(book, restart) is Outcome.RESTART
    assert book.book.top(5) == ([("7", "3")], [("8", "3")])
    assert book.last_id == 1
    assert _apply(book, book_message("X", "delta", 2, [], [["8", "0"]])) is Outcome.APPLIED
    assert book.book.top(5) == ([("7", "3")], [])


def test_a_resent_snapshot_with_the_same_u_replaces_the_book() -> None:
    book = BybitBook("X")
    _apply(book, book_message("X", "snapshot", 7, [["9", "1"], ["8", "1"]], [["11", "1"]]))
    assert _apply(book, book_message("X", "snapshot", 7, [["9", "2"]], [["12", "1"]])) \
        is Outcome.SNAPSHOT  # fmt: skip
    assert book.book.top(5) == ([("9", "2")], [("12", "1")])
    assert _apply(book, book_message("X", "delta", 8, [["8.5", "1"]], [])) is Outcome.APPLIED


def test_deltas_set_absolute_sizes_and_0_deletes() -> None:
    book = BybitBook("X")
    _apply(book, book_message("X", "snapshot", 1, [["9", "1"], ["8", "1"]], [["11", "1"]]))
    _apply(book, book_message("X", "delta", 2, [["9", "0.5"], ["8", "0"], ["7", "4"]],
                              [["11", "0"], ["12", "2"]]))  # fmt: skip
    assert book.book.top(5) == ([("9", "0.5"), ("7", "4")], [("12", "2")])
    assert _apply(book, book_message("X", "delta", 3, [["6", "0"]], [])) is Outcome.APPLIED


def test_a_repeated_or_skipped_u_is_a_gap_and_deltas_wait_for_a_snapshot() -> None:
    for bad_u in (5, 7, 4):
        book = BybitBook("X")
        _apply(book, book_message("X", "snapshot", 5, [["9", "1"]], [["11", "1"]]))
        assert _apply(book, book_message("X", "delta", bad_u, [], [])) is Outcome.GAP
        assert (book.expected, book.got, book.synced, book.last_id) == (6, bad_u, False, None)
        assert book.book.level_counts() == (0, 0)
        assert _apply(book, book_message("X", "delta", 6, [], [])) is Outcome.WAITING
        assert _apply(book, book_message("X", "snapshot", 9, [["9", "1"]], [])) \
            is Outcome.SNAPSHOT  # fmt: skip


def test_a_crossed_book_is_discarded() -> None:
    book = BybitBook("X")
    _apply(book, book_message("X", "snapshot", 5, [["9", "1"]], [["11", "1"]]))
    assert _apply(book, book_message("X", "delta", 6, [["11", "1"]], [])) is Outcome.CROSSED
    assert not book.synced
    crossed_snapshot = book_message("X", "snapshot", 9, [["12", "1"]], [["11", "1"]])
    assert _apply(book, crossed_snapshot) is Outcome.CROSSED


def test_every_trade_of_the_capture_parses_once_with_its_own_id() -> None:
    cap = capture()
    assert len(cap.trade_ids) == TRADES
    assert len(set(cap.trade_ids)) == TRADES  # Bybit sent no trade twice
    parsed = [
        (t.symbol, t.trade_id)
        for f in cap.topic_frames("publicTrade")
        for e in parse(f, 0.0)
        if isinstance(e, Trades)
        for t in e.trades
    ]
    assert parsed == cap.trade_ids


def test_tickers_best_bid_ask_agree_with_the_book_only_mostly() -> None:
    """Not an audit: at each tickers message that carries (or follows) a best bid/ask, the
    book's best prices as of then agree 736 times in 740; the ticker is not generated in
    step with the orderbook topic."""
    books = {symbol: BybitBook(symbol) for symbol in SYMBOLS}
    top: dict[str, list[str | None]] = {symbol: [None, None] for symbol in SYMBOLS}
    agree = Counter[bool]()
    for frame in capture().topic_frames("orderbook", "tickers"):
        for event in parse(frame, 0.0):
            if isinstance(event, BookMessage):
                books[event.symbol].on_message(event)
            elif isinstance(event, Ticker):
                known = top[event.symbol]
                known[0] = event.bid_price or known[0]
                known[1] = event.ask_price or known[1]
                book = books[event.symbol]
                if book.synced and None not in known:
                    bid, ask = book.book.best_bid(), book.book.best_ask()
                    agree[bid is not None and ask is not None and [bid[0], ask[0]] == known] += 1
    assert agree == {True: 736, False: 4}
