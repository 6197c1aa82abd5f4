"""Helpers for the persistence tests: spool trades, count rows, run `persist`."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from marketdata.config import Config, parse_config
from marketdata.events import Trade
from marketdata.spool import TRADES_STREAM, trade_entry


def trade_fields(i: int, symbol: str = "BTCUSDT") -> dict[str, str]:
    trade = Trade(
        "binance_futures", symbol, i, 0.0, 0.0, f"{100 + i % 50}.5", "0.25",
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
