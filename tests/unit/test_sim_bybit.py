"""The simulator's Bybit v5 dialect, read by the project's own Bybit parser and book."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.sim.bybit_market import BybitSource, trade_id
from marketdata.sim.bybit_server import create_bybit_app
from marketdata.sim.scenarios import Scenario
from marketdata.venues.base import MalformedMessage
from marketdata.venues.bybit.book_state import BybitBook, Outcome
from marketdata.venues.bybit.subscriptions import named_topics
from marketdata.venues.bybit.wire import BookMessage, BybitEvent, Pong, Reply, Ticker, Trades, parse
from tests.helpers import free_port

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FIRST_TRADE = 10_000_001  # the simulator's markets number trades from here
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Client:
    """One WebSocket connection, read through marketdata.venues.bybit.parse."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.req_id = 0

    async def send(self, op: str, *args: str) -> str:
        self.req_id += 1
        message: dict[str, Any] = {"op": op, "req_id": str(self.req_id)}
        if args:
            message["args"] = list(args)
        await self.ws.send_str(orjson.dumps(message).decode())
        return str(self.req_id)

    async def raw(self) -> dict[str, Any]:
        return dict(orjson.loads(await self.frame()))

    async def frame(self) -> bytes:
        message = await self.ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return bytes(message.data)

    async def events(self) -> list[BybitEvent]:
        return list(parse(await self.frame(), 0.0))

    async def until(self, wanted: Callable[[BybitEvent], bool]) -> BybitEvent:
        while True:
            for event in await self.events():
                if wanted(event):
                    return event


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Starts a simulator (once per test) and opens connections to it."""
    runners: list[web.AppRunner] = []
    sources: list[BybitSource] = []
    session = aiohttp.ClientSession()

    async def open_client(
        scenario: Scenario | None = None,
        rate: float = 200.0,
        category: str = "linear",
        resend_s: float = 3.0,
    ) -> Client:
        if not runners:
            source = BybitSource(rate, seed=3, symbols=(*SYMBOLS, "SOLUSDT"))
            sources.append(source)
            runner = web.AppRunner(create_bybit_app(source, scenario, resend_s))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            open_client.host = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
        host = open_client.host  # type: ignore[attr-defined]
        # frames as bytes, as the service reads them (a malformed one may not be UTF-8)
        ws = await session.ws_connect(f"{host}/bybit/v5/public/{category}", decode_text=False)
        return Client(ws)

    open_client.sources = sources  # type: ignore[attr-defined]
    yield open_client
    await session.close()
    for source in sources:
        await source.close()
    for runner in runners:
        await runner.cleanup()


class Books:
    """The client's books, by the project's BybitBook; the outcome of every message."""

    def __init__(self, symbols: tuple[str, ...] = SYMBOLS) -> None:
        self.books = {s: BybitBook(s) for s in symbols}
        self.outcomes: list[tuple[str, bool, int, Outcome]] = []  # (symbol, snapshot, u, ...)
        self.most_levels = (0, 0)  # the most levels a book held, per side

    def apply(self, event: BybitEvent) -> None:
        if isinstance(event, BookMessage):
            book = self.books[event.symbol]
            outcome = book.on_message(event)
            self.outcomes.append((event.symbol, event.snapshot, event.update_id, outcome))
            bids, asks = book.book.level_counts()
            self.most_levels = (max(bids, self.most_levels[0]), max(asks, self.most_levels[1]))

    def deltas(self) -> int:
        return sum(1 for _, snapshot, _, _ in self.outcomes if not snapshot)

    def kinds(self) -> set[Outcome]:
        return {outcome for *_, outcome in self.outcomes}


async def follow(client: Client, books: Books, deltas: int) -> None:
    while books.deltas() < deltas:
        for event in await client.events():
            books.apply(event)


def book_topics(depth: int = 50, symbols: tuple[str, ...] = SYMBOLS) -> list[str]:
    return [f"orderbook.{depth}.{s}" for s in symbols]


async def test_every_delta_applies_and_trades_run_on_once_each(connect):
    client = await connect()
    topics = [*book_topics(), *(f"publicTrade.{s}" for s in SYMBOLS), "tickers.BTCUSDT"]
    req_id = await client.send("subscribe", *topics)
    books, replies, tickers = Books(), [], 0
    trades: dict[str, list[str]] = {s: [] for s in SYMBOLS}
    while books.deltas() < 400 or min(len(ids) for ids in trades.values()) < 20:
        for event in await client.events():
            books.apply(event)
            if isinstance(event, Reply):
                replies.append(event)
            elif isinstance(event, Ticker):
                tickers += 1
                assert event.symbol == "BTCUSDT"
            elif isinstance(event, Trades):
                for trade in event.trades:
                    trades[trade.symbol].append(trade.trade_id)
    assert replies == [Reply("subscribe", True, "", req_id)]
    assert books.kinds() == {Outcome.SNAPSHOT, Outcome.APPLIED}
    assert [s for s, snap, _, _ in books.outcomes if snap] == list(SYMBOLS)  # one each
    assert tickers > 1
    source = connect.sources[0]
    for symbol, ids in trades.items():  # each trade once, in the market's order
        last = source.markets[symbol].trade_id
        numbers = {trade_id(symbol, n, "linear"): n for n in range(FIRST_TRADE, last + 1)}
        seen = [numbers[i] for i in ids]
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        assert all(UUID.match(i) for i in ids)
    assert books.most_levels == (50, 50)  # levels pushed out of the 50 were deleted


async def test_frames_are_bybit_shaped(connect):
    client = await connect()
    await client.send("subscribe", "orderbook.50.BTCUSDT", "publicTrade.BTCUSDT")
    reply = await client.raw()
    assert list(reply) == ["success", "ret_msg", "conn_id", "req_id", "op"]
    assert (reply["success"], reply["ret_msg"], reply["req_id"], reply["op"]) == (
        True, "", "1", "subscribe",
    )  # fmt: skip
    assert re.fullmatch(r"[0-9a-z]{20}-[0-9a-z]{5}", reply["conn_id"])
    snapshot = await client.raw()
    assert list(snapshot) == ["topic", "type", "ts", "data", "cts"]
    assert (snapshot["topic"], snapshot["type"]) == ("orderbook.50.BTCUSDT", "snapshot")
    assert list(snapshot["data"]) == ["s", "b", "a", "u", "seq"]
    assert len(snapshot["data"]["b"]) == len(snapshot["data"]["a"]) == 50
    assert re.fullmatch(r"\d+\.\d{2}", snapshot["data"]["b"][0][0])
    assert snapshot["cts"] <= snapshot["ts"]
    kinds: dict[str, dict[str, Any]] = {}
    while len(kinds) < 2:
        message = await client.raw()
        kinds.setdefault(message["topic"].split(".")[0], message)
    delta, trades = kinds["orderbook"], kinds["publicTrade"]
    assert delta["type"] == "delta"
    assert delta["data"]["seq"] > snapshot["data"]["seq"]
    assert trades["type"] == "snapshot"
    assert list(trades["data"][0]) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
    assert trades["data"][0]["S"] in ("Buy", "Sell")
    assert trades["data"][0]["L"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")


async def test_deltas_of_a_topic_carry_u_plus_one_on_every_connection(connect):
    first = await connect()
    await first.send("subscribe", "orderbook.200.ETHUSDT")
    await asyncio.sleep(0.1)
    second = await connect()
    await second.send("subscribe", "orderbook.200.ETHUSDT")
    seen = []
    for client in (first, second):
        books = Books(("ETHUSDT",))
        await follow(client, books, 100)
        assert books.kinds() == {Outcome.SNAPSHOT, Outcome.APPLIED}
        seen.append({u for _, _, u, _ in books.outcomes})
    assert len(seen[0] & seen[1]) > 50  # the same u for the same delta


async def test_a_bad_topic_is_refused_by_name_and_the_rest_subscribed(connect):
    client = await connect()
    req_id = await client.send("subscribe", "orderbook.50.BTCUSDT", "orderbook.50.XYZUSDT",
                               "orderbook.7.ETHUSDT")  # fmt: skip
    reply = await client.until(lambda e: isinstance(e, Reply))
    assert reply == Reply("subscribe", False, "error:handler not found,topic:orderbook.50.XYZUSDT",
                          req_id)  # fmt: skip
    assert isinstance(reply, Reply)
    wanted = ["orderbook.50.BTCUSDT", "orderbook.50.XYZUSDT", "orderbook.7.ETHUSDT"]
    assert named_topics(reply.ret_msg, wanted) == {"orderbook.50.XYZUSDT"}
    snapshot = await client.until(lambda e: isinstance(e, BookMessage))
    assert isinstance(snapshot, BookMessage)
    assert (snapshot.symbol, snapshot.snapshot) == ("BTCUSDT", True)
    req_id = await client.send("subscribe", "orderbook.50.BTCUSDT")
    again = await client.until(lambda e: isinstance(e, Reply))
    already = "error:already subscribed,topic:orderbook.50.BTCUSDT"
    assert again == Reply("subscribe", False, already, req_id)


async def test_unsubscribe_stops_a_topic_and_a_new_subscribe_starts_from_a_snapshot(connect):
    client = await connect()
    await client.send("subscribe", "orderbook.1.SOLUSDT")
    books = Books(("SOLUSDT",))
    await follow(client, books, 5)
    req_id = await client.send("unsubscribe", "orderbook.1.SOLUSDT")
    reply = await client.until(lambda e: isinstance(e, Reply))
    assert reply == Reply("unsubscribe", True, "", req_id)
    await client.send("subscribe", "orderbook.1.SOLUSDT")
    await client.until(lambda e: isinstance(e, Reply))
    (snapshot,) = await client.events()  # the old topic's queued deltas are gone
    assert isinstance(snapshot, BookMessage)
    assert snapshot.snapshot
    assert len(snapshot.bids) == len(snapshot.asks) == 1
    books.apply(snapshot)
    await follow(client, books, 10)
    assert Outcome.GAP not in books.kinds()


async def test_ping_is_answered_as_each_category_does(connect):
    linear = await connect()
    req_id = await linear.send("ping")
    reply = await linear.raw()
    assert (reply["success"], reply["ret_msg"], reply["op"], reply["req_id"]) == (
        True, "pong", "ping", req_id,
    )  # fmt: skip
    spot = await connect(category="spot")
    await spot.send("ping")
    reply = await spot.raw()
    assert (reply["op"], reply["req_id"], len(reply["args"])) == ("pong", "1", 1)
    assert isinstance(parse(orjson.dumps(reply), 0.0)[0], Pong)


async def test_spot_takes_ten_args_and_numbers_its_trade_ids(connect):
    client = await connect(category="spot")
    req_id = await client.send("subscribe", *[f"publicTrade.{s}" for s in "ABCDEFGHIJK"])
    refused = await client.until(lambda e: isinstance(e, Reply))
    assert refused == Reply("subscribe", False, "args size >10", req_id)
    await client.send("subscribe", "publicTrade.BTCUSDT")
    trades = await client.until(lambda e: isinstance(e, Trades))
    assert isinstance(trades, Trades)
    assert trades.trades[0].trade_id.isdigit()


async def test_a_quiet_topic_resends_its_snapshot_with_the_same_u(connect):
    client = await connect(resend_s=0.2)
    await client.send("subscribe", "orderbook.50.BTCUSDT")
    books = Books(("BTCUSDT",))
    await follow(client, books, 5)
    connect.sources[0].paused = True
    while len([o for o in books.outcomes if o[1]]) < 3:  # the first and two re-sends
        for event in await client.events():
            books.apply(event)
    *_, (_, _, u1, o1), (_, _, u2, o2) = books.outcomes
    assert (o1, o2) == (Outcome.SNAPSHOT, Outcome.SNAPSHOT)
    assert u1 == u2 == books.books["BTCUSDT"].last_id
    # the client's book is the market's top 50, level for level, and no more
    bids, asks = connect.sources[0].markets["BTCUSDT"].top(50)
    book = books.books["BTCUSDT"].book
    assert book.top(50) == ([tuple(b) for b in bids], [tuple(a) for a in asks])
    assert book.level_counts() == (50, 50)


async def test_gap_every_breaks_u_on_the_symbol_whose_delta_was_dropped(connect):
    client = await connect(Scenario(gap_every=25))
    await client.send("subscribe", *book_topics())
    books = Books()
    await follow(client, books, 120)
    gaps = [(s, o) for s, snap, _, o in books.outcomes if o is Outcome.GAP]
    assert gaps
    for symbol, _ in gaps:  # the jump is by exactly the one delta dropped
        book = books.books[symbol]
        assert book.got == book.expected + 1
    # every delta after a gap waits for a snapshot, as the client then resubscribes
    first_gap = next(i for i, o in enumerate(books.outcomes) if o[3] is Outcome.GAP)
    symbol = books.outcomes[first_gap][0]
    after = [o for s, _, _, o in books.outcomes[first_gap + 1 :] if s == symbol]
    assert after
    assert set(after) == {Outcome.WAITING}
    other = [o for s, _, _, o in books.outcomes[: first_gap + 1] if s != symbol]
    assert Outcome.GAP not in other


@pytest.mark.parametrize(("knob", "broken"), [("duplicate_every", 20), ("reorder_every", 19)])
async def test_duplicated_or_reordered_deltas_break_the_chain(connect, knob, broken):
    """The 20th delta twice: the second copy breaks; the 20th after the 21st: the 21st."""
    client = await connect(Scenario(**{knob: 20}))
    await client.send("subscribe", "orderbook.50.BTCUSDT")
    books = Books(("BTCUSDT",))
    await follow(client, books, 25)
    outcomes = [o for _, snap, _, o in books.outcomes if not snap]
    assert outcomes[:broken] == [Outcome.APPLIED] * broken
    assert outcomes[broken] is Outcome.GAP


async def test_restart_every_sends_a_u_1_snapshot_and_the_ids_go_on_from_it(connect):
    client = await connect(Scenario(restart_every=30))
    await client.send("subscribe", "orderbook.50.BTCUSDT")
    books = Books(("BTCUSDT",))
    await follow(client, books, 40)
    restart = next(i for i, o in enumerate(books.outcomes) if o[3] is Outcome.RESTART)
    assert books.outcomes[restart][1:3] == (True, 1)
    assert books.outcomes[restart + 1][2:] == (2, Outcome.APPLIED)
    assert books.kinds() == {Outcome.SNAPSHOT, Outcome.APPLIED, Outcome.RESTART}


async def test_reject_symbols_refuses_those_topics_by_name(connect):
    client = await connect(Scenario(reject_symbols=frozenset({"ETHUSDT"})))
    await client.send("subscribe", "publicTrade.ETHUSDT")
    refused = await client.until(lambda e: isinstance(e, Reply))
    assert refused == Reply("subscribe", False,
                            "error:handler not found,topic:publicTrade.ETHUSDT", "1")  # fmt: skip


async def test_reject_subscribes_refuses_the_first_requests_naming_no_topic(connect):
    client = await connect(Scenario(reject_subscribes=2))
    for attempt in range(3):
        req_id = await client.send("subscribe", "orderbook.50.BTCUSDT")
        reply = await client.until(lambda e: isinstance(e, Reply))
        assert isinstance(reply, Reply)
        assert (reply.req_id, reply.success) == (req_id, attempt == 2)
        assert named_topics(reply.ret_msg, ["orderbook.50.BTCUSDT"]) == set()
    snapshot = await client.until(lambda e: isinstance(e, BookMessage))
    assert isinstance(snapshot, BookMessage)
    assert snapshot.snapshot
    other = await connect()  # counted per connection
    await other.send("subscribe", "orderbook.50.ETHUSDT")
    reply = await other.until(lambda e: isinstance(e, Reply))
    assert isinstance(reply, Reply)
    assert not reply.success


async def test_malformed_frames_are_refused_by_the_parser(connect):
    client = await connect(Scenario(malformed_every=5))
    await client.send("subscribe", "orderbook.50.BTCUSDT")
    frames, errors = 0, []
    while len(errors) < 6:
        frames += 1
        try:
            parse(await client.frame(), 0.0)
        except MalformedMessage as e:
            errors.append((frames, e.reason))
    # a malformed frame goes before every 5th frame of the connection
    assert [n for n, _ in errors] == [5, 11, 17, 23, 29, 35]
    assert {reason for _, reason in errors} == {"bad_json", "bad_shape"}


async def test_a_silence_resumes_with_a_snapshot(connect):
    scenario = Scenario(silence_ms=150, silence_every=20, silence_symbols=frozenset({"BTCUSDT"}))
    client = await connect(scenario)
    await client.send("subscribe", *book_topics())
    books = Books()
    await follow(client, books, 100)
    btc = [(snap, o) for s, snap, _, o in books.outcomes if s == "BTCUSDT"]
    assert sum(snap for snap, _ in btc) >= 2  # the first, and one after each silence
    assert books.kinds() == {Outcome.SNAPSHOT, Outcome.APPLIED}
    eth = [snap for s, snap, _, _ in books.outcomes if s == "ETHUSDT"]
    assert sum(eth) == 1
