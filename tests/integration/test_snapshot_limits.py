"""A snapshot body over the size limit is refused as it arrives, never read whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.capped_read import BodyTooLarge, read_capped
from marketdata.config import ReconnectConfig
from marketdata.metrics import Metrics
from marketdata.rest_gate import RestGate
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed
from marketdata.sync import BookSync
from marketdata.venues.binance import BinanceFutures

LIMIT = 100_000
SNAPSHOT = orjson.dumps(
    {"lastUpdateId": 42, "E": 1, "T": 1, "bids": [["1.0", "2"]], "asks": [["1.1", "3"]]}
)
Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def endless(request: web.Request) -> web.StreamResponse:
    """A chunked body that never ends: a client reading it whole would never return."""
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(b'{"bids":[' + b'["1.0","1"],' * 5000)
        await asyncio.sleep(0)


async def declared_huge(request: web.Request) -> web.StreamResponse:
    """Content-Length of 64 MB, of which a few bytes are ever sent."""
    response = web.StreamResponse(headers={"Content-Length": str(64 * 1024 * 1024)})
    await response.prepare(request)
    await response.write(b'{"bids":[')
    await asyncio.sleep(3600)
    return response


async def snapshot(request: web.Request) -> web.Response:
    return web.Response(body=SNAPSHOT, content_type="application/json")


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/endless", endless)
    application.router.add_get("/declared", declared_huge)
    application.router.add_get("/fapi/v1/depth", snapshot)
    return application


@pytest.mark.parametrize(("path", "says"), [("/endless", "body"), ("/declared", "Content-Length")])
async def test_a_body_over_the_limit_is_refused_as_it_arrives(serve: Serve, path: str, says: str):
    url = await serve(app())
    async with aiohttp.ClientSession() as session, session.get(url + path) as response:
        with pytest.raises(BodyTooLarge, match=says):
            await asyncio.wait_for(read_capped(response, LIMIT), timeout=10)


async def test_a_body_under_the_limit_is_read_whole(serve: Serve) -> None:
    url = await serve(app())
    async with aiohttp.ClientSession() as session, session.get(url + "/fapi/v1/depth") as response:
        assert await read_capped(response, len(SNAPSHOT)) == SNAPSHOT


async def feed_attempt(url: str, limit: int) -> tuple[SymbolFeed, Metrics]:
    metrics = Metrics()
    publisher: Any = type("P", (), {"book_changed": lambda self, state: None})()
    async with aiohttp.ClientSession() as session:
        adapter = BinanceFutures(rest_url=url)
        feed = SymbolFeed(
            adapter, SymbolState("binance_futures", "BTCUSDT", BookSync(adapter.continuity)),
            publisher, session, ReconnectConfig(), metrics, RestGate(), 30.0,
            max_snapshot_bytes=limit,
        )  # fmt: skip
        await asyncio.wait_for(feed._snapshot_attempt(), timeout=10)
    return feed, metrics


async def test_the_feed_counts_a_snapshot_too_large_and_loads_one_that_fits(serve: Serve):
    url = await serve(app())
    labels = {"exchange": "binance_futures", "symbol": "BTCUSDT", "limit": "snapshot_bytes"}
    feed, metrics = await feed_attempt(url, len(SNAPSHOT) - 1)
    assert metrics.registry.get_sample_value("book_limits_exceeded_total", labels) == 1
    assert feed.state.sync.needs_snapshot
    feed, metrics = await feed_attempt(url, len(SNAPSHOT))
    assert not metrics.registry.get_sample_value("book_limits_exceeded_total", labels)
    assert feed.state.sync.synced
