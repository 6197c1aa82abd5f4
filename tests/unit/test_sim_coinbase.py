"""The simulator's Coinbase Advanced Trade dialect, read by the project's own Coinbase
parser, sequence check, book and ticker check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.coinbase_server import create_coinbase_app
from marketdata.sim.scenarios import Scenario
from marketdata.venues.base import MalformedMessage
from marketdata.venues.coinbase import CoinbaseBook, Outcome, SequenceCheck, TopCheck, Verdict
from marketdata.venues.coinbase.wire import (
    BookEvent,
    Error,
    Frame,
    Heartbeat,
    Subscriptions,
    Ticker,
    Trades,
    parse,
)
from tests.helpers import free_port

PRODUCTS = ("BTC-USD", "ETH-USD")
CHANNELS = ("heartbeats", "level2", "market_trades", "ticker")
FIRST_TRADE_ID = 10_000_001  # the generated markets number trades from here


class Count:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Client:
    """One WebSocket connection, every frame read through the client's parse."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, kind: str, channel: str, products: list[str]) -> None:
        message = {"type": kind, "product_ids": products, "channel": channel}
        await self.ws.send_str(orjson.dumps(message).decode())

    async def subscribe_all(self, products: list[str]) -> None:
        for channel in CHANNELS:
            await self.send("subscribe", channel, products)

    async def raw(self) -> bytes:
        message = await self.ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return message.data.encode()

    async def frame(self) -> Frame:
        return parse(await self.raw(), 0.0)

    async def frames(self, n: int) -> list[Frame]:
        return [await self.frame() for _ in range(n)]


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    runners: list[web.AppRunner] = []
    sources: list[CoinbaseSource] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        source: CoinbaseSource, scenario: Scenario | None = None, **app: float
    ) -> Client:
        if source not in sources:
            sources.append(source)
            runner = web.AppRunner(
                create_coinbase_app(source, scenario, **app), access_log=None, shutdown_timeout=0.1
            )
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            source_ports[id(source)] = port
        session = aiohttp.ClientSession()
        sessions.append(session)
        url = f"ws://127.0.0.1:{source_ports[id(source)]}/coinbase"
        return Client(await session.ws_connect(url, max_msg_size=64 << 20))

    source_ports: dict[int, int] = {}
    yield start
    for session in sessions:
        await session.close()
    for source in sources:
        await source.close()
    for runner in runners:
        await runner.cleanup()


class Books:
    """What a client keeps of each product: its book, ticker check, trades and sequence."""

    def __init__(self) -> None:
        self.books = {p: CoinbaseBook(p) for p in PRODUCTS}
        self.mismatches = Count()
        self.checks = {p: TopCheck(Count(), self.mismatches) for p in PRODUCTS}
        self.sequence = SequenceCheck()
        self.gaps = 0
        self.trades: dict[str, list[int]] = {p: [] for p in PRODUCTS}
        self.outcomes: list[Outcome] = []
        self.verdicts: list[Verdict] = []
        self.kinds: list[str] = []

    def take(self, frame: Frame) -> None:
        if frame.sequence is not None and self.sequence.check(frame.sequence) is not None:
            self.gaps += 1
        self.kinds.append(frame.channel)
        for event in frame.events:
            if isinstance(event, BookEvent):
                outcome = self.books[event.symbol].on_event(event)
                self.outcomes.append(outcome)
                verdict = self.checks[event.symbol].on_book(self.books[event.symbol].book)
                if verdict is not None:
                    self.verdicts.append(verdict)
            elif isinstance(event, Ticker) and self.books[event.symbol].synced:
                verdict = self.checks[event.symbol].on_ticker(event)
                if verdict is not None:
                    self.verdicts.append(verdict)
            elif isinstance(event, Trades):
                for trade in event.trades:
                    ids = self.trades[trade.symbol]
                    if not ids or int(trade.trade_id) > ids[-1]:
                        ids.append(int(trade.trade_id))


async def _drain_after_pause(client: Client, books: Books, source: CoinbaseSource) -> None:
    """Stop the markets; read until a heartbeat queued after that: every step's frames
    have then come."""
    source.paused = True
    await asyncio.sleep(0.05)
    while True:
        frame = await client.frame()
        books.take(frame)
        if frame.channel == "heartbeats":
            return


async def test_a_subscribe_sends_snapshots_then_the_cumulative_listing(connect):
    source = CoinbaseSource(50, seed=1, symbols=PRODUCTS)
    client = await connect(source)
    await client.send("subscribe", "market_trades", list(PRODUCTS))
    await client.send("subscribe", "level2", list(PRODUCTS))
    frames = await client.frames(6)
    assert [f.sequence for f in frames] == list(range(6))
    assert [f.channel for f in frames[:3]] == ["market_trades", "market_trades", "subscriptions"]
    assert frames[2].events == [Subscriptions({"market_trades": frozenset(PRODUCTS)})]
    snapshots = [f for f in frames[3:] if f.channel == "l2_data"]
    assert all(isinstance(f.events[0], BookEvent) and f.events[0].snapshot for f in snapshots)
    listing = [f for f in frames[3:] if f.channel == "subscriptions"]
    assert listing[0].events == [
        Subscriptions({"level2": frozenset(PRODUCTS), "market_trades": frozenset(PRODUCTS)})
    ]
    await client.send("unsubscribe", "level2", ["BTC-USD"])
    while (frame := await client.frame()).channel != "subscriptions":
        pass
    assert frame.events == [
        Subscriptions({"level2": frozenset({"ETH-USD"}), "market_trades": frozenset(PRODUCTS)})
    ]


async def test_every_frame_applies_cleanly_with_no_faults(connect):
    source = CoinbaseSource(100, seed=2, symbols=PRODUCTS)
    client = await connect(source, heartbeat_s=0.2)
    await client.subscribe_all(list(PRODUCTS))
    books = Books()
    for frame in await client.frames(600):
        books.take(frame)
    await _drain_after_pause(client, books, source)
    assert books.gaps == 0
    assert set(books.outcomes) == {Outcome.APPLIED}
    assert len(books.verdicts) > 10
    assert set(books.verdicts) == {Verdict.MATCH}  # the tickers agree with the book
    assert books.mismatches.value == 0
    assert {"l2_data", "market_trades", "ticker", "heartbeats"} <= set(books.kinds)
    for product in PRODUCTS:
        market = source.markets[product]
        book = books.books[product].book
        bids, asks = book.level_counts()
        assert (bids, asks) == (len(market.bids), len(market.asks))  # the whole book
        bid, ask = book.best_levels()
        (sim_bid,), (sim_ask,) = market.top(1)
        assert bid is not None
        assert ask is not None
        assert (bid[0], bid[1]) == (float(sim_bid[0]), float(sim_bid[1]))
        assert (ask[0], ask[1]) == (float(sim_ask[0]), float(sim_ask[1]))
        # Trades: the snapshot's and every one since, in order, none missing.
        ids = books.trades[product]
        assert ids == list(range(ids[0], market.trade_id + 1))


async def test_trades_are_newest_first_and_the_side_is_the_makers(connect):
    source = CoinbaseSource(200, seed=3, symbols=["BTC-USD"])
    client = await connect(source)
    await client.send("subscribe", "level2", ["BTC-USD"])
    while (await client.frame()).channel != "subscriptions":
        pass
    await asyncio.sleep(0.8)  # trades pile up for the snapshot
    await client.send("subscribe", "market_trades", ["BTC-USD"])
    while (raw := await client.raw()) and b'"market_trades"' not in raw:
        pass
    message = orjson.loads(raw)
    entries = message["events"][0]["trades"]
    assert message["events"][0]["type"] == "snapshot"
    assert 1 < len(entries) <= 100
    ids = [int(t["trade_id"]) for t in entries]
    assert ids == sorted(ids, reverse=True)
    recent = {int(t["a"]): t for t in source.markets["BTC-USD"].recent_trades}
    for entry in entries:  # the maker's side: a taker buying (m false) prints SELL
        assert entry["side"] == ("BUY" if recent[int(entry["trade_id"])]["m"] else "SELL")
    parsed = parse(raw, 0.0).events[0]
    assert isinstance(parsed, Trades)
    assert [int(t.trade_id) for t in parsed.trades] == sorted(ids)
    for trade in parsed.trades:
        assert trade.side == ("sell" if recent[int(trade.trade_id)]["m"] else "buy")  # taker


async def test_heartbeats_count_and_take_their_place_in_the_sequence(connect):
    client = await connect(CoinbaseSource(10, seed=4, symbols=["BTC-USD"]), heartbeat_s=0.05)
    await client.send("subscribe", "heartbeats", ["BTC-USD"])
    frames = await client.frames(4)
    assert frames[0].events == [Subscriptions({"heartbeats": frozenset({"heartbeats"})})]
    assert [f.sequence for f in frames] == [0, 1, 2, 3]
    assert [e.counter for f in frames[1:] for e in f.events if isinstance(e, Heartbeat)] == [
        0,
        1,
        2,
    ]


async def test_gap_every_drops_frames_and_the_sequence_shows_each(connect):
    source = CoinbaseSource(200, seed=5, symbols=PRODUCTS)
    client = await connect(source, Scenario(gap_every=10))
    await client.subscribe_all(list(PRODUCTS))
    sequences = [f.sequence for f in await client.frames(90)]
    assert sequences == [s for s in range(100) if (s + 1) % 10][:90]
    check, gaps = SequenceCheck(), 0
    for sequence in sequences:
        assert sequence is not None
        gaps += check.check(sequence) is not None
    assert gaps == 9


@pytest.mark.parametrize(("knob", "gaps"), [("duplicate_every", 4), ("reorder_every", 12)])
async def test_duplicates_and_reordered_frames_break_the_sequence(connect, knob, gaps):
    """A repeat shows as one gap (n, n); a frame held back as three (n+1, n, n+2)."""
    source = CoinbaseSource(200, seed=6, symbols=PRODUCTS)
    client = await connect(source, Scenario(**{knob: 10}))
    await client.subscribe_all(list(PRODUCTS))
    check, seen = SequenceCheck(), 0
    for frame in await client.frames(44):
        assert frame.sequence is not None
        seen += check.check(frame.sequence) is not None
    assert seen == gaps


async def test_fault_symbols_leave_other_connections_whole(connect):
    source = CoinbaseSource(200, seed=7, symbols=PRODUCTS)
    scenario = Scenario(gap_every=5, fault_symbols=frozenset({"BTC-USD"}))
    faulty, clean = await connect(source, scenario), await connect(source, scenario)
    await faulty.subscribe_all(["BTC-USD"])
    await clean.subscribe_all(["ETH-USD"])
    clean_sequences = [f.sequence for f in await clean.frames(60)]
    faulty_sequences = [f.sequence for f in await faulty.frames(60)]
    assert clean_sequences == list(range(60))
    assert faulty_sequences != list(range(60))


async def test_rejected_symbols_get_coinbases_error_frame(connect):
    source = CoinbaseSource(20, seed=8, symbols=PRODUCTS)
    client = await connect(source, Scenario(reject_symbols=frozenset({"ETH-USD"})))
    await client.send("subscribe", "level2", ["ETH-USD"])
    raw = await client.raw()
    message = orjson.loads(raw)
    assert set(message) == {"type", "message"}
    assert message["type"] == "error"
    assert "ETH-USD" in message["message"]
    frame = parse(raw, 0.0)
    assert frame.sequence is None
    assert isinstance(frame.events[0], Error)
    await client.send("subscribe", "level2", ["BTC-USD"])
    frames = await client.frames(2)
    assert frames[0].sequence == 0  # an error frame takes no number
    assert frames[1].events == [Subscriptions({"level2": frozenset({"BTC-USD"})})]


async def test_the_first_subscribes_are_refused_then_taken(connect):
    client = await connect(
        CoinbaseSource(20, seed=9, symbols=PRODUCTS), Scenario(reject_subscribes=2)
    )
    for _ in range(3):
        await client.send("subscribe", "heartbeats", [])
    frames = await client.frames(3)
    assert [f.channel for f in frames] == ["error", "error", "subscriptions"]


async def test_unknown_products_and_channels_are_refused(connect):
    client = await connect(CoinbaseSource(20, seed=10, symbols=PRODUCTS))
    await client.send("subscribe", "level2", ["DOGE-EUR"])
    await client.send("subscribe", "candles", ["BTC-USD"])
    await client.ws.send_str("not json")
    frames = await client.frames(3)
    assert [f.channel for f in frames] == ["error"] * 3
    messages = [e.message for f in frames for e in f.events if isinstance(e, Error)]
    assert "DOGE-EUR" in messages[0]
    assert "candles" in messages[1]


async def test_a_connection_with_no_subscribe_is_closed(connect):
    source = CoinbaseSource(20, seed=11, symbols=PRODUCTS)
    idle = await connect(source, subscribe_within_s=0.2, heartbeat_s=0.05)
    busy = await connect(source)
    await busy.send("subscribe", "heartbeats", [])
    message = await idle.ws.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert "no subscribe within 0.2s" in message.extra
    await asyncio.sleep(0.3)
    assert not busy.ws.closed
    assert len(await busy.frames(3)) == 3  # listing and heartbeats go on


async def test_malformed_frames_are_skipped_and_the_sequence_carries_on(connect):
    source = CoinbaseSource(200, seed=12, symbols=PRODUCTS)
    client = await connect(source, Scenario(malformed_every=7))
    await client.subscribe_all(list(PRODUCTS))
    sequences, malformed = [], 0
    while len(sequences) < 40:
        try:
            frame = await client.frame()
        except MalformedMessage:
            malformed += 1
            continue
        sequences.append(frame.sequence)
    assert malformed >= 5
    assert sequences == list(range(40))


async def test_disconnect_every_cuts_only_the_chosen_connections(connect):
    source = CoinbaseSource(200, seed=13, symbols=PRODUCTS)
    scenario = Scenario(disconnect_every=20, fault_symbols=frozenset({"BTC-USD"}))
    faulty, clean = await connect(source, scenario), await connect(source, scenario)
    await faulty.subscribe_all(["BTC-USD"])
    await clean.subscribe_all(["ETH-USD"])
    kinds = [(await faulty.ws.receive(timeout=5)).type for _ in range(20)]
    assert kinds == [aiohttp.WSMsgType.TEXT] * 19 + [aiohttp.WSMsgType.CLOSE]
    assert len(await clean.frames(40)) == 40


async def test_a_deep_book_makes_a_snapshot_frame_over_4_mib(connect):
    source = CoinbaseSource(5, seed=14, symbols=["BTC-USD"], depth=25_000)
    client = await connect(source)
    await client.send("subscribe", "level2", ["BTC-USD"])
    raw = await client.raw()
    assert len(raw) > 4 * 1024 * 1024
    event = parse(raw, 0.0).events[0]
    assert isinstance(event, BookEvent)
    assert (len(event.bids), len(event.asks)) == (25_000, 25_000)
    book = CoinbaseBook("BTC-USD")
    assert book.on_event(event) is Outcome.APPLIED


async def test_a_silenced_product_catches_up_in_one_update(connect):
    source = CoinbaseSource(200, seed=15, symbols=["BTC-USD"])
    scenario = Scenario(silence_ms=150, silence_every=20)
    client = await connect(source, scenario, heartbeat_s=0.05)
    await client.subscribe_all(["BTC-USD"])
    books = Books()
    for frame in await client.frames(150):
        books.take(frame)
    assert scenario.silent_until  # a silence happened
    scenario.enabled = False
    await _drain_after_pause(client, books, source)
    assert set(books.outcomes) == {Outcome.APPLIED}
    market = source.markets["BTC-USD"]
    book = books.books["BTC-USD"].book
    assert book.level_counts() == (len(market.bids), len(market.asks))
    assert books.trades["BTC-USD"][-1] == market.trade_id


async def test_an_oversize_frame_is_within_the_clients_limit_and_skipped(connect):
    """oversize_every sends 5 MiB: over 4 MiB, under Coinbase's 32 MiB client limit, so the
    frame is read, refused by the parser (no sequence_num) and the count carries on."""
    source = CoinbaseSource(200, seed=16, symbols=PRODUCTS)
    client = await connect(source, Scenario(oversize_every=15))
    await client.subscribe_all(list(PRODUCTS))
    sequences, oversize = [], 0
    while len(sequences) < 30:
        raw = await client.raw()
        if len(raw) > 5 * 1024 * 1024:
            with pytest.raises(MalformedMessage, match="has no 'sequence_num'"):
                parse(raw, 0.0)
            oversize += 1
        else:
            sequences.append(parse(raw, 0.0).sequence)
    assert oversize >= 1
    assert sequences == list(range(30))
