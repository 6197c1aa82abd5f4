"""Persistence: trades/s from the spool into PostgreSQL, and receive -> committed latency
at a steady offered rate. A durable PostgreSQL (fsync on) and a redis-server are started
on free loopback ports for the run."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from marketdata.config import parse_config
from marketdata.metrics import PersistMetrics
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.spool import TRADES_STREAM
from tests.integration.persist_helpers import spool_trades, trade_fields


class Recorder:
    """Stands in for a labelled histogram and keeps every observation."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def labels(self, *_: Any) -> Recorder:
        return self

    def observe(self, value: float) -> None:
        self.values.append(value)


def _config(redis_url: str, dsn: str) -> Any:
    raw = {
        "redis_url": redis_url,
        "persist": {"health_port": 0, "timescale": {"dsn": dsn}},
        "exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}},
    }
    return parse_config(raw, environ={})


async def _reset(redis_url: str, dsn: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS trades, l2_snapshots")
    await conn.close()


async def _wait(
    condition: Any, task: asyncio.Task[None], what: str, timeout_s: float = 120.0
) -> None:
    """Poll `condition` until true; fail loudly if persist died or it takes too long."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if task.done():
            raise RuntimeError(f"persist stopped while waiting for {what}: {task!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout_s:.0f}s")
        await asyncio.sleep(0.02)


async def _stop(service: PersistService, task: asyncio.Task[None], timeout_s: float = 60) -> None:
    """Stop persist; a shutdown that does not end is an error, not a silent hang."""
    service.stop()
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        for pending in asyncio.all_tasks():  # where it is stuck, for whoever reads this
            pending.print_stack(file=sys.stderr)
        task.cancel()
        raise RuntimeError(f"persist did not stop within {timeout_s:.0f}s")
    task.result()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM trades"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def throughput(redis_url: str, dsn: str, trades: int) -> float:
    """Rows/s: a spool holding `trades` entries drained into an empty table."""
    await _reset(redis_url, dsn)
    client = aioredis.Redis.from_url(redis_url)
    await spool_trades(client, 0, trades)
    service = PersistService(_config(redis_url, dsn), [TimescaleSink(dsn)])
    task = asyncio.create_task(service.run())
    started = time.perf_counter()

    async def stored() -> bool:
        return await _count(dsn) >= trades

    await _wait(stored, task, f"{trades} rows")
    elapsed = time.perf_counter() - started
    await _stop(service, task)
    await client.aclose()
    return trades / elapsed


async def latency(redis_url: str, dsn: str, rate: int, seconds: float) -> list[float]:
    """Receive -> committed, seconds, for every trade offered at `rate`/s."""
    await _reset(redis_url, dsn)
    metrics = PersistMetrics()
    recorder = Recorder()
    metrics.commit_latency = recorder  # type: ignore[assignment]
    service = PersistService(_config(redis_url, dsn), [TimescaleSink(dsn)], metrics)
    task = asyncio.create_task(service.run())
    client = aioredis.Redis.from_url(redis_url)
    await client.xadd(TRADES_STREAM, trade_fields(-1))  # warm-up: schema, connections

    async def warm() -> bool:
        return await _count(dsn) > 0

    await _wait(warm, task, "the warm-up row")
    await asyncio.sleep(0.5)
    recorder.values.clear()
    tick = 0.01
    per_tick = int(rate * tick)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while loop.time() - started < seconds:
        pipe = client.pipeline(transaction=False)
        for _ in range(per_tick):
            pipe.xadd(TRADES_STREAM, trade_fields(sent))  # recv_ts = now, as the service would
            sent += 1
        await pipe.execute()
        next_tick = started + (sent / per_tick) * tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))

    async def committed() -> bool:
        return len(recorder.values) >= sent

    await _wait(committed, task, f"{sent} commits")
    await _stop(service, task)
    await client.aclose()
    return recorder.values
