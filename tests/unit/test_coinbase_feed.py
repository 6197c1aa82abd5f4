"""CoinbaseFeed's protocol: the recorded connection through the real parser and books, a
sequence gap resyncing every product of its connection and no other, the ticker check,
rejected and unconfirmed subscribes retried, trades published once."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import orjson
import pytest

from marketdata.config import ReconnectConfig
from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.state import AnyState
from marketdata.venue import FeedContext
from marketdata.venues.coinbase.config import CoinbaseConfig
from marketdata.venues.coinbase.feed import CoinbaseFeed, feeds_for
from tests.coinbase_capture import PRODUCTS, Capture, load

BTC, ETH = PRODUCTS


class Recorder:
    """The publisher's side of the feed: what it was told."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.unsynced: list[str] = []  # products whose book was withdrawn

    def register(self, state: AnyState) -> None:
        pass

    def book_changed(self, state: AnyState) -> None:
        if not state.sync.synced:
            self.unsynced.append(state.symbol)

    def trade(self, state: AnyState, trade: Trade) -> None:
        self.trades.append(trade)


def _context(metrics: Metrics, publisher: Recorder) -> FeedContext:
    return FeedContext(
        publisher,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # nothing connects: frames are handed in
        ReconnectConfig(initial_delay_s=0.5, max_delay_s=5.0),
        metrics,
        30.0,
    )


class Harness:
    def __init__(
        self, symbols: tuple[str, ...] = PRODUCTS, feed: CoinbaseFeed | None = None, **config: Any
    ) -> None:
        self.metrics = Metrics()
        self.publisher = Recorder()
        settings = {"symbols_per_connection": len(symbols), **config}
        self.feed = feed or CoinbaseFeed(
            CoinbaseConfig(symbols=symbols, **settings), symbols,
            _context(self.metrics, self.publisher), "coinbase:test",
        )  # fmt: skip
        self.sent: list[dict[str, Any]] = []
        self.now = 1000.0
        self.feed._clock = lambda: self.now

        async def send(text: str) -> bool:
            self.sent.append(orjson.loads(text))
            return True

        self.feed.connection.send = send  # type: ignore[method-assign]
        self.feed.connection.connected = True
        self.feed._on_state(True)

    async def tick(self, after_s: float = 0.0) -> list[dict[str, Any]]:
        """Let the feed send what is due `after_s` from now; what it sent."""
        self.now += after_s
        before = len(self.sent)
        await self.feed._send_due(self.now)
        return self.sent[before:]

    def frame(self, message: dict[str, Any] | bytes) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.feed.on_frame(raw, 1.0)

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def per_product(self, name: str) -> dict[str, float]:
        return {p: self.count(name, exchange="coinbase", symbol=p) for p in PRODUCTS}


@pytest.fixture(scope="module")
def capture() -> Capture:
    return load()


def _requests(sent: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    return [(m["type"], m["channel"], m["product_ids"]) for m in sent]


def _renumber(frame: bytes, sequence: int) -> bytes:
    """The frame as it would come at `sequence` on the connection."""
    head, n = re.subn(rb'"sequence_num":\d+', b'"sequence_num":%d' % sequence, frame[:200], count=1)
    assert n == 1
    return head + frame[200:]


def _listing(sequence: int, **channels: list[str]) -> bytes:
    message = {"channel": "subscriptions", "timestamp": "2026-08-09T21:06:13Z",
               "sequence_num": sequence, "events": [{"subscriptions": channels}]}  # fmt: skip
    return orjson.dumps(message)


async def subscribed(capture: Capture | None = None) -> Harness:
    """A feed of both products with its four subscribes sent (not yet confirmed)."""
    h = Harness()
    sent = await h.tick()
    assert _requests(sent) == [
        ("subscribe", "heartbeats", [BTC, ETH]),
        ("subscribe", "level2", [BTC, ETH]),
        ("subscribe", "market_trades", [BTC, ETH]),
        ("subscribe", "ticker", [BTC, ETH]),
    ]
    if capture is not None:  # the recorded client sent the same (and candles)
        recorded = [(m["type"], m["channel"], m["product_ids"]) for m in capture.sent]
        assert all(request in recorded for request in _requests(sent))
    assert await h.tick() == []
    return h


async def test_the_recorded_connection_syncs_confirms_and_checks_through_the_feed(
    capture: Capture,
) -> None:
    h = await subscribed(capture)
    for frame in capture.frames:
        h.frame(frame)
    assert h.feed.readiness(0.0, 1e9) == {}  # every subscription confirmed, books synced
    assert all(state.sync.synced for state in h.feed.states)
    assert h.per_product("orderbook_updates_total") == {BTC: 400, ETH: 375}
    assert h.per_product("sequence_gaps_total") == {BTC: 0, ETH: 0}
    assert h.per_product("resyncs_total") == {BTC: 0, ETH: 0}
    assert h.per_product("top_of_book_checks_total") == {BTC: 70, ETH: 84}
    assert h.per_product("top_of_book_mismatches_total") == {BTC: 0, ETH: 0}
    assert h.per_product("book_synced") == {BTC: 1, ETH: 1}
    assert h.count("messages_error_total", reason="unknown_symbol") == 0
    assert await h.tick(after_s=60.0) == []  # nothing left to send, nothing timed out


async def test_every_recorded_trade_is_published_once(capture: Capture) -> None:
    raw: set[tuple[str, str]] = set()
    for frame in capture.frames:
        message = json.loads(frame)
        if message["channel"] == "market_trades":
            for event in message["events"]:
                raw |= {(t["product_id"], t["trade_id"]) for t in event["trades"]}
    h = await subscribed()
    for frame in capture.frames:
        h.frame(frame)
    published = [(t.symbol, t.trade_id) for t in h.publisher.trades]
    assert len(published) == len(set(published)) == len(raw) == 279
    assert set(published) == raw
    assert h.count("trades_processed_total") == 279
    # A reconnect: the new connection's snapshots repeat the last 100 trades of each.
    h.feed._on_state(False)
    h.feed._on_state(True)
    for frame in capture.frames[:2]:  # the recorded snapshots stand in for the new ones
        h.frame(frame)
    assert len(h.publisher.trades) == 279
    assert h.count("trades_duplicate_total") == 200


def _without_one_update(capture: Capture) -> tuple[list[bytes], int]:
    """The recording with BTC-USD's 100th update taken out, and that frame's number."""
    seen = 0
    for i, frame in enumerate(capture.frames):
        if frame.startswith(b'{"channel":"l2_data"') and BTC.encode() in frame[:200]:
            seen += 1
            if seen == 100:
                return capture.frames[:i] + capture.frames[i + 1 :], i
    raise AssertionError("the recording has fewer BTC-USD updates")


async def test_a_sequence_gap_resyncs_every_product_of_the_connection(capture: Capture) -> None:
    h = await subscribed()
    frames, lost = _without_one_update(capture)
    for frame in frames[:lost]:
        h.frame(frame)
    assert h.feed.readiness(0.0, 1e9) == {}
    for frame in frames[lost:]:
        h.frame(frame)
    assert h.per_product("sequence_gaps_total") == {BTC: 1, ETH: 1}
    assert h.per_product("resyncs_total") == {BTC: 1, ETH: 1}
    assert h.per_product("book_synced") == {BTC: 0, ETH: 0}
    assert sorted(h.publisher.unsynced) == [BTC, ETH]  # both withdrawn, once each
    assert not any(state.sync.synced for state in h.feed.states)
    problems = h.feed.readiness(0.0, 1e9)
    assert sorted(problems) == [f"coinbase:{BTC}", f"coinbase:{ETH}"]
    assert "book not synced" in problems[f"coinbase:{BTC}"]
    # The updates after the gap are ignored until new snapshots come.
    dropped = h.per_product("diffs_dropped_total")
    assert dropped[BTC] > 0
    assert dropped[ETH] > 0
    # The resync: level2 of both, unsubscribed and subscribed again, on this connection.
    sent = await h.tick(after_s=1.0)
    assert _requests(sent) == [
        ("unsubscribe", "level2", [BTC, ETH]),
        ("subscribe", "level2", [BTC, ETH]),
    ]
    # Coinbase's counter goes on across the resubscribe: listings, then new snapshots.
    sequence = len(capture.frames) - 1  # the last frame's number (one was taken out)
    others = {"heartbeats": ["heartbeats"], "market_trades": [BTC, ETH], "ticker": [BTC, ETH]}
    sequence += 1
    h.frame(_listing(sequence, **others, level2=[BTC, ETH]))  # sent before the unsubscribe
    assert "level2 subscription not confirmed yet" in h.feed.readiness(0.0, 1e9)[f"coinbase:{BTC}"]
    snapshots = [f for f in capture.frames if b'"type":"snapshot","product_id"' in f[:200]]
    for snapshot in snapshots:
        sequence += 1
        h.frame(_renumber(snapshot, sequence))
    assert h.feed.readiness(0.0, 1e9) == {}
    assert h.per_product("sequence_gaps_total") == {BTC: 1, ETH: 1}  # no new gap
    assert h.per_product("book_synced") == {BTC: 1, ETH: 1}
    assert await h.tick(after_s=60.0) == []


async def test_a_gap_leaves_the_products_of_other_connections_alone(capture: Capture) -> None:
    metrics, publisher = Metrics(), Recorder()
    config = CoinbaseConfig(symbols=(BTC, ETH, "SOL-USD"), symbols_per_connection=2)
    first, second = feeds_for(config, _context(metrics, publisher))
    assert (first.key, second.key) == ("coinbase:connection1", "coinbase:SOL-USD")
    a, b = Harness(feed=first), Harness(feed=second)
    assert len(await a.tick()) == 4
    assert len(await b.tick()) == 1  # the two connections share the per-IP message budget
    assert _requests(await b.tick(after_s=1.0))[0] == ("subscribe", "level2", ["SOL-USD"])
    sol = {"channel": "l2_data", "timestamp": "2026-08-09T21:05:48Z", "sequence_num": 0,
           "events": [{"type": "snapshot", "product_id": "SOL-USD", "updates": [
               {"side": "bid", "event_time": "2026-08-09T21:05:48Z", "price_level": "150.1",
                "new_quantity": "3"},
               {"side": "offer", "event_time": "2026-08-09T21:05:48Z", "price_level": "150.2",
                "new_quantity": "4"}]}]}  # fmt: skip
    b.frame(sol)
    frames, _ = _without_one_update(capture)
    for frame in frames:
        a.frame(frame)
    assert not any(state.sync.synced for state in first.states)
    assert [state.sync.synced for state in second.states] == [True]
    labels = {"exchange": "coinbase", "symbol": "SOL-USD"}
    assert metrics.registry.get_sample_value("resyncs_total", labels) == 0
    assert publisher.unsynced == [BTC, ETH]
    assert _requests(await a.tick(after_s=1.0))[0] == ("unsubscribe", "level2", [BTC, ETH])
    assert await b.tick(after_s=1.0) == []


def _ticker(sequence: int, bid: str, ask: str) -> dict[str, Any]:
    ticker = {"type": "ticker", "product_id": ETH, "price": "1919.4", "best_bid": bid,
              "best_ask": ask, "best_bid_quantity": "1", "best_ask_quantity": "1"}  # fmt: skip
    return {"channel": "ticker", "timestamp": "2026-08-09T21:06:13Z", "sequence_num": sequence,
            "events": [{"type": "update", "tickers": [ticker]}]}  # fmt: skip


async def test_a_top_that_keeps_disagreeing_with_the_ticker_resyncs_that_product(
    capture: Capture,
) -> None:
    h = await subscribed()
    for frame in capture.frames:
        h.frame(frame)
    # ETH-USD's last update again: absolute quantities, so the book (and its top) stays.
    eth_update = next(f for f in reversed(capture.frames) if f.startswith(b'{"channel":"l2_data"'))
    assert ETH.encode() in eth_update[:200]
    sequence = len(capture.frames)
    h.frame(_ticker(sequence, "1900.01", "1900.02"))  # no ETH-USD top was ever this
    for n in range(1, 8):  # book events after it: none reaches that top
        h.frame(_renumber(eth_update, sequence + n))
    assert h.per_product("top_of_book_mismatches_total") == {BTC: 0, ETH: 0}  # still waiting
    sequence += 8
    h.frame(_renumber(eth_update, sequence))
    assert h.per_product("top_of_book_mismatches_total") == {BTC: 0, ETH: 1}
    assert h.publisher.unsynced == []  # one mismatch is not enough
    for _ in range(2):
        sequence += 1
        h.frame(_ticker(sequence, "1900.01", "1900.02"))
        for _ in range(8):
            sequence += 1
            h.frame(_renumber(eth_update, sequence))
    assert h.per_product("top_of_book_mismatches_total") == {BTC: 0, ETH: 3}
    assert h.per_product("resyncs_total") == {BTC: 0, ETH: 1}
    assert h.publisher.unsynced == [ETH]
    assert list(h.feed.readiness(0.0, 1e9)) == [f"coinbase:{ETH}"]
    sent = await h.tick(after_s=1.0)
    assert _requests(sent) == [("unsubscribe", "level2", [ETH]), ("subscribe", "level2", [ETH])]


async def test_a_rejected_subscribe_is_on_ready_and_retried_alone_with_backoff() -> None:
    h = Harness((BTC, "NOPE-USD"), messages_per_second=8)
    first = await h.tick()
    assert len(first) == 4
    h.frame({"type": "error", "message": "Failed to subscribe"})
    problems = h.feed.readiness(0.0, 1e9)
    assert (
        "level2 subscribe failing: rejected: Failed to subscribe" in problems["coinbase:NOPE-USD"]
    )
    labels = {"exchange": "coinbase", "symbol": "NOPE-USD", "channel": "level2"}
    assert h.count("subscription_failures_total", **labels, reason="rejected") == 1
    assert await h.tick() == []  # not at once: it backs off
    again = await h.tick(after_s=10.0)
    # Each request alone now: one product Coinbase refuses cannot hold up the others.
    assert sorted(_requests(again)) == sorted(
        [("subscribe", "heartbeats", [BTC, "NOPE-USD"])]
        + [
            ("subscribe", c, [p])
            for c in ("level2", "market_trades", "ticker")
            for p in (BTC, "NOPE-USD")
        ]  # fmt: skip
    )
    h.frame({"type": "error", "message": "Failed to subscribe"})  # every waiting one fails
    h.frame(_listing(0, heartbeats=["heartbeats"], level2=[BTC], market_trades=[BTC],
                     ticker=[BTC]))  # fmt: skip  # ... but these were taken after all
    problems = h.feed.readiness(0.0, 1e9)
    assert problems[f"coinbase:{BTC}"] == ["book not synced"]
    assert "level2 subscribe failing" in str(problems["coinbase:NOPE-USD"])


async def test_an_unconfirmed_subscribe_times_out_and_is_sent_again() -> None:
    h = Harness((BTC,), subscribe_timeout_s=2.0)
    await h.tick()
    h.frame(_listing(0, heartbeats=["heartbeats"], market_trades=[BTC], ticker=[BTC]))
    assert await h.tick(after_s=1.0) == []
    assert await h.tick(after_s=1.5) == []  # level2 timed out: sent again after a backoff
    labels = {"exchange": "coinbase", "symbol": BTC, "channel": "level2"}
    assert h.count("subscription_failures_total", **labels, reason="timeout") == 1
    problems = h.feed.readiness(0.0, 1e9)[f"coinbase:{BTC}"]
    assert "level2 subscribe failing: no confirmation within 2s" in problems
    assert _requests(await h.tick(after_s=10.0)) == [("subscribe", "level2", [BTC])]


async def test_requests_stay_within_the_message_budget() -> None:
    h = Harness(PRODUCTS, messages_per_second=2.0)
    assert len(await h.tick()) == 2
    assert await h.tick(after_s=0.5) == []
    assert len(await h.tick(after_s=0.6)) == 2


async def test_a_connection_loss_withdraws_the_books_and_starts_the_count_again(
    capture: Capture,
) -> None:
    h = await subscribed()
    for frame in capture.frames[:40]:
        h.frame(frame)
    assert h.per_product("book_synced") == {BTC: 1, ETH: 1}
    h.feed._on_state(False)
    h.feed._on_state(True)
    assert sorted(h.publisher.unsynced) == [BTC, ETH]
    assert len(await h.tick(after_s=1.0)) == 4  # everything subscribed afresh
    for frame in capture.frames[:40]:  # the new connection counts from 0 again
        h.frame(frame)
    assert h.per_product("sequence_gaps_total") == {BTC: 0, ETH: 0}
    assert h.per_product("book_synced") == {BTC: 1, ETH: 1}


async def test_a_resubscribe_is_confirmed_by_a_listing_after_one_without_it(
    capture: Capture,
) -> None:
    h = await subscribed()
    for frame in capture.frames:
        h.frame(frame)
    sequence = len(capture.frames) - 1
    crossing = {"channel": "l2_data", "timestamp": "2026-08-09T21:06:13Z",
                "sequence_num": sequence + 1, "events": [{"type": "update", "product_id": BTC,
                "updates": [{"side": "bid", "event_time": "2026-08-09T21:06:13Z",
                             "price_level": "99999.99", "new_quantity": "1"}]}]}  # fmt: skip
    h.frame(crossing)  # a bid above every ask: the book cannot be right
    assert h.per_product("resyncs_total") == {BTC: 1, ETH: 0}
    assert h.per_product("book_synced") == {BTC: 0, ETH: 1}
    sent = await h.tick(after_s=1.0)
    assert _requests(sent) == [("unsubscribe", "level2", [BTC]), ("subscribe", "level2", [BTC])]
    others = {"heartbeats": ["heartbeats"], "market_trades": [BTC, ETH], "ticker": [BTC, ETH]}
    h.frame(_listing(sequence + 2, **others, level2=[ETH]))  # the unsubscribe took effect
    assert "level2 subscription not confirmed yet" in h.feed.readiness(0, 1e9)[f"coinbase:{BTC}"]
    h.frame(_listing(sequence + 3, **others, level2=[BTC, ETH]))
    assert h.feed.readiness(0, 1e9) == {f"coinbase:{BTC}": ["book not synced"]}


async def test_frames_for_a_product_not_on_the_connection_are_skipped(capture: Capture) -> None:
    h = Harness((ETH,))
    for frame in capture.frames:
        h.frame(frame)
    assert h.count("messages_error_total", reason="unknown_symbol") == 400 + 147
    assert h.count("orderbook_updates_total", exchange="coinbase", symbol=ETH) == 375
    assert {t.symbol for t in h.publisher.trades} == {ETH}


async def test_a_listed_level2_whose_snapshot_never_comes_is_subscribed_again() -> None:
    h = Harness((BTC,), subscribe_timeout_s=2.0)
    await h.tick()
    listed = {"heartbeats": ["heartbeats"], "market_trades": [BTC], "ticker": [BTC]}
    h.frame(_listing(0, **listed, level2=[BTC]))
    assert h.feed.readiness(0, 1e9) == {f"coinbase:{BTC}": ["book not synced"]}
    assert await h.tick(after_s=1.0) == []
    assert await h.tick(after_s=1.5) == []  # no snapshot within 2 s: failed, backing off
    labels = {"exchange": "coinbase", "symbol": BTC, "channel": "level2"}
    assert h.count("subscription_failures_total", **labels, reason="no_snapshot") == 1
    problems = h.feed.readiness(0, 1e9)[f"coinbase:{BTC}"]
    assert "level2 subscribe failing: no snapshot within 2s of subscribing" in problems
    sent = await h.tick(after_s=10.0)
    assert _requests(sent) == [("unsubscribe", "level2", [BTC]), ("subscribe", "level2", [BTC])]


async def test_resyncs_in_quick_succession_back_off_further(capture: Capture) -> None:
    h = await subscribed()
    for frame in capture.frames[:40]:
        h.frame(frame)
    backoff = h.feed._resync_backoff[BTC]
    gap = _renumber(capture.frames[40], 1000)
    h.frame(gap)
    assert backoff.attempt == 1
    snapshots = [f for f in capture.frames[:40] if b'"type":"snapshot","product_id"' in f[:200]]
    for number, snapshot in enumerate(snapshots, 1001):
        h.frame(_renumber(snapshot, number))
    assert h.per_product("book_synced") == {BTC: 1, ETH: 1}  # synced again; still ...
    h.frame(_renumber(capture.frames[40], 1010))  # ... the next gap is near
    assert backoff.attempt == 2
    assert h.per_product("resyncs_total") == {BTC: 2, ETH: 2}
    h.now += 61.0  # a calm minute: the next resync starts the backoff afresh
    h.frame(_renumber(capture.frames[40], 1020))
    assert backoff.attempt == 1


async def test_the_subscription_upkeep_survives_a_failure_of_its_own() -> None:
    h = Harness((BTC,), subscribe_timeout_s=0.2)
    h.feed._clock = time.monotonic  # the upkeep runs for real here
    calls = 0
    done = asyncio.Event()

    async def send(text: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in sending")
        h.sent.append(orjson.loads(text))
        if {m["channel"] for m in h.sent} == {"heartbeats", "level2", "market_trades", "ticker"}:
            done.set()
        return True

    h.feed.connection.send = send  # type: ignore[method-assign]
    task = asyncio.create_task(h.feed._maintain())
    try:
        await asyncio.wait_for(done.wait(), 10.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert calls > len(h.sent)  # the failed one, then every channel all the same
