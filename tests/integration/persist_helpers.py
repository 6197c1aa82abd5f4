"""Helpers for the persistence tests: spool trades, count rows, run `persist`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from marketdata.config import Config, parse_config
from marketdata.events import Trade
from marketdata.spool import TRADES_STREAM, trade_entry


def trade_fields(i: int, symbol: str = "BTCUSDT") -> dict[str, str]:
    trade = Trade(
        "binance_futures", symbol, str(i), 0.0, 0.0, f"{100 + i % 50}.5", "0.25",
        "buy" if i % 2 else "sell", 1_700_000_000_000 + i, time.time(),
    )  # fmt: skip
    return trade_entry(trade)


async def spool_trades(redis: aioredis.Redis, first: int, count: int, chunk: int = 5000) -> None:
    for start in range(first, first + count, chunk):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(start + chunk, first + count)):
            pipe.xadd(TRADES_STREAM, trade_fields(i))
        await pipe.execute()


async def row_counts(dsn: str) -> tuple[int, int]:
    """(rows, distinct natural keys) in trades."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT (exchange, symbol, trade_id)) FROM trades"
        )
        return int(row[0]), int(row[1])
    except asyncpg.UndefinedTableError:
        return 0, 0
    finally:
        await conn.close()


async def pending(redis: aioredis.Redis, group: str, stream: str = TRADES_STREAM) -> int:
    return int((await redis.xpending(stream, group))["pending"])


def persist_config(redis_url: str, dsn: str, **persist: Any) -> Config:
    raw = {
        "redis_url": redis_url,
        "health_port": 0,
        "persist": {"health_port": 0, "timescale": {"dsn": dsn}, **persist},
        "exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}},
    }
    return parse_config(raw, environ={})


async def run_persist(service: Any) -> asyncio.Task[None]:
    """Start a PersistService in this loop; returns once its HTTP server listens."""
    task = asyncio.create_task(service.run())
    while service.http_port is None:
        assert not task.done(), "persist stopped before it listened"
        await asyncio.sleep(0.01)
    return task


async def drained(redis: aioredis.Redis, group: str, stream: str = TRADES_STREAM) -> bool:
    """The group has read and acknowledged every entry of the stream."""
    info = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    return group in info and info[group]["pending"] == 0 and info[group]["lag"] == 0


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            return response.status, await response.json()


class FaultyRedis:
    """A worker's Redis client that raises `error` from the named command (the next `times`
    calls; None: until `healed`); every other call goes through."""

    def __init__(
        self, redis: aioredis.Redis, command: str, error: Exception, times: int | None = None
    ) -> None:
        self._redis = redis
        self._command = command
        self._error = error
        self._times = times
        self.healed = False
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._redis, name)
        if name != self._command:
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            if not self.healed and (self._times is None or self.failures < self._times):
                self.failures += 1
                raise self._error
            return await real(*args, **kwargs)

        return call
