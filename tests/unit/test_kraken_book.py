"""Kraken book rules on the recorded capture (v1, rewritten as v2 frames) and by hand."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest

from marketdata.book import OrderBook
from marketdata.venues.kraken.book_state import KrakenBook, Outcome
from marketdata.venues.kraken.checksum import book_checksum
from marketdata.venues.kraken.wire import BookMessage, Precision, parse
from tests.kraken_v2 import DEPTH, V2Capture, convert

UPDATES = 4269  # book updates in the capture, each with its checksum
PAIRS = 10


@cache
def capture(trim: bool) -> V2Capture:
    return convert(trim=trim)


Outcomes = Counter[tuple[str, bool, Outcome]]


def replay(cap: V2Capture, frames: list[bytes]) -> tuple[dict[str, KrakenBook], Outcomes]:
    books = {pair: KrakenBook(pair, DEPTH, p) for pair, p in cap.precisions.items()}
    outcomes: Outcomes = Counter()
    for frame in frames:
        for event in parse(frame, 0.0):
            if isinstance(event, BookMessage):
                outcome = books[event.symbol].on_message(event)
                outcomes[event.symbol, event.snapshot, outcome] += 1
    return books, outcomes


@pytest.mark.parametrize("trim", [False, True], ids=["v1-digits", "trailing-zeros-dropped"])
def test_every_checksum_of_the_capture_verifies(trim: bool) -> None:
    cap = capture(trim)
    assert sum(cap.updates.values()) == UPDATES
    assert len(cap.precisions) == PAIRS
    books, outcomes = replay(cap, cap.frames)
    applied = sum(n for (_, snap, o), n in outcomes.items() if not snap and o is Outcome.APPLIED)
    assert applied == UPDATES
    assert set(o for _, _, o in outcomes) == {Outcome.APPLIED}
    assert all(book.synced for book in books.values())
    # no book of this capture reaches 1000 levels: the cut to depth is tested by hand below
    assert max(max(book.book.level_counts()) for book in books.values()) < DEPTH


def _levels(side: list[tuple[str, str]]) -> list[tuple[float, float, str, str]]:
    return [(float(p), float(q), p, q) for p, q in side]


def test_levels_pushed_out_of_the_depth_are_dropped() -> None:
    """Depth 10: a new best bid pushes 91.0 out, and Kraken forgets it (then deletes it
    without telling: it is out of range). When the new best bid goes, Kraken sends the
    level that comes into range, 90.0. A book that kept 91.0 has the wrong top 10."""
    bids = [(f"{100 - i}.0", "1.00") for i in range(10)]
    asks = [(f"{101 + i}.0", "2.00") for i in range(10)]
    after_insert = [("100.5", "1.00"), *bids[:9]]
    after_delete = [*bids[:9], ("90.0", "1")]  # the text as sent: rendered "100" too
    messages = [
        BookMessage("X/Y", True, _levels(bids), _levels(asks), 0, 0, 0.0),
        BookMessage("X/Y", False, _levels([("100.5", "1")]), [], 0, 0, 0.0),
        BookMessage("X/Y", False, _levels([("100.5", "0"), ("90.0", "1")]), [], 0, 0, 0.0),
    ]
    for message, top in zip(messages, (bids, after_insert, after_delete), strict=True):
        message.checksum = book_checksum(asks, top, 1, 2)
    book = KrakenBook("X/Y", 10, Precision(1, 2))
    assert [book.on_message(m) for m in messages] == [Outcome.APPLIED] * 3
    assert book.book.top(10)[0] == after_delete
    uncut = OrderBook()  # the same messages without the cut
    uncut.load(messages[0].bids, messages[0].asks)
    for message in messages[1:]:
        uncut.apply(message.bids, message.asks)
    assert book_checksum(asks, uncut.top(10)[0], 1, 2) != messages[2].checksum


def test_truncate_and_best_levels() -> None:
    book = OrderBook()
    book.load(_levels([("3", "1"), ("1", "1"), ("2", "1")]), _levels([("5", "1"), ("4", "1")]))
    assert book.best_bids(2) == _levels([("3", "1"), ("2", "1")])
    assert book.best_asks(5) == _levels([("4", "1"), ("5", "1")])
    book.truncate(1)
    assert book.top(5) == ([("3", "1")], [("4", "1")])
    assert book.level_counts() == (1, 1)
    book.apply(_levels([("2.5", "1")]), [])  # the dropped price may come back
    assert book.top(5)[0] == [("3", "1"), ("2.5", "1")]
    book.truncate(0)
    assert book.level_counts() == (0, 0)
    assert book.best_bids(3) == book.best_asks(3) == []


def _corrupt_top_level(cap: V2Capture, pair: str) -> tuple[list[bytes], int]:
    """The frames with one quantity changed in the first update of `pair` that touches its
    best ask or bid; and that update's index."""
    frames = list(cap.frames)
    books, _ = replay(cap, [])
    for i, frame in enumerate(frames):
        for event in parse(frame, 0.0):
            assert isinstance(event, BookMessage) or not frame.startswith(b'{"channel":"book"')
            if not isinstance(event, BookMessage):
                continue
            book = books[event.symbol]
            best = book.book.best_ask() if event.asks else book.book.best_bid()
            side = event.asks or event.bids
            if event.symbol == pair and not event.snapshot and best and side[0][1] > 0:
                if side[0][2] == best[0]:
                    message = json.loads(frame)
                    key = "asks" if event.asks else "bids"
                    message["data"][0][key][0]["qty"] = side[0][1] + 1
                    frames[i] = json.dumps(message).encode()
                    return frames, i
            book.on_message(event)
    raise AssertionError(f"no update of {pair} touches its best level")


def test_one_corrupted_level_resyncs_that_pair_only() -> None:
    cap = capture(False)
    pair = "XMR/USD"
    frames, index = _corrupt_top_level(cap, pair)
    books, outcomes = replay(cap, frames)
    resyncs = {(s, n) for (s, _, o), n in outcomes.items() if o is Outcome.RESYNC}
    assert resyncs == {(pair, 1)}
    assert not books[pair].synced
    assert books[pair].expected != books[pair].got
    # before the corrupted update: applied; after it: waiting for a fresh snapshot
    before = sum(1 for f in frames[:index] if f'"{pair}"'.encode() in f and b'"update"' in f)
    assert outcomes[pair, False, Outcome.APPLIED] == before
    assert outcomes[pair, False, Outcome.WAITING] == cap.updates[pair] - before - 1 > 0
    for other in cap.precisions.keys() - {pair}:
        assert outcomes[other, False, Outcome.APPLIED] == cap.updates[other]
        assert books[other].synced


def test_updates_before_a_snapshot_wait_and_a_snapshot_resyncs() -> None:
    precision = Precision(1, 2)
    book = KrakenBook("X/Y", 10, precision)
    bids = [(f"{100 - i}.0", "1.00") for i in range(12)]
    asks = [(f"{101 + i}.0", "2.00") for i in range(12)]
    lv = _levels
    update = BookMessage("X/Y", False, lv([("99.5", "3")]), [], 0, 0, 0.0)
    assert book.on_message(update) is Outcome.WAITING
    expected = book_checksum(asks[:10], bids[:10], 1, 2)
    snapshot = BookMessage("X/Y", True, lv(bids), lv(asks), expected, 0, 0.0)
    assert book.on_message(snapshot) is Outcome.APPLIED
    assert book.book.level_counts() == (10, 10)  # cut to the depth of 10
    # a level inside the top 10: the checksum moves; "3" is rendered "300" at 2 decimals
    moved = sorted(bids[:10] + [("99.5", "3.00")], key=lambda b: -float(b[0]))[:10]
    update.checksum = book_checksum(asks[:10], moved, 1, 2)
    assert book.on_message(update) is Outcome.APPLIED
    # deleting an absent level is fine; a level beyond the 10th leaves the checksum as is
    quiet = BookMessage("X/Y", False, lv([("1.0", "0")]), lv([("500.0", "1")]), 0, 0, 0.0)
    quiet.checksum = update.checksum
    assert book.on_message(quiet) is Outcome.APPLIED
    assert book.book.level_counts() == (10, 10)
    quiet.checksum ^= 1  # the same update with a checksum the book does not give
    assert book.on_message(quiet) is Outcome.RESYNC
    assert (book.expected, book.got) == (update.checksum ^ 1, update.checksum)
    assert book.book.level_counts() == (0, 0)
    assert not book.synced
    assert book.on_message(update) is Outcome.WAITING


def test_depth_must_be_one_kraken_offers() -> None:
    with pytest.raises(ValueError, match="depth 20"):
        KrakenBook("X/Y", 20, Precision(1, 1))
