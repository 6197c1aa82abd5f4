"""The OKX venue's feed over real sockets: a loopback server plays OKX (the recording's
frames, a 64008 upgrade notice, a REST book with its seqId) and the feed runs its own
tasks: connect, subscribe, ping, hand over, fetch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from marketdata.config import ReconnectConfig
from marketdata.metrics import Metrics
from marketdata.venue import FeedContext
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.feed import OkxFeed
from marketdata.venues.registry import VENUES
from tests.okx_capture import INSTRUMENTS, load
from tests.unit.test_okx_feed import Recorder


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class FakeOkx:
    """Each WebSocket connection gets the frames `script(n)` gives (n counts connections
    from 1), sent once its books subscription is confirmed; `ping` is answered `pong`."""

    def __init__(self, script: Callable[[int], list[bytes]], books: list[bytes]) -> None:
        self.script = script
        self.books = books  # REST replies, in turn (the last repeats)
        self.connections = 0
        self.open = 0
        self.received: list[tuple[int, str]] = []
        self.rest_requests: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws/v5/public", self.ws)
        app.router.add_get("/api/v5/market/books", self.rest)
        return app

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.open += 1
        number = self.connections
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                self.received.append((number, message.data))
                if message.data == "ping":
                    await ws.send_str("pong")
                    continue
                op = json.loads(message.data)
                for arg in op["args"]:
                    await ws.send_str(json.dumps({"event": op["op"], "arg": arg, "connId": "1"}))
                if any(arg["channel"] == "books" for arg in op["args"]):
                    for frame in self.script(number):
                        await ws.send_bytes(frame)
        finally:
            self.open -= 1
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        self.rest_requests.append(request.query_string)
        body = self.books[min(len(self.rest_requests), len(self.books)) - 1]
        return web.Response(body=body, content_type="application/json")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FakeOkx], Any]]:
    runners: list[web.AppRunner] = []

    async def start(fake: FakeOkx) -> str:
        runner = web.AppRunner(fake.app(), shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def run_feed(
    host: str, symbols: tuple[str, ...], **config: Any
) -> tuple[OkxFeed, Recorder, Metrics, aiohttp.ClientSession, list[asyncio.Task[None]]]:
    session = aiohttp.ClientSession()
    recorder, metrics = Recorder(), Metrics()
    context = FeedContext(
        recorder,  # type: ignore[arg-type]
        session, ReconnectConfig(initial_delay_s=0.05, max_delay_s=0.2), metrics, 30.0,
    )  # fmt: skip
    okx = OkxConfig(
        symbols=symbols, ws_url=f"ws://{host}/ws/v5/public", rest_url=f"http://{host}",
        symbols_per_connection=len(symbols), **config,
    )  # fmt: skip
    (feed,) = VENUES["okx"].build(okx, context)
    assert isinstance(feed, OkxFeed)
    tasks = [asyncio.create_task(coroutine) for coroutine in feed.tasks()]
    return feed, recorder, metrics, session, tasks


async def stop(feed: OkxFeed, session: aiohttp.ClientSession, tasks: list[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await feed.close()
    await session.close()


async def test_an_upgrade_notice_hands_over_to_a_synced_connection(serve: Any) -> None:
    capture = load()
    notice = b'{"event":"notice","code":"64008","msg":"The connection will soon be closed."}'
    books_and_trades = [f for f in capture.frames if b'"data"' in f and b'"tickers"' not in f]
    snapshots = [f for f in capture.book_frames if b'"snapshot"' in f]
    fake = FakeOkx(lambda n: [*books_and_trades, notice] if n == 1 else snapshots, [])
    host = await serve(fake)
    feed, recorder, metrics, session, tasks = await run_feed(host, INSTRUMENTS,
                                                             ping_interval_s=0.2)  # fmt: skip
    try:
        first = feed.active
        await until(lambda: fake.connections == 2 and feed.active is not first)
        await until(lambda: fake.open == 1)  # the old connection was closed
        assert recorder.unsynced == []  # no book was ever withdrawn
        assert feed.readiness(0.0, 1e9) == {}
        assert len(recorder.trades) == 74
        for inst, updates in capture.updates.items():
            labels = {"exchange": "okx", "symbol": inst}
            assert metrics.registry.get_sample_value("orderbook_updates_total", labels) == (
                updates + 1
            )
            assert metrics.registry.get_sample_value("checksum_mismatches_total", labels) == 0
        await until(lambda: (2, "ping") in fake.received)  # pings on the new connection
    finally:
        await stop(feed, session, tasks)


def update(seq: int, prev: int, bid: str) -> bytes:
    data = {"asks": [], "bids": [[bid, "1", "0", "1"]], "ts": "1000", "checksum": 0,
            "seqId": seq, "prevSeqId": prev}  # fmt: skip
    frame = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [data]}
    return json.dumps(frame).encode()


def rest_book(seq: int) -> bytes:
    data = {"asks": [["101", "2", "0", "1"]], "bids": [["99", "3", "0", "1"]], "ts": "900",
            "seqId": seq}  # fmt: skip
    return json.dumps({"code": "0", "msg": "", "data": [data]}).encode()


async def test_rest_mode_fetches_until_the_snapshot_bridges(serve: Any) -> None:
    script = [update(11, 10, "98"), update(13, 11, "97")]
    fake = FakeOkx(lambda n: script, [rest_book(9), rest_book(12)])  # too old, then good
    host = await serve(fake)
    feed, recorder, metrics, session, tasks = await run_feed(host, ("BTC-USDT",),
                                                             snapshot="rest")  # fmt: skip
    try:
        book = feed.active.books["BTC-USDT"]
        await until(lambda: book.synced)
        assert fake.rest_requests == ["instId=BTC-USDT&sz=400&source=0"] * 2
        assert book.last_id == 13
        assert book.book.top(5) == ([("99", "3"), ("97", "1")], [("101", "2")])  # 11 dropped
        labels = {"exchange": "okx", "symbol": "BTC-USDT"}
        assert metrics.registry.get_sample_value("diffs_dropped_total", labels) == 1
        assert metrics.registry.get_sample_value("snapshot_requests_total", {"status": "200"}) == 2
        assert feed.readiness(0.0, 1e9) == {}
    finally:
        await stop(feed, session, tasks)
