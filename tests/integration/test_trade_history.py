"""GET aggTrades goes the way of every REST request: gate, size cap, status counted, and a
failure told once when it starts and once when it ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.metrics import Metrics
from marketdata.rest_gate import RestGate
from marketdata.trade_history import TradeHistory
from marketdata.venues.binance import BinanceFutures

KEY = "binance_futures:CTKUSDT"
Serve = Callable[[web.Application], Awaitable[str]]


def agg_trades(first: int, count: int) -> bytes:
    return orjson.dumps([
        {"a": a, "p": "1.01100", "q": "10", "f": a, "l": a, "T": 1626992741421, "m": False}
        for a in range(first, first + count)
    ])  # fmt: skip


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def exchange(replies: list[tuple[int, bytes]]) -> web.Application:
    """Answers GET aggTrades with `replies` in turn, the last one from then on."""

    async def reply(request: web.Request) -> web.Response:
        status, body = replies.pop(0) if len(replies) > 1 else replies[0]
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/fapi/v1/aggTrades", reply)
    return app


def requests(metrics: Metrics, status: str) -> float:
    value = metrics.registry.get_sample_value("trade_backfill_requests_total", {"status": status})
    return value or 0.0


async def test_failing_requests_are_logged_once_when_they_start_and_once_when_they_end(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    failures = 6
    url = await serve(exchange([(500, b"down")] * failures + [(200, agg_trades(7, 2))]))
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="marketdata")
    async with aiohttp.ClientSession() as session:
        history = TradeHistory(
            BinanceFutures(rest_url=url), KEY, "CTKUSDT", session,
            RestGate(min_spacing_s=0.0), metrics,
        )  # fmt: skip
        for _ in range(failures):
            assert await history.page(7, 2) is None
        assert history.rest.outage.cause == "HTTP 500 down"
        page = await history.page(7, 2)
    assert page is not None
    assert [t.sequence for t in page] == [7, 8]
    assert requests(metrics, "500") == failures
    assert requests(metrics, "200") == 1
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, f"{KEY}: aggTrades failing, retrying: HTTP 500 down"),
        (logging.INFO, lines[1][1]),
    ], lines
    assert lines[1][1].startswith(f"{KEY}: aggTrades recovered after ")
    assert f"({failures} failed attempts; last cause: HTTP 500 down)" in lines[1][1]


async def test_a_page_over_the_size_limit_is_refused(serve: Serve) -> None:
    body = agg_trades(1, 1000)
    url = await serve(exchange([(200, body)]))
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        adapter = BinanceFutures(rest_url=url)
        gate = RestGate(min_spacing_s=0.0)
        small = TradeHistory(adapter, KEY, "CTKUSDT", session, gate, metrics, len(body) - 1)
        assert await small.page(1, 1000) is None
        cause = small.rest.outage.cause
        assert cause is not None
        assert cause.startswith("refused: ")
        fits = TradeHistory(adapter, KEY, "CTKUSDT", session, gate, metrics, len(body))
        page = await fits.page(1, 1000)
    assert page is not None
    assert len(page) == 1000
    assert requests(metrics, "200") == 2  # both answered; the first body was refused
