"""One leased service whose Redis goes away: /ready says so, the leases are given up once
their local deadline passes (nothing is published under them any more), and everything
comes back when Redis does."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from marketdata import spill
from marketdata.service import Service
from marketdata.sim.sources import GeneratedSource
from tests.integration.conftest import service_config
from tests.integration.scenario_runner import get_json, wait_until
from tests.redis_server import RedisServer

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


async def test_a_leased_instance_tells_the_truth_when_redis_goes_away(
    start_sim: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    redis = RedisServer(str(tmp_path))
    redis.start()
    sim = await start_sim(GeneratedSource(rate=20, seed=2, symbols=SYMBOLS))
    config = service_config(
        redis.url, sim, SYMBOLS, leases={"enabled": True, "ttl_s": 1.0, "instance_id": "solo"}
    )
    service = Service(config)
    task = asyncio.create_task(service.run())
    last: list[Any] = []

    async def ready_with(symbols: int) -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        last[:] = [body]
        return status == 200 and body["symbols"] == symbols

    try:
        assert await wait_until(lambda: ready_with(2), 15), last
        assert last[0]["leases"] == {
            "instance_id": "solo", "owned": 2, "instances": 1, "fair_share": 2,
            "symbols_configured": 2,
        }  # fmt: skip
        redis.stop()

        async def given_up() -> bool:
            status, body = await get_json(service, "/ready")
            last[:] = [body]
            leases = body["problems"].get("leases", [])
            return status == 503 and body["symbols"] == 0 and bool(leases)

        assert await wait_until(given_up, 5), last
        assert last[0]["problems"]["leases"][0].startswith("lease renewal failing: ")
        assert last[0]["leases"]["owned"] == 0
        lost = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
        assert sorted(lost) == [
            f"lease lost: binance_futures:{s} token 1 (not renewed in time)"
            for s in sorted(SYMBOLS)
        ]
        failing = [r for r in caplog.records if "leases (Redis) failing" in r.getMessage()]
        assert len(failing) == 1  # once, however many rounds fail

        redis.start()  # the same port
        assert await wait_until(lambda: ready_with(2), 15), last
        assert any("leases (Redis) recovered" in r.getMessage() for r in caplog.records)
        acquired = [r.getMessage() for r in caplog.records if "lease acquired" in r.getMessage()]
        assert len(acquired) == 4  # each symbol twice, its token 1 then (Redis was emptied) 1
    finally:
        service.stop()
        await task
        redis.stop()


async def test_spool_entries_spilled_by_an_earlier_run_are_appended_under_leases(
    redis_server: Any, redis_client: Any, start_sim: Any, tmp_path: Path
) -> None:
    sim = await start_sim(GeneratedSource(rate=5, seed=2, symbols=SYMBOLS))
    path = tmp_path / "spill.jsonl"
    fields = ("exchange", "binance_futures", "symbol", "BTCUSDT", "trade_id", "77")
    spill.write(path, [("XADD", "spool:trades", "*", *fields)])
    await redis_client.set("lease:{binance_futures:BTCUSDT}", "other:1", px=60_000)
    config = service_config(
        redis_server.url, sim, SYMBOLS, spool={"spill_path": str(path)},
        leases={"enabled": True, "ttl_s": 1.0, "instance_id": "solo"},
    )  # fmt: skip
    service = Service(config)
    task = asyncio.create_task(service.run())

    async def appended() -> bool:
        entries = await redis_client.xrange("spool:trades", "-", "+")
        return any(e[1].get(b"trade_id") == b"77" for e in entries) and not path.exists()

    try:
        assert await wait_until(appended, 10)
    finally:
        service.stop()
        await task
