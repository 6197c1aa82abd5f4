"""An unreachable or failing exchange: counted, visible on /ready, logged once per outage."""

from __future__ import annotations

import asyncio
import logging

import pytest

from marketdata.service import Service
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource
from tests.integration.conftest import SimServer, service_config
from tests.integration.scenario_runner import get_json, metric, wait_until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def _lines_about(caplog: pytest.LogCaptureFixture, symbol: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("marketdata")
        and r.levelno >= logging.INFO
        and symbol in r.getMessage()
    ]


def _failures(service: Service, symbol: str, stream: str) -> float:
    return metric(
        service, "ws_connect_failures_total",
        exchange="binance_futures", symbol=symbol, stream=stream, reason="refused",
    )  # fmt: skip


async def test_unreachable_exchange_is_counted_shown_and_logged_once(
    redis_server, redis_client, caplog
):
    caplog.set_level(logging.INFO, logger="marketdata")
    sim = SimServer(GeneratedSource(rate=100, seed=3))  # built for its free port, never started
    config = service_config(
        redis_server.url, sim, SYMBOLS, reconnect={"initial_delay_s": 0.01, "max_delay_s": 0.05}
    )
    service = Service(config)
    task = asyncio.create_task(service.run())
    try:
        assert await wait_until(
            lambda: _async(all(_failures(service, s, "book") >= 20 for s in SYMBOLS)), 15
        ), "failed connects were not counted"
        status, body = await get_json(service, "/ready")
    finally:
        service.stop()
        await task

    assert status == 503
    for symbol in SYMBOLS:
        problems = body["problems"][f"binance_futures:{symbol}"]
        assert any("book stream disconnected: cannot connect" in p for p in problems), problems
        assert _failures(service, symbol, "trades") >= 1
        # Dozens of failed attempts: one line per connection (book, trades) when it began.
        lines = _lines_about(caplog, symbol)
        assert len(lines) <= 2, lines
        assert all("retrying" in line for line in lines), lines


async def test_outage_end_is_logged_once_with_attempts_then_book_syncs(
    redis_server, redis_client, caplog
):
    caplog.set_level(logging.INFO, logger="marketdata")
    sim = SimServer(GeneratedSource(rate=100, seed=3))
    config = service_config(
        redis_server.url, sim, ["BTCUSDT"], reconnect={"initial_delay_s": 0.01, "max_delay_s": 0.05}
    )
    service = Service(config)
    task = asyncio.create_task(service.run())
    try:
        assert await wait_until(lambda: _async(_failures(service, "BTCUSDT", "book") >= 3), 10)
        await sim.start()  # the exchange comes back
        ready = await wait_until(lambda: _async_status(service, "/ready", 200), 15)
        assert ready, "the service did not become ready once the exchange answered"
    finally:
        service.stop()
        await task
        await sim.stop()

    lines = _lines_about(caplog, "BTCUSDT")
    recovered = [line for line in lines if "recovered after" in line]
    assert len(recovered) == 2, lines  # book and trades connections, once each
    assert all("failed attempts; last cause: cannot connect" in line for line in recovered)
    assert sum("book synced at update id" in line for line in lines) == 1, lines


async def test_failing_snapshots_show_their_cause_on_ready(redis_server, redis_client, start_sim):
    scenario = Scenario(snapshot_status=500, snapshot_failures=10_000)
    sim = await start_sim(GeneratedSource(rate=100, seed=3), scenario=scenario)
    service = Service(service_config(redis_server.url, sim, ["BTCUSDT"]))
    task = asyncio.create_task(service.run())
    try:

        async def snapshot_problem_shown() -> bool:
            if service.http_port is None:
                return False
            status, body = await get_json(service, "/ready")
            problems = body.get("problems", {}).get("binance_futures:BTCUSDT", [])
            return status == 503 and any(
                p.startswith("snapshot failing: HTTP 500") for p in problems
            )

        assert await wait_until(snapshot_problem_shown, 10)
    finally:
        service.stop()
        await task


async def _async(value: bool) -> bool:
    return value


async def _async_status(service: Service, path: str, expected: int) -> bool:
    if service.http_port is None:
        return False
    status, _ = await get_json(service, path)
    return status == expected
