"""Housekeeping that Redis refuses (no permission for XTRIM) is logged once, shown on
/health and in a metric, and its recovery logged: never silent."""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from marketdata.persist.mongo import MongoSink
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.spool import TRADES_STREAM
from tests.integration.persist_helpers import (
    FaultyRedis,
    drained,
    health,
    persist_config,
    run_persist,
    spool_trades,
)
from tests.integration.scenario_runner import wait_until
from tests.mongo_double import FakeDatabase

USER = "persist_notrim"


async def test_refused_xtrim_is_told_and_its_recovery_too(redis_server, redis_client, pg, caplog):
    caplog.set_level(logging.INFO, "marketdata.persist")
    await redis_client.execute_command(
        "ACL", "SETUSER", USER, "reset", "on", ">pw", "~*", "&*", "+@all", "-xtrim"
    )
    url = redis_server.url.replace("redis://", f"redis://{USER}:pw@")
    service = PersistService(persist_config(url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)
        assert await wait_until(lambda: drained(redis_client, "timescale"), 20)

        async def refused() -> bool:
            return not (await health(service.http_port))[1]["housekeeping"]["ok"]

        assert await wait_until(refused, 10)
        status, body = await health(service.http_port)
        assert status == 200  # still persisting
        assert body["status"] == "degraded"
        assert "NoPermissionError" in body["housekeeping"]["error"]
        assert _metric(service, "housekeeping_ok") == 0
        assert _metric(service, "housekeeping_errors_total") >= 1
        assert await redis_client.xlen(TRADES_STREAM) == 100  # not trimmed

        await redis_client.execute_command("ACL", "SETUSER", USER, "+xtrim")

        async def trimmed() -> bool:
            return await redis_client.xlen(TRADES_STREAM) <= 1

        assert await wait_until(trimmed, 10)
        assert await wait_until(lambda: _housekeeping_ok(service), 10)
        assert _metric(service, "housekeeping_ok") == 1
    finally:
        service.stop()
        await task
        await redis_client.execute_command("ACL", "DELUSER", USER)
    lines = [r for r in caplog.records if r.getMessage().startswith("spool housekeeping")]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.INFO]  # once each
    assert "NoPermissionError" in lines[0].getMessage()
    assert "xtrim" in lines[0].getMessage()
    assert "recovered after" in lines[1].getMessage()


async def _housekeeping_ok(service: PersistService) -> bool:
    status, body = await health(service.http_port)
    return status == 200 and body["status"] == "ok" and body["housekeeping"]["ok"]


def _metric(service: PersistService, name: str) -> float:
    value = service.metrics.registry.get_sample_value(name)
    assert value is not None
    return value


async def test_housekeeping_cut_off_from_redis_is_not_ok(redis_server, redis_client, pg, caplog):
    caplog.set_level(logging.INFO, "marketdata.persist")
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        assert await wait_until(lambda: _housekeeping_ok(service), 10)
        redis_server.stop()

        async def cut_off() -> bool:
            body = (await health(service.http_port))[1]
            return not body["housekeeping"]["ok"] and _metric(service, "housekeeping_ok") == 0

        assert await wait_until(cut_off, 10)
        assert "ConnectionError" in (await health(service.http_port))[1]["housekeeping"]["error"]
        redis_server.start()
        await redis_client.connection_pool.disconnect()
        assert await wait_until(lambda: _housekeeping_ok(service), 15)
        assert _metric(service, "housekeeping_ok") == 1
    finally:
        service.stop()
        await task
    lines = [r for r in caplog.records if r.getMessage().startswith("spool housekeeping")]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.INFO]  # once each


async def test_no_trim_while_a_sink_has_no_group_yet(redis_server, redis_client, pg):
    """A group Redis refused to create (OOM) must not let the others' trim take its entries."""
    db = FakeDatabase()
    sinks = [TimescaleSink(pg.dsn), MongoSink("mongodb://unused", "md", db)]
    service = PersistService(persist_config(redis_server.url, pg.dsn), list(sinks))
    oom = ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    faulty = FaultyRedis(service.redis, "xgroup_create", oom)
    service.workers[1].redis = faulty  # type: ignore[assignment]
    await spool_trades(redis_client, 0, 100)
    task = await run_persist(service)
    try:
        assert await wait_until(lambda: drained(redis_client, "timescale"), 20)
        assert faulty.failures >= 1
        await service.housekeep_once()
        assert await redis_client.xlen(TRADES_STREAM) == 100  # kept for mongo
        faulty.healed = True
        assert await wait_until(lambda: drained(redis_client, "mongo"), 20)
        assert len(db["trades"].docs) == 100
    finally:
        service.stop()
        await task
