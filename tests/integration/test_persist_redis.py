"""`marketdata persist` outlives Redis trouble: down at start, killed, restarted, FLUSHALL,
a wrong password. It retries with backoff, says so on /health, and resumes."""

from __future__ import annotations

import asyncio
import logging

from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from tests.integration.persist_helpers import (
    health,
    persist_config,
    row_counts,
    run_persist,
    spool_trades,
)
from tests.integration.scenario_runner import wait_until


def _service(redis_url: str, dsn: str) -> PersistService:
    config = persist_config(redis_url, dsn, batch={"max_rows": 500, "max_ms": 100})
    return PersistService(config, [TimescaleSink(dsn)])


async def _redis_problem(service: PersistService) -> bool:
    status, body = await health(service.http_port)
    return status == 503 and body["redis"]["ok"] is False


async def _restart(redis_server, redis_client) -> None:
    redis_server.stop()
    redis_server.start()
    await redis_client.connection_pool.disconnect()  # the test's own client reconnects


def _stored(dsn: str, n: int):
    async def check() -> bool:
        return await row_counts(dsn) == (n, n)

    return check


async def test_started_with_redis_down_persists_once_it_comes(redis_server, redis_client, pg):
    redis_server.stop()
    service = _service(redis_server.url, pg.dsn)
    task = await run_persist(service)
    try:
        assert await wait_until(lambda: _redis_problem(service), 10)
        assert "Connect" in (await health(service.http_port))[1]["redis"]["error"]
        redis_server.start()
        await redis_client.connection_pool.disconnect()
        await spool_trades(redis_client, 0, 100)
        assert await wait_until(_stored(pg.dsn, 100), 20)
        assert (await health(service.http_port))[0] == 200
        assert not task.done()
    finally:
        service.stop()
        await task


async def test_flushall_during_run_recreates_the_groups(redis_server, redis_client, pg, caplog):
    service = _service(redis_server.url, pg.dsn)
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)
        assert await wait_until(_stored(pg.dsn, 100), 20)
        await redis_client.flushall()  # while persist blocks in XREADGROUP
        await spool_trades(redis_client, 100, 100)
        assert await wait_until(_stored(pg.dsn, 200), 20)
        await spool_trades(redis_client, 200, 100)
        assert await wait_until(_stored(pg.dsn, 300), 20)
        assert not task.done()
    finally:
        service.stop()
        await task
    vanished = [r for r in caplog.records if "vanished" in r.getMessage()]
    assert len(vanished) == 1, [r.getMessage() for r in vanished]
    groups = await redis_client.xinfo_groups("spool:trades")
    assert [g["name"] for g in groups] == [b"timescale"]


async def test_redis_killed_and_restarted_resumes(redis_server, redis_client, pg, caplog):
    caplog.set_level(logging.INFO, "marketdata.persist")
    service = _service(redis_server.url, pg.dsn)
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)
        assert await wait_until(_stored(pg.dsn, 100), 20)
        redis_server.process.kill()
        redis_server.process.wait()
        redis_server.process = None
        assert await wait_until(lambda: _redis_problem(service), 10)
        redis_server.start()
        await redis_client.connection_pool.disconnect()
        await spool_trades(redis_client, 100, 100)
        assert await wait_until(_stored(pg.dsn, 200), 20)
        await _restart(redis_server, redis_client)  # a clean restart too
        await spool_trades(redis_client, 200, 100)
        assert await wait_until(_stored(pg.dsn, 300), 20)
        assert (await health(service.http_port))[0] == 200
        assert not task.done()
    finally:
        service.stop()
        await task
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("marketdata")]
    assert any(m.startswith("timescale: redis failing, retrying: ") for m in messages)
    assert any(m.startswith("timescale: redis recovered after") for m in messages)
    assert not any(r.exc_info for r in caplog.records)


async def test_wrong_redis_password_keeps_retrying_and_says_so(redis_server, pg, caplog):
    url = redis_server.url.replace("redis://", "redis://nobody:wrong@")
    service = _service(url, pg.dsn)
    task = await run_persist(service)
    try:

        async def retried() -> bool:
            return service.workers[0].redis_outage.attempts >= 3

        assert await wait_until(retried, 20)
        assert not task.done()
        status, body = await health(service.http_port)
        assert status == 503
        assert "invalid username-password pair" in body["redis"]["error"]
    finally:
        service.stop()
        await asyncio.wait_for(task, 5)
    causes = [r for r in caplog.records if "invalid username-password" in r.getMessage()]
    said = sorted(r.getMessage().split(" failing")[0] for r in causes)
    assert said == ["spool housekeeping", "timescale: redis"]  # once each, not per attempt
    assert all(r.levelno == logging.ERROR for r in causes)
