"""The real capture through the real parser and sync code."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict

import pytest

from marketdata.events import BookTicker, DepthDiff
from marketdata.sim.capture import CapturedFrame, load_capture
from marketdata.sync import BREAKS, BookSync, Outcome
from marketdata.venues.binance import BinanceFutures
from tests.helpers import FUTURES_CAPTURE

SYMBOLS = {"AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"}
# From the protocol brief's verification of this capture: applied diffs, BBO checks.
EXPECTED_APPLIED = {"AKROUSDT": 188, "CTKUSDT": 180, "KEEPUSDT": 132, "SUSHIUSDT": 252}
EXPECTED_BBO_CHECKS = {"AKROUSDT": 182, "CTKUSDT": 180, "KEEPUSDT": 130, "SUSHIUSDT": 252}


def run_capture(skip_diff: tuple[str, int] | None = None):
    """Feed the capture in receive order; optionally drop the n-th diff of one symbol."""
    adapter = BinanceFutures()
    capture = load_capture(FUTURES_CAPTURE)
    syncs = {s: BookSync(adapter.continuity) for s in SYMBOLS}
    outcomes: dict[str, Counter[Outcome]] = defaultdict(Counter)
    applied: dict[str, list[tuple[int, tuple, tuple]]] = defaultdict(list)
    tickers: dict[str, list[BookTicker]] = defaultdict(list)
    seen: Counter[str] = Counter()
    for record in capture.records:
        if not isinstance(record, CapturedFrame):
            snapshot = adapter.parse_snapshot(record.symbol, record.raw.encode(), record.t)
            for outcome in syncs[record.symbol].on_snapshot(snapshot):
                outcomes[record.symbol][outcome] += 1
            continue
        if "@kline" in record.stream:
            continue
        for event in adapter.parse(record.raw.encode(), record.t):
            if isinstance(event, BookTicker):
                tickers[event.symbol].append(event)
            elif isinstance(event, DepthDiff):
                seen[event.symbol] += 1
                if skip_diff == (event.symbol, seen[event.symbol]):
                    continue
                sync = syncs[event.symbol]
                outcome = sync.on_diff(event)
                outcomes[event.symbol][outcome] += 1
                if outcome is Outcome.APPLIED:
                    book = sync.book
                    applied[event.symbol].append((event.last_id, book.best_bid(), book.best_ask()))
    return syncs, outcomes, applied, tickers


def test_every_symbol_syncs_with_no_breaks() -> None:
    syncs, outcomes, applied, _ = run_capture()
    for symbol in SYMBOLS:
        assert syncs[symbol].synced, symbol
        assert not any(outcomes[symbol][b] for b in BREAKS), (symbol, outcomes[symbol])
        assert len(applied[symbol]) == EXPECTED_APPLIED[symbol]


def test_best_bid_ask_match_book_ticker_after_every_applied_diff() -> None:
    _, _, applied, tickers = run_capture()
    for symbol in SYMBOLS:
        ordered = sorted(tickers[symbol], key=lambda t: t.update_id)
        ids = [t.update_id for t in ordered]
        checks = 0
        for last_id, best_bid, best_ask in applied[symbol]:
            i = bisect.bisect_right(ids, last_id) - 1
            if i < 0:
                continue  # no bookTicker at or before this diff yet
            ticker = ordered[i]
            assert best_bid == (ticker.bid_price, ticker.bid_qty), (symbol, last_id)
            assert best_ask == (ticker.ask_price, ticker.ask_qty), (symbol, last_id)
            checks += 1
        assert checks == EXPECTED_BBO_CHECKS[symbol]


@pytest.mark.parametrize("symbol", sorted(SYMBOLS))
def test_one_missing_diff_resyncs_that_symbol_only(symbol: str) -> None:
    _, outcomes, _, _ = run_capture(skip_diff=(symbol, 60))
    for other in SYMBOLS:
        breaks = sum(outcomes[other][b] for b in BREAKS)
        assert breaks == (1 if other == symbol else 0), (other, outcomes[other])
    assert outcomes[symbol][Outcome.GAP] == 1
