"""The shared REST budget against a real redis-server: two processes' gates (two clients)
sharing one venue's budget, a stop seen by one holding the other, and Redis going away."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from marketdata import rest_budget
from marketdata.rest_budget import RestBudgets, SharedBudget
from marketdata.rest_gate import BAN_FLOOR_S, RestGate
from tests.redis_server import RedisServer

MINUTE_MS = 60_000


class Wall:
    """A wall clock in ms for the scripts, at :30 of a minute until a test moves it."""

    def __init__(self) -> None:
        self.ms = 28_000_000 * MINUTE_MS + 30_000

    def __call__(self) -> int:
        return self.ms


Processes = Callable[..., SharedBudget]


@pytest.fixture
async def processes(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> AsyncIterator[Processes]:
    """Each call: one process's budget of binance_futures behind IP label `test`, over a
    client of its own."""
    clients: list[aioredis.Redis] = []

    def process(now_ms: Callable[[], int] | None = None) -> SharedBudget:
        client = aioredis.Redis.from_url(redis_server.url)
        clients.append(client)
        return SharedBudget(client, "binance_futures", "test", now_ms=now_ms)

    yield process
    for client in clients:
        await client.aclose()


async def test_two_processes_never_pass_the_budget_together_in_one_minute(
    processes: Processes, redis_client: aioredis.Redis
) -> None:
    wall = Wall()
    a, b = processes(wall), processes(wall)
    answers = [await p.take(10, 100) for _ in range(8) for p in (a, b)]
    assert answers == [0.0] * 10 + [30.0] * 6  # 10 of weight 10, then: wait for the minute
    assert await redis_client.hget("rest_budget:binance_futures:test", "used") == b"100"
    wall.ms += 29_999
    assert await b.take(10, 100) == 0.001
    wall.ms += 1  # the next minute: a new budget, for both together again
    answers = [await p.take(30, 100) for _ in range(3) for p in (a, b)]
    assert answers == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0]


async def test_the_budget_key_expires_after_its_minute(
    processes: Processes, redis_client: aioredis.Redis
) -> None:
    await processes().take(10, 100)  # the Redis server's own clock
    ttl_ms = await redis_client.pttl("rest_budget:binance_futures:test")
    assert 60_000 < ttl_ms <= 120_000  # to the end of the minute after this one


async def test_two_gates_in_real_time_share_one_budget(processes: Processes) -> None:
    if time.time() % 60 > 55:  # the minute must not turn while the gates are watched
        await asyncio.sleep(60.1 - time.time() % 60)
    gates = [RestGate(100, 1.0, min_spacing_s=0, shared=processes()) for _ in range(2)]
    granted: list[int] = []
    spent = asyncio.Event()

    async def hammer(i: int) -> None:
        while True:
            await gates[i].acquire(10)
            granted.append(i)
            if len(granted) >= 10:
                spent.set()

    tasks = [asyncio.create_task(hammer(i)) for i in range(2)]
    try:
        await asyncio.wait_for(spent.wait(), 3)
        await asyncio.sleep(0.3)  # both go on asking: none more may pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(granted) == 10
    assert gates[0].used_weight + gates[1].used_weight == 100
    assert set(granted) == {0, 1}


async def test_a_429_seen_by_one_process_holds_the_other_for_retry_after(
    processes: Processes,
) -> None:
    wall = Wall()
    a, b = processes(wall), processes(wall)
    RestGate(shared=a).record(429, {"Retry-After": "2"})
    await a.drain()
    assert await b.take(10, 100) == 2.0
    wall.ms += 1999
    assert await b.take(10, 100) == 0.001
    wall.ms += 1
    assert await b.take(10, 100) == 0.0


async def test_a_ban_holds_every_process_for_the_ban_floor(processes: Processes) -> None:
    wall = Wall()
    a, b = processes(wall), processes(wall)
    RestGate(shared=a).record(418, {"Retry-After": "1"})
    await a.drain()
    assert await b.take(10, 100) == BAN_FLOOR_S
    RestGate(shared=b).record(429, {"Retry-After": "5"})  # a shorter stop does not cut it
    await b.drain()
    assert await a.take(10, 100) == BAN_FLOOR_S


async def test_a_real_429_holds_the_other_gate_for_retry_after(processes: Processes) -> None:
    a = RestGate(min_spacing_s=0, shared=(shared := processes()))
    b = RestGate(min_spacing_s=0, shared=processes())
    a.record(429, {"Retry-After": "1"})
    await shared.drain()
    start = time.monotonic()
    await b.acquire(10)
    assert 0.95 < time.monotonic() - start < 2.0
    assert b.blocked_until == 0.0  # b heard of it only through Redis


async def test_the_venues_used_weight_raises_the_shared_count(
    processes: Processes, redis_client: aioredis.Redis
) -> None:
    wall = Wall()
    a, b = processes(wall), processes(wall)
    assert await a.take(10, 100) == 0.0
    RestGate(shared=a).record(200, {"X-MBX-USED-WEIGHT-1M": "95"})
    await a.drain()
    assert await b.take(10, 100) == 30.0
    RestGate(shared=b).record(200, {"X-MBX-USED-WEIGHT-1M": "40"})  # lower: kept at 95
    await b.drain()
    assert await redis_client.hget("rest_budget:binance_futures:test", "used") == b"95"
    assert await b.take(5, 100) == 0.0


async def test_a_flushed_script_cache_is_sent_again(
    processes: Processes, redis_client: aioredis.Redis
) -> None:
    budget = processes(Wall())
    assert await budget.take(10, 100) == 0.0
    await redis_client.script_flush()
    assert await budget.take(10, 100) == 0.0  # NOSCRIPT, then EVAL
    assert await redis_client.hget("rest_budget:binance_futures:test", "used") == b"20"
    assert not budget.outage.active


async def test_redis_down_falls_back_to_the_local_count_told_once_each_way(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rest_budget, "RETRY_INTERVAL_S", 0.05)
    caplog.set_level(logging.INFO, logger="marketdata.rest_budget")
    server = RedisServer(str(tmp_path))
    server.start()
    budgets = RestBudgets.connect(server.url, "test")
    gate = RestGate(1000, 1.0, min_spacing_s=0, shared=budgets.for_venue("binance_futures"))
    try:
        await gate.acquire(1)
        server.stop()
        async with asyncio.timeout(5):  # never held: this process counts alone
            for _ in range(20):
                await gate.acquire(1)
                await asyncio.sleep(0.01)  # past the retry interval now and then
        assert gate.used_weight == 21
        server.start()  # the same port
        async with asyncio.timeout(5):
            while budgets.for_venue("binance_futures").outage.active:
                await gate.acquire(1)
                await asyncio.sleep(0.01)
        client = aioredis.Redis.from_url(server.url)
        used = await client.hget("rest_budget:binance_futures:test", "used")
        await client.aclose()
        assert used is not None
        assert int(used) >= 1  # counted in Redis again
    finally:
        await budgets.aclose()
        server.stop()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO], lines
    assert "shared REST budget rest_budget:binance_futures:test" in lines[0][1]
    assert "failing" in lines[0][1]
    assert "recovered" in lines[1][1]


async def test_a_budget_with_its_own_window_and_limit_counts_per_window(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """OKX's binding limit, 40 requests per 2 s per IP: 32 (80%) in each 2 s window of two
    processes together, whatever budget per minute each gate asks with."""
    wall = Wall()
    wall.ms += 500  # half a second into a 2 s window
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    try:
        a, b = (
            SharedBudget(c, "okx", "test", window_s=2.0, limit=32, now_ms=wall) for c in clients
        )
        answers = [await p.take(1, 960) for _ in range(17) for p in (a, b)]
        assert answers == [0.0] * 32 + [1.5, 1.5]  # then: the next window, 1.5 s on
        wall.ms += 1500
        assert await a.take(1, 960) == 0.0
        ttl_ms = await redis_client.pttl("rest_budget:okx:test")
        assert 2_000 < ttl_ms <= 4_000  # to the end of the window after this one
    finally:
        for client in clients:
            await client.aclose()
