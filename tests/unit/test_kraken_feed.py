"""KrakenFeed's protocol: subscribes in order and confirmed, the real capture through the real
parser and book, one pair resynced alone, rejected and unanswered subscribes retried."""

from __future__ import annotations

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
from marketdata.venues.kraken.config import KrakenConfig
from marketdata.venues.kraken.feed import KrakenFeed
from tests.kraken_v2 import DEPTH, V2Capture, convert
from tests.unit.test_kraken_book import _corrupt_top_level

PAIR = "XMR/USD"


class Recorder:
    """The publisher's side of the feed: what it was told."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.unsynced: list[str] = []  # pairs whose book was withdrawn

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
        self.feed = KrakenFeed(
            KrakenConfig(symbols=tuple(symbols), **settings), symbols, context, "kraken:test"
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

    def ack(self, request: dict[str, Any], rejected: dict[str, str] | None = None) -> None:
        params = request["params"]
        for symbol in params.get("symbol", [None]):
            error = (rejected or {}).get(symbol)
            if error is None:
                result = {k: v for k, v in params.items() if k != "symbol"}
                if symbol is not None:
                    result["symbol"] = symbol
                reply = {"method": "subscribe", "result": result, "success": True}
            else:
                reply = {"method": "subscribe", "error": error, "success": False}
                reply["symbol"] = symbol
            self.frame({**reply, "req_id": request["req_id"]})

    def instruments(self, precisions: dict[str, tuple[int, int]]) -> None:
        pairs = [
            {"symbol": s, "price_precision": p, "qty_precision": q}
            for s, (p, q) in precisions.items()
        ]
        self.frame({"channel": "instrument", "type": "snapshot", "data": {"pairs": pairs}})

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture(scope="module")
def capture() -> V2Capture:
    return convert()


async def subscribed(capture: V2Capture) -> Harness:
    """A feed of every pair of the capture, its instrument, book and trade subscriptions
    confirmed."""
    h = Harness(sorted(capture.precisions))
    (instrument,) = await h.tick()
    assert instrument["method"] == "subscribe"
    assert instrument["params"] == {"channel": "instrument", "snapshot": True}
    assert await h.tick() == []  # book and trade wait for the precisions
    h.ack(instrument)
    h.instruments({s: (p.price, p.qty) for s, p in capture.precisions.items()})
    requests = await h.tick()
    assert sorted(r["params"]["channel"] for r in requests) == ["book", "trade"]
    for request in requests:
        assert request["params"]["symbol"] == sorted(capture.precisions)
        h.ack(request)
    book = next(r for r in requests if r["params"]["channel"] == "book")
    assert (book["params"]["depth"], book["params"]["snapshot"]) == (DEPTH, True)
    return h


async def test_every_checksum_of_the_capture_verifies_through_the_feed(
    capture: V2Capture,
) -> None:
    h = await subscribed(capture)
    for frame in capture.frames:
        h.frame(frame)
    for pair, updates in capture.updates.items():
        assert h.count("checksum_mismatches_total", exchange="kraken", symbol=pair) == 0
        applied = h.count("orderbook_updates_total", exchange="kraken", symbol=pair)
        assert applied == updates + 1, pair  # its snapshot and every update
    assert sum(capture.updates.values()) == 4269
    assert h.feed.readiness(0.0, 1e9) == {}
    assert all(state.sync.synced for state in h.feed.states)


async def test_one_corrupted_level_resubscribes_that_pair_only(capture: V2Capture) -> None:
    h = await subscribed(capture)
    frames, index = _corrupt_top_level(capture, PAIR)
    for frame in frames:
        h.frame(frame)
    mismatches = {
        pair: h.count("checksum_mismatches_total", exchange="kraken", symbol=pair)
        for pair in capture.precisions
    }
    assert mismatches == {pair: (1 if pair == PAIR else 0) for pair in capture.precisions}
    assert h.count("resyncs_total", exchange="kraken", symbol=PAIR) == 1
    assert h.publisher.unsynced == [PAIR]  # withdrawn from publishing, and nothing else
    assert list(h.feed.readiness(0.0, 1e9)) == [f"kraken:{PAIR}"]
    # The resync: unsubscribe and subscribe the book of that pair alone.
    sent = await h.tick(after_s=1.0)
    assert [(m["method"], m["params"]["channel"], m["params"]["symbol"]) for m in sent] == [
        ("unsubscribe", "book", [PAIR]),
        ("subscribe", "book", [PAIR]),
    ]
    h.ack(sent[1])
    snapshot = next(f for f in capture.book_frames if f'"{PAIR}"'.encode() in f)
    h.frame(snapshot)  # a fresh snapshot (the capture's first stands in for it)
    assert h.feed.readiness(0.0, 1e9) == {}


async def test_a_rejected_subscribe_is_on_ready_and_retried_with_backoff() -> None:
    h = Harness(["BTC/USD", "ETH/USD"], depth=10)
    (instrument,) = await h.tick()
    h.ack(instrument)
    h.instruments({"BTC/USD": (1, 8), "ETH/USD": (2, 8)})
    requests = await h.tick()
    book = next(r for r in requests if r["params"]["channel"] == "book")
    h.ack(book, rejected={"ETH/USD": "Currency pair not in ISO 4217-A3 format ETH/USD"})
    for request in requests:
        if request is not book:
            h.ack(request)
    problems = h.feed.readiness(0.0, 1e9)
    assert "book subscribe failing: rejected: Currency pair not in ISO 4217-A3 format " \
           "ETH/USD" in problems["kraken:ETH/USD"]  # fmt: skip
    assert "book subscribe failing" not in str(problems.get("kraken:BTC/USD"))
    labels = {"exchange": "kraken", "symbol": "ETH/USD", "channel": "book", "reason": "rejected"}
    assert h.count("subscription_failures_total", **labels) == 1
    assert await h.tick() == []  # not at once: it backs off
    (again,) = await h.tick(after_s=10.0)
    assert (again["params"]["channel"], again["params"]["symbol"]) == ("book", ["ETH/USD"])
    h.ack(again)
    assert "book subscribe failing" not in str(h.feed.readiness(0.0, 1e9))


async def test_an_unanswered_subscribe_times_out_and_is_sent_again() -> None:
    h = Harness(["BTC/USD"], depth=10, subscribe_timeout_s=2.0)
    (instrument,) = await h.tick()
    assert await h.tick(after_s=1.0) == []
    assert await h.tick(after_s=1.5) == []  # timed out now: sent again after a backoff
    labels = {"exchange": "kraken", "symbol": "BTC/USD", "channel": "instrument"}
    assert h.count("subscription_failures_total", **labels, reason="timeout") == 1
    assert (
        "instrument subscribe failing: no reply within 2s"
        in h.feed.readiness(0.0, 1e9)["kraken:BTC/USD"]
    )
    (again,) = await h.tick(after_s=10.0)
    assert again["params"]["channel"] == "instrument"
    assert again["req_id"] != instrument["req_id"]


async def test_a_pair_kraken_does_not_list_is_reported_and_not_subscribed() -> None:
    h = Harness(["BTC/USD", "NOPE/USD"], depth=10)
    (instrument,) = await h.tick()
    h.ack(instrument)
    h.instruments({"BTC/USD": (1, 8)})
    requests = await h.tick()
    assert all(r["params"]["symbol"] == ["BTC/USD"] for r in requests)
    problems = h.feed.readiness(0.0, 1e9)
    assert problems["kraken:NOPE/USD"] == ["not listed by Kraken's instrument channel"]


def _trades(kind: str, ids: range) -> dict[str, Any]:
    data = [
        {"symbol": "BTC/USD", "side": "buy", "price": 100.5, "qty": 0.25, "ord_type": "limit",
         "trade_id": i, "timestamp": "2026-11-22T10:00:00.123456Z"}
        for i in ids
    ]  # fmt: skip
    return {"channel": "trade", "type": kind, "data": data}


async def test_trades_are_published_once_across_resubscribe_snapshots() -> None:
    h = Harness(["BTC/USD"], depth=10)
    h.frame(_trades("snapshot", range(1, 51)))
    h.frame(_trades("update", range(51, 53)))
    h.feed._on_state(False)  # a reconnect: the next snapshot repeats the last 50 trades
    h.feed._on_state(True)
    h.frame(_trades("snapshot", range(5, 55)))
    h.frame(_trades("update", range(55, 56)))
    assert [t.trade_id for t in h.publisher.trades] == [str(i) for i in range(1, 56)]
    assert h.count("trades_duplicate_total") == 48
    assert h.publisher.trades[0].price_text == "100.5"
