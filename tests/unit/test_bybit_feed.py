"""BybitFeed's protocol: subscribes confirmed by req_id, the real capture through the real
parser and book, one symbol resynced alone, rejected and unanswered subscribes retried."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import orjson
import pytest

from marketdata.config import ReconnectConfig
from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.state import AnyState
from marketdata.venue import FeedContext
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.bybit.feed import BybitFeed
from tests.bybit_v5 import DEPTH, SYMBOLS, Capture, book_message, load

SYMBOL = "ETHUSDT"
PONG = {"success": True, "ret_msg": "pong", "conn_id": "c", "req_id": "", "op": "ping"}


class Recorder:
    """The publisher's side of the feed: what it was told."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.unsynced: list[str] = []  # symbols whose book was withdrawn

    def register(self, state: AnyState) -> None:
        pass

    def book_changed(self, state: AnyState) -> None:
        if not state.sync.synced:
            self.unsynced.append(state.symbol)

    def trade(self, state: AnyState, trade: Trade) -> None:
        self.trades.append(trade)


class Harness:
    def __init__(self, symbols: list[str], **config: Any) -> None:
        self.metrics = Metrics()
        self.publisher = Recorder()
        context = FeedContext(
            self.publisher,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]  # nothing connects: frames are handed in
            ReconnectConfig(initial_delay_s=0.5, max_delay_s=5.0),
            self.metrics,
            30.0,
        )
        settings = {"depth": DEPTH, "symbols_per_connection": len(symbols), **config}
        self.feed = BybitFeed(
            BybitConfig(symbols=tuple(symbols), **settings), symbols, context, "bybit:test"
        )
        self.sent: list[dict[str, Any]] = []
        self.now = time.monotonic()  # the feed schedules retries on this clock

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

    def reply(self, request: dict[str, Any], ret_msg: str | None = None) -> None:
        """Bybit's reply to `request`: success, or a failure with `ret_msg`."""
        self.frame({"success": ret_msg is None, "ret_msg": ret_msg or "", "conn_id": "c",
                    "req_id": request["req_id"], "op": request["op"]})  # fmt: skip

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def counts(self, name: str) -> dict[str, float]:
        return {s: self.count(name, exchange="bybit", symbol=s) for s in self.feed._books}


@pytest.fixture(scope="module")
def capture() -> Capture:
    return load()


def topics(symbol: str) -> list[str]:
    return [f"orderbook.{DEPTH}.{symbol}", f"publicTrade.{symbol}"]


async def subscribed(symbols: tuple[str, ...] = SYMBOLS) -> Harness:
    """A feed of `symbols` on one connection, every subscription confirmed."""
    h = Harness(list(symbols))
    (request,) = await h.tick()
    assert request["op"] == "subscribe"
    assert request["args"] == [t for s in symbols for t in topics(s)]
    assert h.feed.readiness(0.0, 1e9)[f"bybit:{symbols[0]}"] == ["no message yet",
                                                                 "book not synced"]  # fmt: skip
    h.reply(request)
    assert await h.tick() == []
    assert h.feed.readiness(0.0, 1e9) == {f"bybit:{s}": ["book not synced"] for s in symbols}
    return h


async def test_the_capture_through_the_feed_syncs_every_book_and_publishes_every_trade(
    capture: Capture,
) -> None:
    h = await subscribed()
    for frame in capture.topic_frames("orderbook", "publicTrade"):
        h.frame(frame)
    assert h.counts("orderbook_updates_total") == {
        s: capture.deltas[s] + capture.snapshots[s] for s in SYMBOLS
    }
    assert sum(capture.deltas.values()) == 1594
    assert h.counts("sequence_gaps_total") == {s: 0.0 for s in SYMBOLS}
    assert h.counts("resyncs_total") == {s: 0.0 for s in SYMBOLS}
    assert h.feed.readiness(0.0, 1e9) == {}
    assert h.publisher.unsynced == []
    # every trade of the raw frames, once, in order, with its own id
    published = [(t.symbol, t.trade_id) for t in h.publisher.trades]
    assert published == capture.trade_ids
    assert len(published) == len(set(published)) == 327
    assert h.count("trades_processed_total") == 327
    assert h.count("messages_error_total", reason="unknown_topic") == 0


async def test_one_missing_delta_resubscribes_that_symbols_book_only(capture: Capture) -> None:
    h = await subscribed()
    frames = capture.topic_frames("orderbook", "publicTrade")
    deltas = [i for i, f in enumerate(frames) if b'"delta"' in f and SYMBOL.encode() in f]
    missing = deltas[20]
    for frame in frames[:missing] + frames[missing + 1 :]:
        h.frame(frame)
    assert h.counts("sequence_gaps_total") == {s: float(s == SYMBOL) for s in SYMBOLS}
    assert h.counts("resyncs_total") == {s: float(s == SYMBOL) for s in SYMBOLS}
    assert h.publisher.unsynced == [SYMBOL]  # withdrawn from publishing, and nothing else
    assert list(h.feed.readiness(0.0, 1e9)) == [f"bybit:{SYMBOL}"]
    assert len(h.publisher.trades) == 327  # trades go on meanwhile
    assert await h.tick() == []  # the resubscribe backs off
    sent = await h.tick(after_s=1.0)
    assert [(m["op"], m["args"]) for m in sent] == [
        ("unsubscribe", [f"orderbook.{DEPTH}.{SYMBOL}"]),
        ("subscribe", [f"orderbook.{DEPTH}.{SYMBOL}"]),
    ]
    h.reply(sent[1])
    snapshot = next(f for f in frames if b'"snapshot"' in f and SYMBOL.encode() in f)
    h.frame(snapshot)  # a fresh snapshot (the capture's first stands in for it)
    assert h.feed.readiness(0.0, 1e9) == {}
    assert await h.tick(after_s=60.0) == []  # nothing else is resubscribed


async def test_a_snapshot_with_u_1_resets_the_book_without_a_resync() -> None:
    h = await subscribed(("BTCUSDT",))
    h.frame(book_message("BTCUSDT", "snapshot", 900, [["10", "1"]], [["11", "1"]]))
    h.frame(book_message("BTCUSDT", "delta", 901, [["10.5", "1"]], []))
    h.frame(book_message("BTCUSDT", "snapshot", 1, [["20", "2"]], [["21", "2"]]))
    h.frame(book_message("BTCUSDT", "delta", 2, [], [["21.5", "3"]]))
    book = h.feed.states[0].sync
    assert book.synced
    assert book.last_id == 2
    assert book.book.top(5) == ([("20", "2")], [("21", "2"), ("21.5", "3")])
    assert h.counts("sequence_gaps_total") == {"BTCUSDT": 0.0}
    assert h.counts("resyncs_total") == {"BTCUSDT": 0.0}
    assert h.counts("orderbook_updates_total") == {"BTCUSDT": 4.0}
    assert h.publisher.unsynced == []
    assert await h.tick(after_s=60.0) == []


async def test_a_crossed_book_resyncs_that_symbol() -> None:
    h = await subscribed(("BTCUSDT", "ETHUSDT"))
    for symbol in ("BTCUSDT", "ETHUSDT"):
        h.frame(book_message(symbol, "snapshot", 5, [["10", "1"]], [["11", "1"]]))
    h.frame(book_message("BTCUSDT", "delta", 6, [["11", "1"]], []))
    assert h.counts("sequence_gaps_total") == {"BTCUSDT": 1.0, "ETHUSDT": 0.0}
    sent = await h.tick(after_s=1.0)
    assert [(m["op"], m["args"]) for m in sent] == [
        ("unsubscribe", [f"orderbook.{DEPTH}.BTCUSDT"]),
        ("subscribe", [f"orderbook.{DEPTH}.BTCUSDT"]),
    ]


async def test_a_rejection_naming_no_topic_retries_each_topic_alone() -> None:
    h = Harness(["BTCUSDT", "NOPEUSDT"])
    (request,) = await h.tick()
    h.reply(request, "error:handler not found")  # names no topic: the whole request failed
    problems = h.feed.readiness(0.0, 1e9)
    for symbol in ("BTCUSDT", "NOPEUSDT"):
        assert "orderbook subscribe failing: rejected: error:handler not found" in \
            problems[f"bybit:{symbol}"]  # fmt: skip
    labels = {"exchange": "bybit", "channel": "orderbook", "reason": "rejected"}
    assert h.count("subscription_failures_total", symbol="NOPEUSDT", **labels) == 1
    assert await h.tick() == []  # not at once: it backs off
    again = await h.tick(after_s=10.0)
    assert sorted(m["args"][0] for m in again) == sorted(topics("BTCUSDT") + topics("NOPEUSDT"))
    assert all(len(m["args"]) == 1 and m["op"] == "subscribe" for m in again)
    for message in again:
        bad = "NOPEUSDT" in message["args"][0]
        h.reply(message, "error:handler not found" if bad else None)
    problems = h.feed.readiness(0.0, 1e9)
    assert "subscribe failing" not in str(problems["bybit:BTCUSDT"])
    assert "orderbook subscribe failing" in str(problems["bybit:NOPEUSDT"])
    assert h.count("subscription_failures_total", symbol="NOPEUSDT", **labels) == 2
    assert h.count("subscription_failures_total", symbol="BTCUSDT", **labels) == 1


async def test_a_rejection_naming_a_topic_fails_that_one_and_asks_the_rest_again() -> None:
    h = Harness(["BTCUSDT", "ETHUSDT"])
    (request,) = await h.tick()
    h.reply(request, "error:already subscribed,topic:publicTrade.ETHUSDT")
    problems = h.feed.readiness(0.0, 1e9)
    assert "publicTrade" not in str(problems["bybit:ETHUSDT"])  # already subscribed: fine
    again = await h.tick()  # the others, unknown: each asked again at once
    assert sorted(m["args"][0] for m in again) == sorted(
        [*topics("BTCUSDT"), f"orderbook.{DEPTH}.ETHUSDT"]
    )
    for message in again:
        h.reply(message)
    assert h.feed.readiness(0.0, 1e9) == {
        f"bybit:{s}": ["book not synced"] for s in ("BTCUSDT", "ETHUSDT")
    }
    assert h.count("subscription_failures_total", exchange="bybit", symbol="BTCUSDT",
                   channel="orderbook", reason="rejected") == 0  # fmt: skip


async def test_an_unanswered_subscribe_times_out_and_is_sent_again() -> None:
    h = Harness(["BTCUSDT"], subscribe_timeout_s=2.0)
    (request,) = await h.tick()
    h.frame(PONG)
    assert "orderbook subscription not confirmed yet" in \
        h.feed.readiness(0.0, 1e9)["bybit:BTCUSDT"]  # fmt: skip
    assert await h.tick(after_s=1.0) == []
    assert await h.tick(after_s=1.5) == []  # timed out now: sent again after a backoff
    labels = {"exchange": "bybit", "symbol": "BTCUSDT", "channel": "publicTrade"}
    assert h.count("subscription_failures_total", **labels, reason="timeout") == 1
    assert "publicTrade subscribe failing: no reply within 2s" in \
        h.feed.readiness(0.0, 1e9)["bybit:BTCUSDT"]  # fmt: skip
    (again,) = await h.tick(after_s=10.0)
    assert again["args"] == topics("BTCUSDT")
    assert again["req_id"] != request["req_id"]
    h.frame({"success": True, "ret_msg": "", "req_id": request["req_id"], "op": "subscribe"})
    assert "subscribe failing" in str(h.feed.readiness(0.0, 1e9))  # the old reply: no match
    h.reply(again)
    assert "subscribe failing" not in str(h.feed.readiness(0.0, 1e9))


async def test_spot_subscribes_at_most_10_topics_per_request() -> None:
    symbols = [f"S{i}USDT" for i in range(6)]
    h = Harness(symbols, category="spot")
    requests = await h.tick()
    assert [len(m["args"]) for m in requests] == [10, 2]
    assert [t for m in requests for t in m["args"]] == [t for s in symbols for t in topics(s)]
    linear = await Harness(symbols).tick()
    assert [len(m["args"]) for m in linear] == [12]


async def test_the_feed_pings_every_interval() -> None:
    h = Harness(["BTCUSDT"], ping_interval_s=0.01)
    pings: list[dict[str, Any]] = []
    two_pings = asyncio.Event()
    send = h.feed.connection.send

    async def watch(text: str) -> bool:
        if orjson.loads(text)["op"] == "ping":
            pings.append(orjson.loads(text))
            if len(pings) == 2:
                two_pings.set()
        return await send(text)

    h.feed.connection.send = watch  # type: ignore[method-assign]
    task = asyncio.create_task(h.feed._maintain())
    try:
        async with asyncio.timeout(5.0):
            await two_pings.wait()
    finally:
        task.cancel()
    assert [set(p) for p in pings] == [{"op", "req_id"}] * 2
    assert pings[0]["req_id"] != pings[1]["req_id"]
    h.frame(PONG)
    assert h.count("messages_error_total", reason="unknown_message") == 0


async def test_a_book_past_the_level_limit_is_refused_and_resynced() -> None:
    h = await subscribed(("BTCUSDT",))
    bids = [[str(i), "1"] for i in range(1, 5002)]  # 5,001 levels: one past OrderBook's cap
    h.frame(book_message("BTCUSDT", "snapshot", 5, bids, [["6000", "1"]]))
    labels = {"exchange": "bybit", "symbol": "BTCUSDT", "limit": "levels_per_side"}
    assert h.count("book_limits_exceeded_total", **labels) == 1
    assert h.counts("resyncs_total") == {"BTCUSDT": 1.0}
    assert h.counts("sequence_gaps_total") == {"BTCUSDT": 0.0}
    sent = await h.tick(after_s=1.0)
    assert [m["op"] for m in sent] == ["unsubscribe", "subscribe"]
