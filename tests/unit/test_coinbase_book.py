"""The recorded Coinbase connection through the real parser, sequence check, book, ticker
check and trade gate: what the recording proves about each."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pytest

from marketdata.venues.coinbase.book_state import CoinbaseBook, Outcome
from marketdata.venues.coinbase.sequence import SequenceCheck
from marketdata.venues.coinbase.top_check import TopCheck, Verdict
from marketdata.venues.coinbase.trades import TradeGate
from marketdata.venues.coinbase.wire import BookEvent, Ticker, Trades, parse
from tests.coinbase_capture import PRODUCTS, Capture, load


class Tally:
    def __init__(self) -> None:
        self.count = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.count += amount


@dataclass
class Replay:
    outcomes: Counter[tuple[str, Outcome]] = field(default_factory=Counter)
    crossed_after: int = 0  # events after which a synced book was crossed
    gaps: list[str] = field(default_factory=list)
    at_place: Counter[tuple[str, bool]] = field(default_factory=Counter)  # ticker == book
    verdicts: Counter[tuple[str, Verdict]] = field(default_factory=Counter)
    checks: dict[str, tuple[Tally, Tally]] = field(default_factory=dict)
    trades: list[tuple[str, str, str]] = field(default_factory=list)  # symbol, id, side
    books: dict[str, CoinbaseBook] = field(default_factory=dict)


def replay(frames: list[bytes]) -> Replay:
    out = Replay()
    out.books = books = {p: CoinbaseBook(p) for p in PRODUCTS}
    out.checks = {p: (Tally(), Tally()) for p in PRODUCTS}
    top = {p: TopCheck(*out.checks[p]) for p in PRODUCTS}
    sequence = SequenceCheck()
    gate = TradeGate()
    for frame in frames:
        parsed = parse(frame, 1.0)
        assert parsed.sequence is not None
        if (gap := sequence.check(parsed.sequence)) is not None:
            out.gaps.append(str(gap))
        for event in parsed.events:
            if isinstance(event, BookEvent):
                book = books[event.symbol]
                outcome = book.on_event(event)
                out.outcomes[(event.symbol, outcome)] += 1
                if outcome is Outcome.APPLIED:
                    bid, ask = book.book.best_levels()
                    assert bid is not None
                    assert ask is not None
                    out.crossed_after += bid[0] >= ask[0]
                    if (verdict := top[event.symbol].on_book(book.book)) is not None:
                        out.verdicts[(event.symbol, verdict)] += 1
            elif isinstance(event, Ticker) and books[event.symbol].synced:
                bid, ask = books[event.symbol].book.best_levels()
                assert bid is not None
                assert ask is not None
                same = (bid[2], ask[2]) == (event.bid_price, event.ask_price)
                out.at_place[(event.symbol, same)] += 1
                if (verdict := top[event.symbol].on_ticker(event)) is not None:
                    out.verdicts[(event.symbol, verdict)] += 1
            elif isinstance(event, Trades):
                out.trades += [(t.symbol, t.trade_id, t.side) for t in gate.fresh(event)]
    return out


@pytest.fixture(scope="module")
def capture() -> Capture:
    return load()


@pytest.fixture(scope="module")
def recorded(capture: Capture) -> Replay:
    return replay(capture.frames)


def test_the_recording_is_one_unbroken_sequence(capture: Capture, recorded: Replay) -> None:
    assert len(capture.frames) == 1030
    assert recorded.gaps == []


def test_both_products_sync_from_their_snapshots_and_apply_every_update(
    recorded: Replay,
) -> None:
    assert dict(recorded.outcomes) == {
        ("BTC-USD", Outcome.APPLIED): 400,  # its snapshot and 399 updates
        ("ETH-USD", Outcome.APPLIED): 375,
    }
    assert all(book.synced for book in recorded.books.values())
    assert recorded.books["BTC-USD"].book.level_counts() != (0, 0)


def test_the_book_is_never_crossed(recorded: Replay) -> None:
    assert recorded.crossed_after == 0


def test_btc_ticker_prices_equal_the_book_at_the_tickers_place(recorded: Replay) -> None:
    # BTC-USD: every ticker after the snapshot; ETH-USD's ticker is not made in step.
    assert recorded.at_place == {
        ("BTC-USD", True): 70,
        ("ETH-USD", True): 62,
        ("ETH-USD", False): 22,
    }


def test_the_top_check_finds_every_ticker_within_reach(recorded: Replay) -> None:
    checks = {p: (c.count, m.count) for p, (c, m) in recorded.checks.items()}
    assert checks == {"BTC-USD": (70, 0), "ETH-USD": (84, 0)}
    assert all(verdict is Verdict.MATCH for _, verdict in recorded.verdicts)


def test_every_trade_is_passed_on_once_with_the_takers_side(
    capture: Capture, recorded: Replay
) -> None:
    raw = Counter()
    for frame in capture.frames:
        message = json.loads(frame)
        if message["channel"] == "market_trades":
            for event in message["events"]:
                for trade in event["trades"]:
                    raw[(trade["product_id"], trade["trade_id"])] += 1
    assert len(raw) == 279
    assert set(raw.values()) == {1}
    assert sorted((s, i) for s, i, _ in recorded.trades) == sorted(raw)
    assert Counter(s for s, _, _ in recorded.trades) == {"BTC-USD": 147, "ETH-USD": 132}
    # The ids count each product's trades one by one, and come out in that order.
    for product in PRODUCTS:
        ids = [int(i) for s, i, _ in recorded.trades if s == product]
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_a_trade_at_the_ask_is_a_taker_buy(capture: Capture) -> None:
    """Coinbase's side is the maker's: SELL printed at the best ask is a taker buying."""
    positions: Counter[tuple[str, str]] = Counter()
    books = {p: CoinbaseBook(p) for p in PRODUCTS}
    for frame in capture.frames:
        for event in parse(frame, 1.0).events:
            if isinstance(event, BookEvent):
                books[event.symbol].on_event(event)
            elif isinstance(event, Trades) and not event.snapshot:
                for trade in event.trades:
                    if not books[trade.symbol].synced:
                        continue  # BTC-USD's first trade comes before its snapshot
                    bid, ask = books[trade.symbol].book.best_levels()
                    assert bid is not None
                    assert ask is not None
                    where = (
                        "ask"
                        if trade.price >= ask[0]
                        else "bid"
                        if trade.price <= bid[0]
                        else "inside"
                    )
                    positions[(trade.side, where)] += 1
    assert positions[("sell", "ask")] == positions[("buy", "bid")] == 0
    assert positions[("buy", "ask")] == 48
    assert positions[("sell", "bid")] == 23
    assert positions[("buy", "inside")] + positions[("sell", "inside")] == 7  # book moved on


def _remove_update(frames: list[bytes], product: str, nth: int) -> list[bytes]:
    seen = 0
    for i, frame in enumerate(frames):
        if frame.startswith(b'{"channel":"l2_data"') and product.encode() in frame[:200]:
            seen += 1
            if seen == nth:
                return frames[:i] + frames[i + 1 :]
    raise AssertionError(f"no update {nth} of {product}")


def test_a_removed_frame_is_a_gap(capture: Capture) -> None:
    broken = replay(_remove_update(capture.frames, "BTC-USD", 100))
    assert len(broken.gaps) == 1
    assert "where" in broken.gaps[0]
    assert "(1 lost)" in broken.gaps[0]


def test_a_crossing_update_discards_the_book() -> None:
    book = CoinbaseBook("BTC-USD")
    snapshot = BookEvent(
        "BTC-USD", True, [(100.0, 1.0, "100", "1")], [(101.0, 1.0, "101", "1")], 5, 1.0
    )
    assert book.on_event(snapshot) is Outcome.APPLIED
    crossing = BookEvent("BTC-USD", False, [(101.5, 2.0, "101.5", "2")], [], 6, 1.0)
    assert book.on_event(crossing) is Outcome.CROSSED
    assert not book.synced
    assert book.book.level_counts() == (0, 0)
    later = BookEvent("BTC-USD", False, [(99.0, 1.0, "99", "1")], [], 7, 1.0)
    assert book.on_event(later) is Outcome.WAITING
    assert book.on_event(snapshot) is Outcome.APPLIED
    assert book.last_exchange_ts == 5


def test_a_book_over_its_level_bound_is_discarded() -> None:
    book = CoinbaseBook("BTC-USD", max_levels=2)
    asks = [(101.0 + i, 1.0, str(101 + i), "1") for i in range(2)]
    assert book.on_event(BookEvent("BTC-USD", True, [], asks, 1, 1.0)) is Outcome.APPLIED
    more = [(110.0, 1.0, "110", "1")]
    assert book.on_event(BookEvent("BTC-USD", False, [], more, 2, 1.0)) is Outcome.OVERFLOW
    assert not book.synced
