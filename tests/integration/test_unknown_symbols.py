"""Configured symbols are checked against the venue's instrument list at start."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from marketdata.instruments import symbol_problems
from marketdata.service import Service
from marketdata.sim.sources import GeneratedSource
from marketdata.venues.binance import BinanceFutures
from tests.helpers import free_port
from tests.integration.conftest import SimServer, service_config, write_service_config
from tests.integration.scenario_runner import wait_until


async def test_unknown_symbol_exits_2_naming_it(redis_server, start_sim, tmp_path: Path):
    sim = await start_sim(GeneratedSource(rate=10, seed=1, symbols=["BTCUSDT", "ETHUSDT"]))
    config = write_service_config(tmp_path, redis_server.url, sim, ["ETHUSDT", "BTCUSD"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, stderr.decode()
    expected = (
        "marketdata: config error: exchanges.binance_futures.symbols[1]: 'BTCUSD' is not a "
        "trading symbol on binance_futures; did you mean 'BTCUSDT'?"
    )
    assert expected in stderr.decode().splitlines()
    assert b"Traceback" not in stderr


async def test_unreachable_instrument_list_warns_once_and_starts(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="marketdata")
    sim = SimServer(GeneratedSource(rate=10, seed=1))  # never started: nothing answers
    service = Service(service_config(redis_server.url, sim, ["BTCUSDT", "ETHUSDT"]))
    task = asyncio.create_task(service.run())
    try:
        assert await wait_until(lambda: _started(service, task), 15)
    finally:
        service.stop()
        await task
    warnings = [
        r.getMessage() for r in caplog.records if "cannot check the configured" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "starting anyway" in warnings[0]


async def _started(service: Service, task: asyncio.Task[None]) -> bool:
    assert not task.done(), "the service stopped"
    return service.http_port is not None


async def test_a_listed_symbol_that_does_not_trade_now_is_a_warning_not_an_exit(caplog):
    caplog.set_level(logging.WARNING, logger="marketdata")
    body = orjson.dumps({"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING"}, {"symbol": "ICPUSDT", "status": "SETTLING"},
    ]})  # fmt: skip

    async def exchange_info(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    adapter = BinanceFutures("ws://unused", f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as session:
            problems = await symbol_problems(session, adapter, ["BTCUSDT", "ICPUSDT", "BTCUSD"])
    finally:
        await runner.cleanup()
    assert problems == [
        "exchanges.binance_futures.symbols[2]: 'BTCUSD' is not a trading symbol on "
        "binance_futures; did you mean 'BTCUSDT'?"
    ]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "exchanges.binance_futures.symbols[1]: 'ICPUSDT' is SETTLING on binance_futures, "
        "not TRADING"
    )
