"""Run the real service against the simulator with a fault scenario, then compare books."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

from marketdata.service import Service
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource
from tests.integration.conftest import SimServer, service_config


class Collector:
    """Every orderbook:/trades: message, decoded, per channel."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.pubsub = client.pubsub()
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async def start(self) -> None:
        await self.pubsub.psubscribe("orderbook:*", "trades:*")

    async def collect_until(self, done: Callable[[Collector], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                channel = message["channel"].decode()
                self.messages[channel].append(orjson.loads(message["data"]))
            elif done(self):
                return True
        return done(self)

    async def close(self) -> None:
        await self.pubsub.aclose()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return await predicate()


def metric(service: Service, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


async def get_json(service: Service, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{service.http_port}{path}") as response:
            return response.status, await response.json(content_type=None)


@dataclass
class Run:
    service: Service
    task: asyncio.Task[None]
    source: GeneratedSource
    sim: SimServer
    collector: Collector

    async def settle(self, timeout_s: float = 20.0) -> bool:
        """Stop injecting faults, let the market run cleanly for a moment, stop it, then
        wait until every published book shows its final state. (A diff lost just before
        the market stops cannot be noticed by anyone until the next one.)"""
        self.sim.scenario.enabled = False
        await asyncio.sleep(0.5)
        self.source.paused = True
        await asyncio.sleep(0.1)
        markets = self.source.markets

        def caught_up(c: Collector) -> bool:
            return all(
                c.messages[f"orderbook:{s}"]
                and c.messages[f"orderbook:{s}"][-1]["last_update_id"] == markets[s].last_id
                for s in markets
            )

        return await self.collector.collect_until(caught_up, timeout_s)

    def assert_books_equal_simulator(self) -> None:
        for symbol, market in self.source.markets.items():
            last = self.collector.messages[f"orderbook:{symbol}"][-1]
            bids, asks = market.top(20)
            assert (last["bids"], last["asks"]) == (bids, asks), symbol

    def assert_trades_complete(self) -> None:
        for symbol, market in self.source.markets.items():
            ids = [int(m["trade_id"]) for m in self.collector.messages[f"trades:{symbol}"]]
            assert ids, symbol
            assert ids == list(range(ids[0], market.trade_id + 1)), symbol

    async def started(self) -> None:
        """Wait until the service's HTTP endpoint is listening."""
        while self.service.http_port is None:
            assert not self.task.done(), "service stopped before listening"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.service.stop()
        await self.task
        await self.collector.close()


async def start_run(
    redis_url: str,
    redis_client: aioredis.Redis,
    start_sim: Callable[..., Awaitable[SimServer]],
    scenario: Scenario | None = None,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    rate: float = 200,
    exchange_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Run:
    source = GeneratedSource(rate=rate, seed=11)
    sim = await start_sim(source, scenario=scenario)
    collector = Collector(redis_client)
    await collector.start()
    service = Service(service_config(redis_url, sim, list(symbols), exchange_options, **overrides))
    task = asyncio.create_task(service.run())
    return Run(service, task, source, sim, collector)
