"""OkxFeed's protocol: the recording through the real parser and books, one instrument
resynced alone, refused and unanswered subscribes retried, the hourly subscribe budget,
pings, the 64008 handover and the REST-snapshot mode."""

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
from marketdata.venues.okx.book_state import SnapshotOutcome
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.feed import Link, OkxFeed
from marketdata.venues.okx.subscriptions import SubscribeBudget
from marketdata.venues.okx.wire import RestBook, levels
from tests.okx_capture import INSTRUMENTS, OkxCapture, load
from tests.unit.test_okx_book import corrupt_top_level

INST = "BTC-USDT"


class Recorder:
    """The publisher's side of the feed: what it was told."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.unsynced: list[str] = []  # instruments whose book was withdrawn

    def register(self, state: AnyState) -> None:
        pass

    def book_changed(self, state: AnyState) -> None:
        if not state.sync.synced:
            self.unsynced.append(state.symbol)

    def trade(self, state: AnyState, trade: Trade) -> None:
        self.trades.append(trade)


class Harness:
    def __init__(self, symbols: list[str] | tuple[str, ...], **config: Any) -> None:
        self.metrics = Metrics()
        self.publisher = Recorder()
        context = FeedContext(
            self.publisher,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]  # nothing connects: frames are handed in
            ReconnectConfig(initial_delay_s=0.5, max_delay_s=5.0),
            self.metrics,
            30.0,
        )
        settings = {"symbols_per_connection": len(symbols), **config}
        self.feed = OkxFeed(
            OkxConfig(symbols=tuple(symbols), **settings), symbols, context, "okx:test"
        )
        self.sent: list[tuple[Link, Any]] = []
        self.now = time.monotonic()  # the feed schedules retries on this clock
        self.connect(self.feed.active)

    def connect(self, link: Link) -> None:
        async def send(text: str) -> bool:
            self.sent.append((link, text if text == "ping" else orjson.loads(text)))
            return True

        link.connection.send = send  # type: ignore[method-assign]
        link.connection.connected = True
        self.feed.on_state(link, True)

    async def tick(self, after_s: float = 0.0, link: Link | None = None) -> list[Any]:
        """Let the feed send what is due `after_s` from now; what it sent (on `link`, or
        on the active connection), pings left out."""
        self.now += after_s
        before = len(self.sent)
        await self.feed._send_due(self.now)
        link = link or self.feed.active
        return [m for k, m in self.sent[before:] if k is link and m != "ping"]

    def frame(self, message: dict[str, Any] | bytes, link: Link | None = None) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.feed.on_frame(link or self.feed.active, raw, 1.0)

    def ack(self, request: dict[str, Any], link: Link | None = None) -> None:
        for arg in request["args"]:
            self.frame({"event": request["op"], "arg": arg, "connId": "c1"}, link)

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture(scope="module")
def capture() -> OkxCapture:
    return load()


async def subscribed(symbols: tuple[str, ...] = INSTRUMENTS, **config: Any) -> Harness:
    h = Harness(symbols, **config)
    (request,) = await h.tick()
    assert request["op"] == "subscribe"
    assert sorted((a["channel"], a["instId"]) for a in request["args"]) == sorted(
        (c, s) for s in symbols for c in ("books", "trades")
    )
    h.ack(request)
    assert h.feed.readiness(0.0, 1e9) == {f"okx:{s}": ["book not synced"] for s in symbols}
    return h


async def test_every_checksum_of_the_recording_verifies_through_the_feed(
    capture: OkxCapture,
) -> None:
    h = await subscribed()
    for frame in capture.frames:
        h.frame(frame)
    for inst, updates in capture.updates.items():
        assert h.count("checksum_mismatches_total", exchange="okx", symbol=inst) == 0
        applied = h.count("orderbook_updates_total", exchange="okx", symbol=inst)
        assert applied == updates + 1, inst  # its snapshot and every update
    assert sum(capture.updates.values()) + 3 == 290
    assert h.feed.readiness(0.0, 1e9) == {}
    assert h.publisher.unsynced == []
    # Trades: each once, ids as the exchange's text, contiguous per instrument.
    assert len(h.publisher.trades) == 74
    assert h.count("trades_duplicate_total") == 0
    assert h.count("trade_gaps_total", exchange="okx", symbol=INST) == 0
    ids = [t.trade_id for t in h.publisher.trades if t.symbol == INST]
    assert ids == [str(i) for i in range(338476307, 338476376)]


async def test_one_corrupted_level_resubscribes_that_instrument_only(
    capture: OkxCapture,
) -> None:
    h = await subscribed()
    frames, _ = corrupt_top_level(capture, INST)
    for frame in frames:
        h.frame(frame)
    mismatches = {
        inst: h.count("checksum_mismatches_total", exchange="okx", symbol=inst)
        for inst in INSTRUMENTS
    }
    assert mismatches == {inst: (1 if inst == INST else 0) for inst in INSTRUMENTS}
    assert h.count("resyncs_total", exchange="okx", symbol=INST) == 1
    assert h.publisher.unsynced == [INST]  # withdrawn from publishing, and nothing else
    assert list(h.feed.readiness(0.0, 1e9)) == [f"okx:{INST}"]
    sent = await h.tick(after_s=10.0)  # after the resync backoff
    assert sent == [
        {"op": "unsubscribe", "args": [{"channel": "books", "instId": INST}]},
        {"op": "subscribe", "args": [{"channel": "books", "instId": INST}]},
    ]
    h.ack(sent[0])
    h.ack(sent[1])
    snapshot = next(f for f in capture.book_frames if INST.encode() in f)
    h.frame(snapshot)  # a fresh snapshot (the recording's first stands in for it)
    assert h.feed.readiness(0.0, 1e9) == {}


async def test_an_error_naming_no_argument_fails_the_oldest_request() -> None:
    h = Harness(["BTC-USDT", "ETH-USDT"])
    (request,) = await h.tick()
    h.frame({"event": "error", "code": "60012", "msg": "Invalid request", "connId": "c1"})
    problems = h.feed.readiness(0.0, 1e9)
    for inst in ("BTC-USDT", "ETH-USDT"):
        assert "books subscribe failing: rejected: 60012 Invalid request" in problems[f"okx:{inst}"]
    labels = {"exchange": "okx", "symbol": "ETH-USDT", "channel": "trades", "reason": "rejected"}
    assert h.count("subscription_failures_total", **labels) == 1
    assert await h.tick() == []  # not at once: it backs off
    (again,) = await h.tick(after_s=10.0)
    assert again == request
    h.ack(again)
    assert "subscribe failing" not in str(h.feed.readiness(0.0, 1e9))


async def test_an_error_naming_an_instrument_fails_that_one_alone() -> None:
    h = Harness(["BTC-USDT", "NOPE-USDT"])
    (request,) = await h.tick()
    h.frame({"event": "error", "code": "60018",
             "msg": "Wrong URL or channel:books,instId:NOPE-USDT doesn't exist"})  # fmt: skip
    h.ack({"op": "subscribe", "args": [a for a in request["args"] if a["instId"] != "NOPE-USDT"]})
    problems = h.feed.readiness(0.0, 1e9)
    assert problems["okx:BTC-USDT"] == ["book not synced"]
    assert any("rejected: 60018" in p for p in problems["okx:NOPE-USDT"])


async def test_an_unanswered_subscribe_times_out_and_is_sent_again() -> None:
    h = Harness(["BTC-USDT"], subscribe_timeout_s=2.0)
    (request,) = await h.tick()
    assert await h.tick(after_s=1.0) == []
    assert await h.tick(after_s=1.5) == []  # timed out now: sent again after a backoff
    labels = {"exchange": "okx", "symbol": "BTC-USDT", "channel": "books", "reason": "timeout"}
    assert h.count("subscription_failures_total", **labels) == 1
    assert (
        "books subscribe failing: no reply within 2s" in h.feed.readiness(0.0, 1e9)["okx:BTC-USDT"]
    )
    (again,) = await h.tick(after_s=10.0)
    assert again == request


async def test_resubscribes_stop_at_480_requests_an_hour() -> None:
    h = await subscribed(("BTC-USDT",))
    link = h.feed.active
    link.subs.budget = SubscribeBudget(limit=4, window_s=3600.0)
    link.subs.budget.take(h.now)  # the first subscribe, as it was counted
    sent: list[Any] = []
    for _ in range(3):  # three resyncs in a row
        link.subs.resubscribe(("books", INST), h.now)
        batch = await h.tick(after_s=1.0)
        sent += batch
        for request in batch:
            h.ack(request)
    # 1 + 2 = 3 of 4: the second resync's pair would pass the budget, so it waits (and a
    # third finds it waiting already).
    assert [m["op"] for m in sent] == ["unsubscribe", "subscribe"]
    assert (
        "subscribes held back: 4 sent on this connection in an hour"
        in (h.feed.readiness(0.0, 1e9)["okx:BTC-USDT"])
    )
    assert await h.tick(after_s=1000.0) == []
    later = await h.tick(after_s=2600.0)  # an hour after the first: room for the pair
    assert [m["op"] for m in later] == ["unsubscribe", "subscribe"]


async def test_a_text_ping_goes_every_ping_interval() -> None:
    h = Harness(["BTC-USDT"], ping_interval_s=10.0)
    pings = lambda: sum(1 for _, m in h.sent if m == "ping")  # noqa: E731
    await h.tick()
    assert pings() == 0
    await h.tick(after_s=10.5)  # the first is due 10 s after the connection opened
    assert pings() == 1
    await h.tick(after_s=5.0)
    assert pings() == 1
    await h.tick(after_s=5.0)
    assert pings() == 2
    h.frame(b"pong")
    assert h.count("messages_error_total", reason="bad_json") == 0


def test_pings_go_at_least_twice_per_stale_after_s() -> None:
    h = Harness(["BTC-USDT"], ping_interval_s=25.0)  # the harness's stale_after_s is 30
    assert h.feed.ping_every == 15.0


async def test_an_upgrade_notice_hands_over_without_a_book_going_unsynced(
    capture: OkxCapture,
) -> None:
    h = await subscribed()
    for frame in capture.frames[:200]:
        h.frame(frame)
    old = h.feed.active
    h.frame({"event": "notice", "code": "64008", "msg": "The connection will soon be closed "
             "for a service upgrade. Please reconnect.", "connId": "c1"})  # fmt: skip
    new = h.feed.successor
    assert new is not None
    h.connect(new)
    (request,) = await h.tick(link=new)
    h.ack(request, new)
    for frame in capture.frames[200:]:  # the old connection goes on meanwhile
        h.frame(frame, old)
    snapshots = [f for f in capture.book_frames if b'"snapshot"' in f]
    trades = [f for f in capture.frames if b'"trades"' in f and b'"data"' in f][-3:]
    for frame in trades:  # the new connection repeats the last trades: dropped by id
        h.frame(frame, new)
    for frame in snapshots[:2]:
        h.frame(frame, new)
    assert h.feed.active is old  # not yet: one book of the successor is not synced
    h.frame(snapshots[2], new)
    assert h.feed.active is new
    assert h.feed.successor is None
    assert h.publisher.unsynced == []  # no book was ever withdrawn
    assert h.feed.readiness(0.0, 1e9) == {}
    assert all(state.sync is new.books[state.symbol] for state in h.feed.states)
    assert len(h.publisher.trades) == 74
    assert h.count("trades_duplicate_total") == 3


# -- snapshot: rest --------------------------------------------------------------------------


def update(seq: int, prev: int) -> dict[str, Any]:
    data = {"asks": [], "bids": [["100", "1", "0", "1"]], "ts": "1000", "checksum": 0,
            "seqId": seq, "prevSeqId": prev}  # fmt: skip
    return {"arg": {"channel": "books", "instId": INST}, "action": "update", "data": [data]}


def rest(seq: int) -> RestBook:
    bids = levels([["99", "3", "0", "1"]], INST, "bids")
    return RestBook(INST, bids, levels([["101", "2", "0", "1"]], INST, "asks"), seq, 900, 1.0)


async def test_rest_mode_bridges_a_snapshot_and_refetches_after_a_break() -> None:
    h = await subscribed((INST,), snapshot="rest")
    fetcher = h.feed.snapshots
    assert fetcher is not None
    asked: list[str] = []
    fetcher.request = lambda book: asked.append(book.inst_id)  # type: ignore[method-assign]
    book = h.feed.active.books[INST]
    h.frame(update(11, 10))
    h.frame(update(13, 11))
    assert asked == [INST, INST]  # one fetch runs at a time: the fetcher sees to that
    assert h.feed._apply_snapshot(book, rest(9)) is SnapshotOutcome.TOO_OLD
    assert h.feed._apply_snapshot(book, rest(11)) is SnapshotOutcome.SYNCED
    assert h.count("diffs_dropped_total", exchange="okx", symbol=INST) == 1
    assert h.feed.readiness(0.0, 1e9) == {}
    assert book.last_id == 13
    h.frame(update(20, 17))  # 14..17 lost
    assert h.count("sequence_gaps_total", exchange="okx", symbol=INST) == 1
    assert h.publisher.unsynced == [INST]
    assert await h.tick(after_s=10.0) == []  # no resubscribe: a REST snapshot will do
    h.frame(update(21, 20))
    assert asked[-1] == INST
    assert book.wants_snapshot


def snapshot_frame(seq: int) -> dict[str, Any]:
    data = {"asks": [["101", "2", "0", "1"]], "bids": [["99", "3", "0", "1"]], "ts": "900",
            "checksum": 0, "seqId": seq, "prevSeqId": -1}  # fmt: skip
    return {"arg": {"channel": "books", "instId": INST}, "action": "snapshot", "data": [data]}


async def test_in_band_a_seq_id_gap_resubscribes_that_book() -> None:
    h = await subscribed((INST, "ETH-USDT"))
    h.frame(snapshot_frame(10))
    h.frame(update(11, 10))
    assert h.feed.active.books[INST].last_id == 11
    h.frame(update(15, 13))  # 12..13 lost
    assert h.count("sequence_gaps_total", exchange="okx", symbol=INST) == 1
    assert h.count("resyncs_total", exchange="okx", symbol=INST) == 1
    assert h.publisher.unsynced == [INST]
    sent = await h.tick(after_s=10.0)
    assert [(m["op"], m["args"]) for m in sent] == [
        ("unsubscribe", [{"channel": "books", "instId": INST}]),
        ("subscribe", [{"channel": "books", "instId": INST}]),
    ]
    h.frame(update(16, 15))  # the old subscription, before the unsubscribe took: ignored
    assert h.count("orderbook_updates_total", exchange="okx", symbol=INST) == 2
    h.ack(sent[1])
    h.frame(snapshot_frame(20))
    h.frame(update(21, 20))
    assert h.feed.active.books[INST].last_id == 21
    assert "okx:BTC-USDT" not in h.feed.readiness(0.0, 1e9)


async def test_a_successor_takes_over_at_once_when_the_old_connection_goes_first() -> None:
    h = await subscribed((INST,))
    h.frame(snapshot_frame(10))
    old = h.feed.active
    h.frame({"event": "notice", "code": "64008", "msg": "upgrade"})
    new = h.feed.successor
    assert new is not None
    h.connect(new)
    old.connection.connected = False
    h.feed.on_state(old, False)  # cut before the successor's books synced
    assert h.feed.active is new
    assert h.feed.successor is None
    assert h.publisher.unsynced == [INST]  # its book is not there yet: said so
    (request,) = await h.tick()
    h.ack(request)
    h.frame(snapshot_frame(30))
    assert h.feed.readiness(0.0, 1e9) == {}
    assert h.feed.states[0].sync is new.books[INST]
