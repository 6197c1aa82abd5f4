"""The simulator's OKX v5 dialect, read by the project's own OKX parser and book."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.sim.market import SimMarket
from marketdata.sim.okx_book import BookView, top
from marketdata.sim.okx_market import OkxSource, instrument_for
from marketdata.sim.okx_server import create_okx_app
from marketdata.sim.scenarios import Scenario
from marketdata.venues.base import MalformedMessage
from marketdata.venues.okx.book_state import OkxBook, Outcome, SnapshotOutcome
from marketdata.venues.okx.wire import (
    Bbo,
    BookMessage,
    ErrorReply,
    Notice,
    OkxEvent,
    Pong,
    Reply,
    Trades,
    parse,
    parse_rest_book,
)
from tests.helpers import free_port

INSTS = ("BTC-USDT", "ETH-USDT")


class Client:
    """One WebSocket connection, read through marketdata.venues.okx.wire.parse."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, op: str, *args: tuple[str, str]) -> None:
        message = {"op": op, "args": [{"channel": c, "instId": i} for c, i in args]}
        await self.ws.send_str(orjson.dumps(message).decode())

    async def events(self) -> list[OkxEvent]:
        message = await self.ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return list(parse(message.data, 0.0))

    async def until(self, wanted: Callable[[OkxEvent], bool]) -> OkxEvent:
        while True:
            for event in await self.events():
                if wanted(event):
                    return event


Serve = Callable[..., Awaitable[tuple[OkxSource, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serves create_okx_app on a free port: (its source, its host:port)."""
    runners: list[web.AppRunner] = []
    sources: list[OkxSource] = []

    async def start(
        scenario: Scenario | None = None, rate: float = 100.0, checksums: bool = True
    ) -> tuple[OkxSource, str]:
        source = OkxSource(rate, seed=3, symbols=INSTS, checksums=checksums)
        runner = web.AppRunner(create_okx_app(source, scenario), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        sources.append(source)
        return source, f"127.0.0.1:{port}"

    yield start
    for source in sources:
        await source.close()
    for runner in runners:
        await runner.cleanup()


async def _connect(session: aiohttp.ClientSession, host: str) -> Client:
    return Client(await session.ws_connect(f"ws://{host}/okx/ws/v5/public"))


async def _follow(client: Client, books: dict[str, OkxBook], count: int) -> list[Outcome]:
    """Feed `count` books messages to their books; the outcomes."""
    outcomes = []
    while len(outcomes) < count:
        for event in await client.events():
            if isinstance(event, BookMessage):
                outcomes.append(books[event.inst_id].on_message(event))
    return outcomes


def _sim_levels(source: OkxSource, inst: str) -> tuple[list[Any], list[Any]]:
    market, shape = source.markets[inst], source.pairs[inst].shape
    texts = BookView(shape.price_dp, shape.qty_dp).texts
    return [texts(x) for x in top(market, "b", 400)], [texts(x) for x in top(market, "a", 400)]


def _book_levels(book: OkxBook) -> tuple[list[Any], list[Any]]:
    return (
        [(level[2], level[3]) for level in book.book.best_bids(400)],
        [(level[2], level[3]) for level in book.book.best_asks(400)],
    )


async def test_every_message_applies_cleanly_and_the_books_match(serve):
    source, host = await serve()
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", *((c, i) for i in INSTS for c in ("books", "trades")))
        books = {i: OkxBook(i) for i in INSTS}
        replies: list[Reply] = []
        trades: dict[str, list[str]] = {i: [] for i in INSTS}
        applied = 0
        snapshots = set()
        ponged = False
        while not ponged:
            if applied >= 300 and not source.paused:
                source.paused = True
                await asyncio.sleep(0.05)
                await client.ws.send_str("ping")  # its pong comes after what was queued
            for event in await client.events():
                ponged = ponged or isinstance(event, Pong)
                if isinstance(event, Reply):
                    replies.append(event)
                elif isinstance(event, BookMessage):
                    assert event.seq_id is not None
                    assert event.prev_seq_id is not None
                    assert event.checksum != 0
                    if event.snapshot:
                        assert event.prev_seq_id == -1
                        snapshots.add(event.inst_id)
                    assert books[event.inst_id].on_message(event) is Outcome.APPLIED
                    applied += 1
                elif isinstance(event, Trades):
                    for trade in event.trades:
                        assert trade.side in ("buy", "sell")
                        trades[trade.symbol].append(trade.trade_id)
        assert snapshots == set(INSTS)
        assert {(r.event, r.channel, r.inst_id) for r in replies} == {
            ("subscribe", c, i) for i in INSTS for c in ("books", "trades")
        }
        assert all(r.conn_id for r in replies)
        for inst in INSTS:
            assert _book_levels(books[inst]) == _sim_levels(source, inst)
            ids = [int(t) for t in trades[inst]]
            assert ids == list(range(ids[0], ids[0] + len(ids))), inst  # per instrument
            assert ids[-1] == source.markets[inst].trade_id


async def test_zero_checksums_as_production_still_chain(serve):
    source, host = await serve(checksums=False)
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        books = {"BTC-USDT": OkxBook("BTC-USDT")}
        seen = []
        while len(seen) < 50:
            for event in await client.events():
                if isinstance(event, BookMessage):
                    assert event.checksum == 0
                    seen.append(books["BTC-USDT"].on_message(event))
        assert set(seen) == {Outcome.APPLIED}


@pytest.mark.parametrize(
    ("scenario", "checksums", "caught"),
    [  # the 10th update is the 11th message (after the snapshot); its duplicate the 12th
        (Scenario(gap_every=10), True, (10, Outcome.GAP)),
        (Scenario(duplicate_every=10), True, (11, Outcome.GAP)),
        (Scenario(reorder_every=10), True, (10, Outcome.GAP)),
        (Scenario(checksum_corrupt_every=10), True, (10, Outcome.MISMATCH)),
        (Scenario(checksum_corrupt_every=10), False, (10, Outcome.GAP)),
    ],
    ids=["gap", "duplicate", "reorder", "checksum", "chain-without-checksums"],
)
async def test_each_book_fault_is_caught_by_the_client(serve, scenario, checksums, caught):
    _, host = await serve(scenario, checksums=checksums)
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        outcomes = await _follow(client, {"BTC-USDT": OkxBook("BTC-USDT")}, caught[0] + 1)
    assert outcomes == [Outcome.APPLIED] * caught[0] + [caught[1]]


async def test_a_resubscribe_starts_a_fresh_snapshot(serve):
    _, host = await serve(Scenario(gap_every=5))
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        book = OkxBook("BTC-USDT")
        assert (await _follow(client, {"BTC-USDT": book}, 6))[-1] is Outcome.GAP
        await client.send("unsubscribe", ("books", "BTC-USDT"))
        await client.until(lambda e: isinstance(e, Reply) and e.event == "unsubscribe")
        await client.send("subscribe", ("books", "BTC-USDT"))
        snapshot = await client.until(lambda e: isinstance(e, BookMessage) and e.snapshot)
        assert isinstance(snapshot, BookMessage)
        assert book.on_message(snapshot) is Outcome.APPLIED


async def test_rejections_use_okx_error_shape(serve):
    _, host = await serve(Scenario(reject_symbols=frozenset({"ETH-USDT"}), reject_subscribes=1))
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        first = await client.until(lambda e: isinstance(e, ErrorReply | Reply))
        assert isinstance(first, ErrorReply)
        assert first.code == "60018"
        assert first.conn_id
        assert "BTC-USDT" not in first.msg
        await client.send("subscribe", ("books", "ETH-USDT"), ("trades", "BTC-USDT"))
        error = await client.until(lambda e: isinstance(e, ErrorReply))
        assert isinstance(error, ErrorReply)
        assert error.code == "60018"
        assert "instId:ETH-USDT" in error.msg
        ok = await client.until(lambda e: isinstance(e, Reply))
        assert isinstance(ok, Reply)
        assert (ok.channel, ok.inst_id) == ("trades", "BTC-USDT")
        await client.send("subscribe", ("books", "NOPE-USDT"))
        unknown = await client.until(lambda e: isinstance(e, ErrorReply))
        assert isinstance(unknown, ErrorReply)
        assert "NOPE-USDT" in unknown.msg
        await client.ws.send_str("{not json")
        invalid = await client.until(lambda e: isinstance(e, ErrorReply))
        assert isinstance(invalid, ErrorReply)
        assert invalid.code == "60012"


async def test_bbo_tbt_follows_the_best_levels(serve):
    source, host = await serve()
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("bbo-tbt", "BTC-USDT"))
        seqs = []
        for _ in range(5):
            bbo = await client.until(lambda e: isinstance(e, Bbo))
            assert isinstance(bbo, Bbo)
            assert bbo.seq_id is not None
            assert float(bbo.bid_price) < float(bbo.ask_price)
            seqs.append(bbo.seq_id)
    assert seqs == sorted(seqs)


async def test_the_upgrade_notice_comes_before_the_close(serve):
    _, host = await serve(Scenario(upgrade_notice_after_s=0.2, upgrade_close_s=0.3))
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("trades", "BTC-USDT"))
        notice = await client.until(lambda e: isinstance(e, Notice))
        assert isinstance(notice, Notice)
        assert notice.code == "64008"
        loop = asyncio.get_running_loop()
        at = loop.time()
        while True:
            message = await client.ws.receive(timeout=5)
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert loop.time() - at >= 0.2


async def test_rest_snapshot_bridges_onto_buffered_updates(serve):
    source, host = await serve()
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        book = OkxBook("BTC-USDT", rest=True)
        assert set(await _follow(client, {"BTC-USDT": book}, 6)) == {Outcome.WAITING}
        url = f"http://{host}/api/v5/market/books?instId=BTC-USDT&sz=400&source=0"
        async with session.get(url) as response:
            snapshot = parse_rest_book(await response.read(), "BTC-USDT", 0.0)
        assert len(snapshot.bids) > 100
        assert len(snapshot.asks) > 100
        assert book.on_snapshot(snapshot) is SnapshotOutcome.SYNCED
        assert set(await _follow(client, {"BTC-USDT": book}, 20)) <= {
            Outcome.APPLIED, Outcome.DROPPED
        }  # fmt: skip
        async with session.get(f"http://{host}/api/v5/market/books?instId=NOPE") as response:
            with pytest.raises(MalformedMessage, match="51001"):
                parse_rest_book(await response.read(), "NOPE", 0.0)


async def test_rest_refusals_follow_the_scenario(serve):
    _, host = await serve(Scenario(snapshot_status=429, retry_after_s=1.0))
    async with aiohttp.ClientSession() as session:
        url = f"http://{host}/api/v5/market/books?instId=BTC-USDT&sz=5"
        async with session.get(url) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "1")
        async with session.get(url) as response:
            assert response.status == 200
            assert len(parse_rest_book(await response.read(), "BTC-USDT", 0.0).bids) == 5


@pytest.mark.parametrize("knob", ["malformed_every", "oversize_every", "disconnect_every"])
async def test_connection_faults(serve, knob):
    _, host = await serve(Scenario(**{knob: 5}))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://{host}/okx/ws/v5/public", max_msg_size=0)
        await Client(ws).send("subscribe", ("books", "BTC-USDT"), ("trades", "BTC-USDT"))
        bad = 0
        for _ in range(12):
            message = await ws.receive(timeout=5)
            if message.type is aiohttp.WSMsgType.ERROR and knob == "malformed_every":
                return  # not UTF-8: the client drops the connection
            if message.type is not aiohttp.WSMsgType.TEXT:
                assert knob == "disconnect_every"
                return
            try:
                parse(message.data, 0.0)
            except MalformedMessage:
                bad += 1
        assert knob != "disconnect_every"
        assert bad >= 2


@pytest.mark.parametrize("depth", [5, 400])
def test_the_view_sends_what_keeps_a_client_at_the_top_levels(depth):
    """Applied to a client's book, every update leaves it equal to the market's top
    `depth` levels, deletes for levels pushed out of range included (depth 5 takes the
    path where the market holds more than the view)."""
    market = SimMarket("BTC-USDT", 5, shape=instrument_for("BTC-USDT").shape)
    view = BookView(market.price_dp, market.qty_dp, depth)
    held = [dict(side) for side in view.snapshot(market)]
    for step in range(300):
        changed = market.step(step).changed
        sent = view.catch_up(market) if step % 50 == 49 else view.update(market, changed)
        for side, levels in zip(held, sent, strict=True):
            for ticks, lots in levels:
                if lots:
                    side[ticks] = lots
                else:
                    assert side.pop(ticks, None) is not None  # a delete names a held level
        assert sorted(held[0].items(), reverse=True) == top(market, "b", depth)
        assert sorted(held[1].items()) == top(market, "a", depth)


async def test_a_silence_resumes_with_one_update_that_chains(serve):
    _, host = await serve(Scenario(silence_ms=150, silence_every=20), rate=200)
    async with aiohttp.ClientSession() as session:
        client = await _connect(session, host)
        await client.send("subscribe", ("books", "BTC-USDT"))
        loop = asyncio.get_running_loop()
        last = loop.time()
        pauses = 0
        outcomes = []
        book = OkxBook("BTC-USDT")
        while len(outcomes) < 45:
            for event in await client.events():
                if isinstance(event, BookMessage):
                    outcomes.append(book.on_message(event))
                    now = loop.time()
                    pauses += now - last > 0.1
                    last = now
    assert set(outcomes) == {Outcome.APPLIED}
    assert pauses >= 2
