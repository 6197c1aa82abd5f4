"""The real Binance spot capture through the real parser, sync, audit and feed wiring."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from marketdata.config import ReconnectConfig
from marketdata.events import BookTicker, DepthDiff, Trade
from marketdata.metrics import Metrics
from marketdata.rest_gate import RestGate
from marketdata.sim.capture import CapturedFrame, load_capture
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed
from marketdata.sync import BREAKS, BookSync, Outcome
from marketdata.venues.binance import BinanceSpot
from tests.helpers import SPOT_CAPTURE

SYMBOLS = ("BADGERBTC", "FTMUSDT", "SXPBTC", "XMRBTC")
EXCHANGE = "binance_spot"
# The snapshots hold 5000 levels a side (limit=5000) and diffs add levels outside them.
MAX_LEVELS = 20_000
# Counted on the capture with the documented rule (drop u <= L, U <= L+1 <= u, U == u'+1).
EXPECTED_APPLIED = {"BADGERBTC": 75, "FTMUSDT": 222, "SXPBTC": 94, "XMRBTC": 137}
EXPECTED_DROPPED = {"BADGERBTC": 3, "FTMUSDT": 7, "SXPBTC": 7, "XMRBTC": 1}
EXPECTED_BBO_CHECKS = {"BADGERBTC": 75, "FTMUSDT": 222, "SXPBTC": 94, "XMRBTC": 136}


class Run:
    """The capture fed in receive order; optionally without the n-th diff of one symbol."""

    def __init__(self, skip_diff: tuple[str, int] | None = None) -> None:
        self.adapter = BinanceSpot()
        self.skip_diff = skip_diff
        self.syncs = {s: BookSync(self.adapter.continuity, max_levels=MAX_LEVELS) for s in SYMBOLS}
        self.outcomes: dict[str, Counter[Outcome]] = defaultdict(Counter)
        self.applied: dict[str, list[tuple[int, Any, Any]]] = defaultdict(list)
        self.tickers: dict[str, list[BookTicker]] = defaultdict(list)
        self.trades: dict[str, list[int]] = defaultdict(list)
        self.seen: Counter[str] = Counter()
        for record in load_capture(SPOT_CAPTURE).records:
            if not isinstance(record, CapturedFrame):
                snapshot = self.adapter.parse_snapshot(record.symbol, record.raw.encode(), 0.0)
                for outcome in self.syncs[record.symbol].on_snapshot(snapshot):
                    self.outcomes[record.symbol][outcome] += 1
            elif "@kline" not in record.stream:
                for event in self.adapter.parse(record.raw.encode(), record.t):
                    self.on_event(event)

    def on_event(self, event: Any) -> None:
        if isinstance(event, BookTicker):
            self.tickers[event.symbol].append(event)
        elif isinstance(event, Trade):
            self.trades[event.symbol].append(int(event.trade_id))
        elif isinstance(event, DepthDiff):
            self.seen[event.symbol] += 1
            if self.skip_diff != (event.symbol, self.seen[event.symbol]):
                self.on_diff(event)

    def on_diff(self, diff: DepthDiff) -> None:
        sync = self.syncs[diff.symbol]
        outcome = sync.on_diff(diff)
        self.outcomes[diff.symbol][outcome] += 1
        if outcome is Outcome.APPLIED:
            book = sync.book
            self.applied[diff.symbol].append((diff.last_id, book.best_bid(), book.best_ask()))


def run_capture(skip_diff: tuple[str, int] | None = None) -> tuple[Any, ...]:
    run = Run(skip_diff)
    return run.syncs, run.outcomes, run.applied, run.tickers, run.trades


def test_every_symbol_syncs_from_its_snapshot_with_no_breaks() -> None:
    syncs, outcomes, applied, _, _ = run_capture()
    for symbol in SYMBOLS:
        assert syncs[symbol].synced, symbol
        assert not any(outcomes[symbol][b] for b in BREAKS), (symbol, outcomes[symbol])
        assert len(applied[symbol]) == EXPECTED_APPLIED[symbol]
        assert outcomes[symbol][Outcome.DROPPED] == EXPECTED_DROPPED[symbol]


def test_aggregate_trade_ids_are_contiguous() -> None:
    *_, trades = run_capture()
    assert sum(map(len, trades.values())) == 28
    for symbol, ids in trades.items():
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol


def test_best_bid_ask_match_book_ticker_after_every_applied_diff() -> None:
    _, _, applied, tickers, _ = run_capture()
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


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_one_missing_diff_resyncs_that_symbol_only(symbol: str) -> None:
    n = EXPECTED_APPLIED[symbol] // 2  # mid-stream, well after the bridge
    _, outcomes, _, _, _ = run_capture(skip_diff=(symbol, n))
    for other in SYMBOLS:
        breaks = sum(outcomes[other][b] for b in BREAKS)
        assert breaks == (1 if other == symbol else 0), (other, outcomes[other])
    assert outcomes[symbol][Outcome.GAP] == 1


class NullPublisher:
    def book_changed(self, state: SymbolState) -> None:
        pass

    def trade(self, state: SymbolState, trade: Trade) -> None:
        pass


def sample(metrics: Metrics, name: str, symbol: str) -> float:
    labels = {"exchange": EXCHANGE, "symbol": symbol}
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_feeds_with_the_top_audit_on_pass_every_check() -> None:
    """Through SymbolFeed: the bookTicker audit holds on spot too, so it stays on."""
    adapter, metrics = BinanceSpot(), Metrics()
    session: Any = None  # no snapshot is fetched: the capture's own are handed over
    publisher: Any = NullPublisher()
    feeds = {
        s: SymbolFeed(
            adapter,
            SymbolState(EXCHANGE, s, BookSync(adapter.continuity, max_levels=MAX_LEVELS)),
            publisher,
            session,
            ReconnectConfig(),
            metrics,
            RestGate(),
            30.0,
            top_audit_mismatches=3,
        )  # fmt: skip
        for s in SYMBOLS
    }
    for record in load_capture(SPOT_CAPTURE).records:
        if not isinstance(record, CapturedFrame):
            snapshot = adapter.parse_snapshot(record.symbol, record.raw.encode(), record.t)
            feeds[record.symbol]._apply_snapshot(snapshot)
        elif "@kline" not in record.stream:
            symbol = orjson.loads(record.raw)["data"]["s"]
            feeds[symbol].on_frame(record.raw.encode(), record.t)
    for symbol in SYMBOLS:
        assert sample(metrics, "top_of_book_checks_total", symbol) >= 30, symbol
        assert sample(metrics, "top_of_book_mismatches_total", symbol) == 0, symbol
        assert sample(metrics, "resyncs_total", symbol) == 0, symbol
        assert sample(metrics, "book_synced", symbol) == 1, symbol
