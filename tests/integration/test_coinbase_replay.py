"""A CoinbaseFeed over a real WebSocket: a local server that waits for the four subscribes
and then sends the recorded connection's frames, multi-MB snapshots included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.config import ReconnectConfig
from marketdata.metrics import Metrics
from marketdata.venue import FeedContext
from marketdata.venues.coinbase.config import CoinbaseConfig
from marketdata.venues.coinbase.feed import CoinbaseFeed
from tests.coinbase_capture import PRODUCTS, load
from tests.integration.scenario_runner import wait_until
from tests.unit.test_coinbase_feed import Recorder

Serve = Callable[[list[list[dict[str, object]]]], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """A replay server; each connection's subscribe frames go into `received`."""
    runners: list[web.AppRunner] = []
    sockets: list[web.WebSocketResponse] = []
    frames = load().frames

    async def start(received: list[list[dict[str, object]]]) -> str:
        async def connection(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sockets.append(ws)
            subscribes: list[dict[str, object]] = []
            received.append(subscribes)
            while len(subscribes) < 4:
                subscribes.append(orjson.loads((await ws.receive()).data))
            for frame in frames:
                await ws.send_str(frame.decode())
            async for _ in ws:  # keep it open until the client goes
                pass
            return ws

        app = web.Application()
        app.router.add_get("/", connection)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"ws://127.0.0.1:{runner.addresses[0][1]}/"

    yield start
    for ws in sockets:  # closed here, so no handler outlives the test
        await ws.close()
    for runner in runners:
        await runner.cleanup()


async def _run_until(feed: CoinbaseFeed, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    async def predicate() -> bool:
        return done()

    tasks = [asyncio.create_task(t) for t in feed.tasks()]
    try:
        assert await wait_until(predicate, timeout_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _feed(url: str, metrics: Metrics, publisher: Recorder, session: aiohttp.ClientSession,
          **config: int) -> CoinbaseFeed:  # fmt: skip
    settings = CoinbaseConfig(symbols=PRODUCTS, ws_url=url, symbols_per_connection=2, **config)
    context = FeedContext(
        publisher,  # type: ignore[arg-type]
        session,
        ReconnectConfig(initial_delay_s=0.1, max_delay_s=0.5),
        metrics,
        30.0,
    )
    return CoinbaseFeed(settings, PRODUCTS, context, "coinbase:replay")


async def test_the_recorded_connection_replayed_over_a_websocket(serve: Serve) -> None:
    received: list[list[dict[str, object]]] = []
    url = await serve(received)
    metrics, publisher = Metrics(), Recorder()
    async with aiohttp.ClientSession() as session:
        feed = _feed(url, metrics, publisher, session)
        await _run_until(
            feed, lambda: len(publisher.trades) == 279 and feed.readiness(0.0, 1e9) == {}
        )
    assert [sorted(m["channel"] for m in c) for c in received] == [  # type: ignore[type-var]
        ["heartbeats", "level2", "market_trades", "ticker"]
    ]
    for product in PRODUCTS:
        labels = {"exchange": "coinbase", "symbol": product}
        assert metrics.registry.get_sample_value("sequence_gaps_total", labels) == 0
        assert metrics.registry.get_sample_value("book_synced", labels) == 1
    assert len({(t.symbol, t.trade_id) for t in publisher.trades}) == 279


async def test_a_frame_limit_below_the_snapshot_ends_the_connection_as_oversize(
    serve: Serve,
) -> None:
    received: list[list[dict[str, object]]] = []
    url = await serve(received)
    metrics, publisher = Metrics(), Recorder()

    def oversize() -> float:
        value = metrics.registry.get_sample_value("messages_error_total", {"reason": "oversize"})
        return value or 0.0

    async with aiohttp.ClientSession() as session:
        feed = _feed(url, metrics, publisher, session, max_frame_bytes=4 * 1024 * 1024)
        await _run_until(feed, lambda: oversize() >= 1)
    assert not any(state.sync.synced for state in feed.states)
