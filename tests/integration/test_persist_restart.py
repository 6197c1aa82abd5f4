"""A worker that starts over after a Redis failure handles each entry once more at most:
entries it had read but not yet batched are among its pending entries, re-read on restart."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.persist.worker import DEAD_STREAM
from marketdata.spool import BOOKS_STREAM, TRADES_STREAM
from tests.integration.persist_helpers import (
    FaultyRedis,
    drained,
    persist_config,
    row_counts,
    run_persist,
    spool_trades,
)
from tests.integration.scenario_runner import metric, wait_until

BATCH = 10


async def test_entries_carried_over_a_redis_failure_are_handled_once(
    redis_server, redis_client, pg
):
    # One read brings BATCH trades and BATCH books entries: the books wait (carried) while
    # the trades are committed, and that commit's XACK fails once.
    await spool_trades(redis_client, 0, BATCH)
    for i in range(BATCH):
        await redis_client.xadd(BOOKS_STREAM, {"junk": str(i)})  # undecodable: dead-lettered
    config = persist_config(redis_server.url, pg.dsn, batch={"max_rows": BATCH, "max_ms": 100})
    service = PersistService(config, [TimescaleSink(pg.dsn)])
    worker = service.workers[0]
    faulty = FaultyRedis(service.redis, "xack", RedisConnectionError("reset by peer"), times=1)
    worker.redis = faulty  # type: ignore[assignment]
    task = await run_persist(service)
    try:
        for stream in (TRADES_STREAM, BOOKS_STREAM):
            assert await wait_until(lambda s=stream: drained(redis_client, "timescale", s), 20)
        assert faulty.failures == 1
        assert await row_counts(pg.dsn) == (BATCH, BATCH)
    finally:
        service.stop()
        await task
    assert await redis_client.xlen(DEAD_STREAM) == BATCH
    assert metric(service, "entries_dead_total", stream=BOOKS_STREAM) == BATCH
