"""Leases over two venues (Binance futures, one symbol per feed; Kraken, both pairs on one
connection): two services split the four symbols, serve only what they hold, and when one
stops the other takes its symbols at once (they were released, not left to expire)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from marketdata.config import parse_config
from marketdata.service import Service
from marketdata.sim.app import create_sim_app
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource
from tests.helpers import free_port
from tests.integration.scenario_runner import get_json, wait_until

SYMBOLS = {"binance_futures": ["BTCUSDT", "ETHUSDT"], "kraken": ["BTC/USD", "ETH/USD"]}
PAIRS = [(venue, s) for venue, symbols in SYMBOLS.items() for s in symbols]
TTL_S = 1.0


@pytest.fixture
async def sim_port() -> AsyncIterator[int]:
    sources: dict[str, Any] = {
        "binance_futures": GeneratedSource(40, 3, SYMBOLS["binance_futures"]),
        "kraken": KrakenSource(40, 5, SYMBOLS["kraken"]),
    }
    runner = web.AppRunner(create_sim_app(sources, {v: Scenario() for v in sources}))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    for source in sources.values():
        await source.close()
    await runner.cleanup()


def leased(redis_url: str, port: int, name: str) -> Service:
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    raw = {
        "redis_url": redis_url, "health_port": 0, "publish_interval_ms": 20,
        "reconnect": {"initial_delay_s": 0.05, "max_delay_s": 0.5},
        "spool": {"spill_path": os.path.join(tempfile.mkdtemp(), "spool.jsonl")},
        "leases": {"enabled": True, "ttl_s": TTL_S, "instance_id": name},
        "exchanges": {
            "binance_futures": {"symbols": SYMBOLS["binance_futures"], "ws_url": ws,
                                "rest_url": http},
            "kraken": {"symbols": SYMBOLS["kraken"], "ws_url": f"{ws}/kraken/v2", "depth": 25,
                       "symbols_per_connection": 2},
        },
    }  # fmt: skip
    return Service(parse_config(raw, environ={}))


async def test_two_services_share_two_venues_and_one_takes_all_when_the_other_stops(
    redis_server: Any, redis_client: aioredis.Redis, sim_port: int
) -> None:
    services = {n: leased(redis_server.url, sim_port, n) for n in ("a", "b")}
    tasks = {n: asyncio.create_task(s.run()) for n, s in services.items()}
    last: list[Any] = []

    async def serving(service: Service, count: int) -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        last[:] = [body]
        return status == 200 and body["symbols"] == count

    async def owners() -> Counter[str]:
        keys = [f"lease:{{{venue}:{s}}}" for venue, s in PAIRS]
        return Counter(v.decode().split(":")[0] for v in await redis_client.mget(keys) if v)

    try:
        a, b = services["a"], services["b"]

        async def split() -> bool:
            return await owners() == {"a": 2, "b": 2} and all(
                [await serving(a, 2), await serving(b, 2)]
            )

        assert await wait_until(split, 20), (last, await owners())
        held = {n: {p for p in PAIRS if s.state_for(*p) is not None} for n, s in services.items()}
        assert held["a"] | held["b"] == set(PAIRS)
        assert held["a"] & held["b"] == set()

        a.stop()
        await tasks.pop("a")
        released = [
            a.metrics.registry.get_sample_value(
                "lease_changes_total", {"exchange": v, "symbol": s, "change": "released"}
            )
            for v, s in held["a"]
        ]
        assert released == [1.0, 1.0]  # freed at shutdown, not left to expire

        async def b_serves_all() -> bool:
            return await serving(b, 4) and await owners() == {"b": 4}

        assert await wait_until(b_serves_all, TTL_S + 10), last
        assert {p for p in PAIRS if b.state_for(*p) is not None} == set(PAIRS)
    finally:
        for name, task in tasks.items():
            services[name].stop()
            await task
