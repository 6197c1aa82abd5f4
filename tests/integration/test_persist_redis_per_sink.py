"""Each sink's worker tells its own Redis trouble: one refused for good (OOM) is logged once
and keeps /health at 503 while the other worker goes on, until it passes."""

from __future__ import annotations

import logging
import re
from typing import Any

from redis.exceptions import ResponseError

from marketdata.persist.mongo import MongoSink
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.persist.worker import DEAD_STREAM
from marketdata.spool import BOOKS_STREAM
from tests.integration.persist_helpers import (
    FaultyRedis,
    drained,
    health,
    persist_config,
    row_counts,
    run_persist,
    spool_trades,
)
from tests.integration.scenario_runner import wait_until
from tests.mongo_double import FakeDatabase

TOLD = re.compile(r"(\w+: )?redis (failing|still failing|recovered)")
OOM = "OOM command not allowed when used memory > 'maxmemory'."


def _service(redis_url: str, dsn: str, *sinks: Any) -> PersistService:
    config = persist_config(redis_url, dsn, batch={"max_rows": 500, "max_ms": 100})
    return PersistService(config, list(sinks))


async def _watch_until(service: PersistService, faulty: FaultyRedis, failures: int) -> list[bool]:
    """Whether /health said Redis was ok, polled until the faulty command has failed
    `failures` times."""
    said: list[bool] = []

    async def failed_enough() -> bool:
        status, body = await health(service.http_port)
        said.append(status == 200 or body["redis"]["ok"])
        return faulty.failures >= failures

    assert await wait_until(failed_enough, 15)
    return said


async def _healthy(service: PersistService) -> bool:
    return (await health(service.http_port))[0] == 200


def _redis_lines(caplog: Any) -> list[str]:
    said = [r.getMessage() for r in caplog.records]
    return [m for m in said if TOLD.match(m)]


async def test_one_workers_refused_redis_does_not_flap(redis_server, redis_client, pg, caplog):
    caplog.set_level(logging.INFO, "marketdata.persist")
    db = FakeDatabase()
    service = _service(
        redis_server.url, pg.dsn, TimescaleSink(pg.dsn), MongoSink("mongodb://unused", "md", db)
    )
    mongo = service.workers[1]
    faulty = FaultyRedis(service.redis, "xgroup_create", ResponseError(OOM))
    mongo.redis = faulty  # type: ignore[assignment]
    await spool_trades(redis_client, 0, 100)
    task = await run_persist(service)
    try:
        assert await wait_until(lambda: drained(redis_client, "timescale"), 20)
        said = await _watch_until(service, faulty, 5)
        assert not any(said[said.index(False) :]), said  # once failing, until it passes
        status, body = await health(service.http_port)
        assert status == 503
        assert OOM in body["redis"]["error"]
        assert body["redis"]["sinks"] == ["mongo"]
        assert _redis_lines(caplog) == [f"mongo: redis failing, retrying: ResponseError: {OOM}"]
        assert await row_counts(pg.dsn) == (100, 100)  # the other worker went on

        faulty.healed = True
        assert await wait_until(lambda: drained(redis_client, "mongo"), 20)
        assert await wait_until(lambda: _healthy(service), 10)
        assert len(db["trades"].docs) == 100
    finally:
        service.stop()
        await task
    lines = _redis_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[1].startswith("mongo: redis recovered after")


async def test_refused_dead_letter_is_told_once_until_it_passes(
    redis_server, redis_client, pg, caplog
):
    caplog.set_level(logging.INFO, "marketdata.persist")
    service = _service(redis_server.url, pg.dsn, TimescaleSink(pg.dsn))
    faulty = FaultyRedis(service.redis, "xadd", ResponseError(OOM))  # XADD spool:dead
    service.workers[0].redis = faulty  # type: ignore[assignment]
    await redis_client.xadd(BOOKS_STREAM, {"junk": "1"})  # undecodable: to be dead-lettered
    await spool_trades(redis_client, 0, 100)
    task = await run_persist(service)
    try:
        said = await _watch_until(service, faulty, 5)
        assert not any(said[said.index(False) :]), said
        assert _redis_lines(caplog) == [f"timescale: redis failing, retrying: ResponseError: {OOM}"]
        faulty.healed = True
        assert await wait_until(lambda: drained(redis_client, "timescale", BOOKS_STREAM), 20)
        assert await wait_until(lambda: drained(redis_client, "timescale"), 20)
        assert await wait_until(lambda: _healthy(service), 10)
    finally:
        service.stop()
        await task
    assert await redis_client.xlen(DEAD_STREAM) == 1
    lines = _redis_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[1].startswith("timescale: redis recovered after")
