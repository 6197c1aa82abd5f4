"""The simulator's Kraken v2 dialect, read by the project's own Kraken parser and book."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.kraken_server import create_kraken_app
from marketdata.sim.scenarios import Scenario
from marketdata.venues.base import MalformedMessage
from marketdata.venues.kraken import KrakenBook, Outcome, Precision, parse
from marketdata.venues.kraken.wire import (
    Ack,
    BookMessage,
    Heartbeat,
    Instruments,
    KrakenEvent,
    Pong,
    Status,
    Trades,
)
from tests.helpers import free_port

SYMBOLS = ("BTC/USD", "ETH/USD")


class Client:
    """One WebSocket connection, read through marketdata.venues.kraken.parse."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.req_id = 0

    async def request(self, method: str, **params: Any) -> int:
        self.req_id += 1
        message: dict[str, Any] = {"method": method, "req_id": self.req_id}
        if params:
            message["params"] = params
        await self.ws.send_str(orjson.dumps(message).decode())
        return self.req_id

    async def raw(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return dict(orjson.loads(message.data))

    async def events(self) -> list[KrakenEvent]:
        message = await self.ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return list(parse(message.data, 0.0))

    async def until(self, wanted: Callable[[KrakenEvent], bool]) -> KrakenEvent:
        while True:
            for event in await self.events():
                if wanted(event):
                    return event


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Starts a simulator (once per test) and opens connections to it."""
    runners: list[web.AppRunner] = []
    sources: list[KrakenSource] = []
    session = aiohttp.ClientSession()

    async def open_client(
        scenario: Scenario | None = None, rate: float = 200.0, heartbeat_s: float = 1.0
    ) -> Client:
        if not runners:
            source = KrakenSource(rate, seed=3, symbols=(*SYMBOLS, "SOL/USD"))
            sources.append(source)
            runner = web.AppRunner(create_kraken_app(source, scenario, heartbeat_s))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            open_client.url = f"ws://127.0.0.1:{port}/kraken/v2"  # type: ignore[attr-defined]
        # frames as bytes, as the service reads them (a malformed one may not be UTF-8)
        ws = await session.ws_connect(open_client.url, decode_text=False)  # type: ignore[attr-defined]
        client = Client(ws)
        (status,) = await client.events()
        assert isinstance(status, Status)
        assert (status.system, status.api_version, status.version) == ("online", "v2", "2.0.0")
        return client

    yield open_client
    await session.close()
    for source in sources:
        await source.close()
    for runner in runners:
        await runner.cleanup()


async def precisions(client: Client) -> dict[str, Precision]:
    await client.request("subscribe", channel="instrument")
    ack = await client.until(lambda e: isinstance(e, Ack))
    assert isinstance(ack, Ack)
    assert (ack.success, ack.channel) == (True, "instrument")
    instruments = await client.until(lambda e: isinstance(e, Instruments))
    assert isinstance(instruments, Instruments)
    return instruments.pairs


class Books:
    """The client's books, by the project's KrakenBook; the outcome of every message."""

    def __init__(self, pairs: dict[str, Precision], depth: int = 10) -> None:
        self.books = {s: KrakenBook(s, depth, pairs[s]) for s in pairs}
        self.outcomes: list[tuple[str, bool, Outcome]] = []  # (symbol, snapshot, outcome)

    def apply(self, event: KrakenEvent) -> None:
        if isinstance(event, BookMessage):
            outcome = self.books[event.symbol].on_message(event)
            self.outcomes.append((event.symbol, event.snapshot, outcome))

    def updates(self, symbol: str | None = None) -> int:
        return sum(1 for s, snap, _ in self.outcomes if not snap and symbol in (None, s))


async def test_every_book_message_applies_with_its_checksum_and_trade_ids_run_on(connect):
    client = await connect()
    pairs = await precisions(client)
    assert pairs["BTC/USD"] == Precision(1, 8)
    assert pairs["ETH/USD"] == Precision(2, 8)
    await client.request("subscribe", channel="book", symbol=list(SYMBOLS), depth=10)
    await client.request("subscribe", channel="trade", symbol=list(SYMBOLS))
    books, acks = Books(pairs), []
    trade_ids: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    snapshots = 0
    while books.updates() < 400 or min(len(ids) for ids in trade_ids.values()) < 20:
        for event in await client.events():
            books.apply(event)
            if isinstance(event, Ack):
                acks.append((event.channel, event.symbol, event.success))
            elif isinstance(event, Trades):
                snapshots += event.snapshot
                for trade in event.trades:
                    trade_ids[trade.symbol].append(int(trade.trade_id))
    assert sorted(acks) == sorted((c, s, True) for c in ("book", "trade") for s in SYMBOLS)
    assert {outcome for _, _, outcome in books.outcomes} == {Outcome.APPLIED}
    assert [s for s, snap, _ in books.outcomes if snap] == list(SYMBOLS)  # one snapshot each
    assert books.updates("BTC/USD") > 100
    assert books.updates("ETH/USD") > 100
    assert snapshots == 2
    for ids in trade_ids.values():
        assert ids == list(range(ids[0], ids[0] + len(ids)))


async def test_frames_are_kraken_shaped(connect):
    client = await connect()
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    ack = await client.raw()
    assert ack["result"] == {"depth": 10, "snapshot": True, "symbol": "BTC/USD", "channel": "book"}
    assert (ack["method"], ack["success"], ack["req_id"]) == ("subscribe", True, 1)
    for key in ("time_in", "time_out"):
        assert len(ack[key]) == len("2023-10-06T17:35:55.440295Z")
        assert ack[key].endswith("Z")
    snapshot = await client.raw()
    (entry,) = snapshot["data"]
    assert snapshot["type"] == "snapshot"
    assert len(entry["bids"]) == len(entry["asks"]) == 10
    assert all(isinstance(level["price"], int | float) for level in entry["bids"])
    assert entry["timestamp"].endswith("Z")


async def test_depth_25_applies_and_a_bad_depth_is_refused(connect):
    client = await connect()
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=["SOL/USD"], depth=7)
    refused = await client.raw()
    assert refused["success"] is False
    assert refused["error"] == "EGeneral:Invalid arguments:depth"
    await client.request("subscribe", channel="book", symbol=["SOL/USD"], depth=25)
    books = Books(pairs, depth=25)
    while books.updates() < 200:
        for event in await client.events():
            books.apply(event)
            if isinstance(event, BookMessage) and event.snapshot:
                assert len(event.bids) == len(event.asks) == 25
    assert {outcome for _, _, outcome in books.outcomes} == {Outcome.APPLIED}


async def test_ping_gets_a_pong_and_heartbeats_come_while_subscribed(connect):
    client = await connect(heartbeat_s=0.05)
    req_id = await client.request("ping")
    pong = await client.until(lambda e: isinstance(e, Pong))
    assert isinstance(pong, Pong)
    assert pong.req_id == req_id
    await client.request("subscribe", channel="trade", symbol=["BTC/USD"])
    assert isinstance(await client.until(lambda e: isinstance(e, Heartbeat)), Heartbeat)


async def test_an_unknown_pair_is_refused_as_kraken_does(connect):
    client = await connect()
    await client.request("subscribe", channel="book", symbol=["XYZ/USD", "BTC/USD"])
    refused = await client.raw()
    assert refused["error"] == "Currency pair not supported XYZ/USD"
    assert (refused["success"], refused["symbol"], refused["req_id"]) == (False, "XYZ/USD", 1)
    ack = await client.raw()
    assert (ack["success"], ack["result"]["symbol"]) == (True, "BTC/USD")


async def test_reject_symbols_refuses_those_symbols_only(connect):
    client = await connect(Scenario(reject_symbols=frozenset({"ETH/USD"})))
    await client.request("subscribe", channel="trade", symbol=["ETH/USD", "BTC/USD"])
    acks = [await client.until(lambda e: isinstance(e, Ack)) for _ in range(2)]
    assert [(a.symbol, a.success) for a in acks if isinstance(a, Ack)] == [
        ("ETH/USD", False), ("BTC/USD", True),
    ]  # fmt: skip


async def test_reject_subscribes_refuses_the_first_requests_then_serves(connect):
    client = await connect(Scenario(reject_subscribes=2))
    for attempt in range(3):
        req_id = await client.request("subscribe", channel="book", symbol=["BTC/USD"])
        ack = await client.until(lambda e: isinstance(e, Ack))
        assert isinstance(ack, Ack)
        assert (ack.req_id, ack.symbol, ack.success) == (req_id, "BTC/USD", attempt == 2)
        assert (ack.error is None) == (attempt == 2)
    snapshot = await client.until(lambda e: isinstance(e, BookMessage))
    assert isinstance(snapshot, BookMessage)
    assert snapshot.snapshot
    other = await connect()  # counted per connection
    await other.request("subscribe", channel="book", symbol=["ETH/USD"])
    ack = await other.until(lambda e: isinstance(e, Ack))
    assert isinstance(ack, Ack)
    assert not ack.success


async def test_a_corrupt_checksum_resyncs_exactly_its_symbol(connect):
    client = await connect(Scenario(checksum_corrupt_every=150))
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=list(SYMBOLS))
    books = Books(pairs)
    while books.updates() < 150:
        for event in await client.events():
            books.apply(event)
    updates = [(s, outcome) for s, snap, outcome in books.outcomes if not snap]
    corrupted, outcome = updates[149]
    assert outcome is Outcome.RESYNC
    assert all(o is Outcome.APPLIED for _, o in updates[:149])
    other = next(s for s in SYMBOLS if s != corrupted)
    seen = len(books.outcomes)
    while books.updates() < 290:  # the 300th update would be corrupt again
        for event in await client.events():
            books.apply(event)
    later = books.outcomes[seen:]
    assert books.updates(other) > 100
    assert {o for s, _, o in later if s == other} == {Outcome.APPLIED}
    assert {o for s, _, o in later if s == corrupted} == {Outcome.WAITING}


async def test_resubscribing_after_a_resync_gives_a_fresh_snapshot_that_applies(connect):
    scenario = Scenario(gap_every=40)
    client = await connect(scenario)
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    books = Books(pairs)
    while Outcome.RESYNC not in {o for _, _, o in books.outcomes}:
        for event in await client.events():
            books.apply(event)
    assert books.updates() <= 40  # the 40th update is the one missing
    scenario.gap_every = 0
    await client.request("unsubscribe", channel="book", symbol=["BTC/USD"])
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    fresh = Books(pairs)
    acks = []
    while fresh.updates() < 30:
        for event in await client.events():
            if isinstance(event, Ack):
                acks.append((event.method, event.success))
            elif acks == [("unsubscribe", True), ("subscribe", True)]:
                fresh.apply(event)
    first = fresh.outcomes[0]
    assert first == ("BTC/USD", True, Outcome.APPLIED)
    assert {o for _, _, o in fresh.outcomes} == {Outcome.APPLIED}


async def test_unsubscribing_what_is_not_subscribed_is_refused(connect):
    client = await connect()
    await client.request("unsubscribe", channel="trade", symbol=["BTC/USD"])
    refused = await client.raw()
    assert (refused["method"], refused["success"]) == ("unsubscribe", False)
    assert refused["error"] == "Subscription Not Found"


async def test_a_silent_symbol_pauses_alone_and_resumes_with_an_update_that_applies(connect):
    scenario = Scenario(silence_ms=500, silence_every=60, silence_symbols=frozenset({"BTC/USD"}))
    client = await connect(scenario)
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=list(SYMBOLS))
    books = Books(pairs)
    loop = asyncio.get_running_loop()
    last: dict[str, float] = {}
    longest = {s: 0.0 for s in SYMBOLS}
    while books.updates("BTC/USD") < 100:
        for event in await client.events():
            books.apply(event)
            if isinstance(event, BookMessage):
                now = loop.time()
                longest[event.symbol] = max(
                    longest[event.symbol], now - last.get(event.symbol, now)
                )
                last[event.symbol] = now
    assert longest["BTC/USD"] >= 0.45
    assert longest["ETH/USD"] < 0.3
    assert {o for _, _, o in books.outcomes} == {Outcome.APPLIED}


async def test_malformed_frames_come_between_good_ones(connect):
    client = await connect(Scenario(malformed_every=10))
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    books, errors = Books(pairs), []
    while books.updates() < 100:
        message = await client.ws.receive(timeout=10)
        try:
            events = parse(message.data, 0.0)
        except MalformedMessage as e:
            errors.append(e.reason)
            continue
        for event in events:
            books.apply(event)
    assert {"bad_json", "bad_shape"} <= set(errors)
    assert {o for _, _, o in books.outcomes} == {Outcome.APPLIED}


async def test_duplicated_book_updates_change_nothing_and_disconnect_every_cuts(connect):
    client = await connect(Scenario(duplicate_every=3, disconnect_every=120))
    pairs = await precisions(client)
    await client.request("subscribe", channel="book", symbol=["BTC/USD"])
    books, frames, repeats, previous = Books(pairs), 0, 0, b""
    while True:
        message = await client.ws.receive(timeout=10)
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        frames += 1
        repeats += message.data == previous
        previous = message.data
        for event in parse(message.data, 0.0):
            books.apply(event)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert repeats > 20
    # The 120th frame closes: the status frame is not counted, precisions() read two.
    assert frames - repeats == 119 - 2
    assert {o for _, _, o in books.outcomes} == {Outcome.APPLIED}
