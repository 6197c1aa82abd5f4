"""The spool into a real PostgreSQL: exactly once in rows, whatever happens to the consumer."""

from __future__ import annotations

import asyncio
import random
import signal
import sys

import yaml

from marketdata.metrics import PersistMetrics
from marketdata.persist.mongo import MongoSink
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.persist.worker import SinkState
from marketdata.spool import TRADES_STREAM
from tests.integration.persist_helpers import (
    pending,
    persist_config,
    row_counts,
    spool_trades,
)
from tests.integration.scenario_runner import wait_until
from tests.mongo_double import FakeDatabase


async def run_persist(service: PersistService) -> asyncio.Task[None]:
    task = asyncio.create_task(service.run())
    while service.http_port is None:
        assert not task.done(), "persist stopped before it listened"
        await asyncio.sleep(0.01)
    return task


async def test_100k_trades_exactly_once_and_replay_adds_nothing(redis_server, redis_client, pg):
    config = persist_config(redis_server.url, pg.dsn)
    service = PersistService(config, [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100_000)

        async def all_stored() -> bool:
            return await row_counts(pg.dsn) == (100_000, 100_000)

        assert await wait_until(all_stored, 60)
        await spool_trades(redis_client, 0, 100_000)  # the same trades delivered again
        assert await wait_until(lambda: _drained(redis_client, "timescale"), 60)
        assert await row_counts(pg.dsn) == (100_000, 100_000)
        written = service.metrics.registry.get_sample_value(
            "rows_written_total", {"sink": "timescale", "table": "trades"}
        )
        assert written == 100_000  # the replay stored nothing new
        await service.housekeep_once()
        assert await redis_client.xlen(TRADES_STREAM) <= 1  # acknowledged entries trimmed
    finally:
        service.stop()
        await task


async def _drained(redis_client, group: str) -> bool:
    info = {g["name"].decode(): g for g in await redis_client.xinfo_groups(TRADES_STREAM)}
    return info[group]["pending"] == 0 and info[group]["lag"] == 0


async def test_kill_9_five_times_while_trades_flow(redis_server, redis_client, pg, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "redis_url": redis_server.url,
        "persist": {"health_port": 0, "timescale": {"dsn": pg.dsn},
                    "batch": {"max_rows": 2000, "max_ms": 100}},
        "exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}},
    }))  # fmt: skip
    command = [sys.executable, "-m", "marketdata.cli", "persist", "--config", str(config)]
    rng = random.Random(42)

    async def produce() -> None:
        for first in range(0, 50_000, 1000):
            await spool_trades(redis_client, first, 1000)
            await asyncio.sleep(0.05)  # about 20k trades/s for 2.5 s

    producer = asyncio.create_task(produce())
    for _ in range(5):
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(rng.uniform(0.8, 1.6))  # start-up is ~0.6 s: kill mid-batch
        process.send_signal(signal.SIGKILL)
        await process.wait()
    await producer
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    log = b""
    try:
        while b"sink ready" not in log:  # up, with its signal handlers installed
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "persist exited early"
            log += line

        async def all_stored() -> bool:
            return await row_counts(pg.dsn) == (50_000, 50_000)

        assert await wait_until(all_stored, 60)
        assert await wait_until(lambda: _drained(redis_client, "timescale"), 10)
        assert await pending(redis_client, "timescale") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await process.communicate()
    assert process.returncode == 0, (log + stderr).decode()[-2000:]


async def test_postgres_outage_holds_its_group_only(redis_server, redis_client, pg, caplog):
    mongo_db = FakeDatabase()
    config = persist_config(redis_server.url, pg.dsn, batch={"max_rows": 1000, "max_ms": 100})
    metrics = PersistMetrics()
    service = PersistService(
        config, [TimescaleSink(pg.dsn), MongoSink("mongodb://unused", "md", mongo_db)], metrics
    )
    task = await run_persist(service)
    timescale, mongo = service.workers
    try:
        await spool_trades(redis_client, 0, 5000)
        assert await wait_until(lambda: _stored(pg.dsn, 5000), 20)
        pg.stop()
        await spool_trades(redis_client, 5000, 5000)  # arrives while PostgreSQL is down
        assert await wait_until(lambda: _true(timescale.state is SinkState.UNAVAILABLE), 10)
        stored = metrics.registry.get_sample_value(
            "rows_written_total", {"sink": "timescale", "table": "trades"}
        )
        for second in range(10):  # ten seconds of outage
            await spool_trades(redis_client, 10_000 + second * 500, 500)
            await asyncio.sleep(1.0)
            await service.housekeep_once()
            # Everything since the outage began is kept for timescale (acked by both: gone).
            since_outage = 5000 + (second + 1) * 500
            assert await redis_client.xlen(TRADES_STREAM) == since_outage
            assert await _unacked(redis_client, "timescale") == since_outage
            assert len(mongo_db["trades"].docs) >= 5000 + since_outage - 500  # mongo goes on
        assert stored == 5000
        assert (
            metrics.registry.get_sample_value(
                "rows_written_total", {"sink": "timescale", "table": "trades"}
            )
            == stored
        )  # nothing written, nothing acknowledged
        assert await _drained(redis_client, "mongo")
        assert timescale.state is SinkState.UNAVAILABLE
        pg.start()
        assert await wait_until(lambda: _stored(pg.dsn, 15_000), 30)
        assert await wait_until(lambda: _drained(redis_client, "timescale"), 10)
        assert len(mongo_db["trades"].docs) == 15_000
        await service.housekeep_once()
        assert timescale.state in (SinkState.OK, SinkState.DEGRADED)
    finally:
        service.stop()
        await task
    assert await row_counts(pg.dsn) == (15_000, 15_000)
    walls = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not walls  # the outage is one line with its cause, no library traceback


async def test_bad_rows_are_set_aside_not_lost_nor_blocking(redis_server, redis_client, pg):
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)
        bad = dict(await _fields(redis_client))
        for price in ("NaN", "-1", "0"):
            await redis_client.xadd(TRADES_STREAM, {**bad, "price": price, "trade_id": price})
        await redis_client.xadd(TRADES_STREAM, {"exchange": "x"})  # not even a trade
        await spool_trades(redis_client, 100, 100)
        assert await wait_until(lambda: _stored(pg.dsn, 200), 20)
        assert await wait_until(lambda: _drained(redis_client, "timescale"), 10)
    finally:
        service.stop()
        await task
    dead = await redis_client.xrange("spool:dead")
    assert len(dead) == 4
    reasons = b" ".join(fields[b"error"] for _, fields in dead)
    assert b"trades_price_valid" in reasons
    assert b"KeyError" in reasons


async def _unacked(redis_client, group: str) -> int:
    info = {g["name"].decode(): g for g in await redis_client.xinfo_groups(TRADES_STREAM)}
    return int(info[group]["pending"]) + int(info[group]["lag"])


async def _fields(redis_client) -> dict:
    (_, fields), *_ = await redis_client.xrange(TRADES_STREAM, count=1)
    return {k.decode(): v.decode() for k, v in fields.items()}


async def _stored(dsn: str, n: int) -> bool:
    return (await row_counts(dsn))[0] == n


async def _true(value: bool) -> bool:
    return value


def test_dsn_is_not_in_logs_or_reprs() -> None:
    config = persist_config("redis://127.0.0.1:1/0", "postgresql://u:secret@h/db")
    assert "secret" not in repr(config)
