"""The start-up warnings about a spool Redis does not persist or nobody drains."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from marketdata.service import Service
from marketdata.sim.sources import GeneratedSource
from marketdata.spool_checks import check_spool
from tests.helpers import free_port
from tests.integration.conftest import service_config

log = logging.getLogger("test.durability")


@pytest.fixture
async def appendonly(redis_client: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    """The test server, put back to appendonly no afterwards."""
    yield redis_client
    await redis_client.config_set("appendonly", "no")


def durability_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if "spool" in r.getMessage() and "drains" not in r.getMessage()
    ]


def drain_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "nothing drains" in r.getMessage()]


async def test_warns_when_redis_has_no_append_only_file(redis_server, appendonly, caplog):
    caplog.set_level(logging.INFO)
    await appendonly.config_set("appendonly", "no")
    await check_spool(redis_server.url, 1000, log)
    (record,) = durability_records(caplog)
    assert record.levelno == logging.WARNING
    assert "appendonly no" in record.getMessage()


async def test_silent_when_redis_appends(redis_server, appendonly, caplog):
    caplog.set_level(logging.INFO)
    await appendonly.config_set("appendonly", "yes")
    await check_spool(redis_server.url, 1000, log)
    assert durability_records(caplog) == []


async def test_config_refused_is_said_at_info_and_info_persistence_answers(
    redis_server, appendonly, caplog
):
    caplog.set_level(logging.INFO)
    await appendonly.execute_command(
        "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config"
    )
    url = redis_server.url.replace("redis://", "redis://noconfig:pw@")
    try:
        await check_spool(url, 1000, log)
    finally:
        await appendonly.execute_command("ACL", "DELUSER", "noconfig")
    refused, warning = durability_records(caplog)
    assert refused.levelno == logging.INFO
    assert "CONFIG GET refused" in refused.getMessage()
    assert "NoPermissionError" in refused.getMessage()
    assert warning.levelno == logging.WARNING


async def test_unreachable_redis_is_one_info_line(caplog):
    caplog.set_level(logging.INFO)
    await check_spool(f"redis://127.0.0.1:{free_port()}/0", 1000, log)
    (record,) = durability_records(caplog)
    assert record.levelno == logging.INFO
    assert "did not answer (ConnectionError" in record.getMessage()


async def test_the_service_warns_once_at_start(redis_server, appendonly, start_sim, caplog):
    caplog.set_level(logging.INFO)
    await appendonly.config_set("appendonly", "no")
    sim = await start_sim(GeneratedSource(rate=10, seed=1))
    service = Service(service_config(redis_server.url, sim, ["BTCUSDT"]))
    task = asyncio.create_task(service.run())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while service.http_port is None:  # the check runs before the endpoint starts
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    finally:
        service.stop()
        await task
    warnings = [r for r in durability_records(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 1


async def test_warns_when_no_consumer_group_drains_the_spool(redis_server, redis_client, caplog):
    caplog.set_level(logging.INFO)
    await check_spool(redis_server.url, 500_000, log)
    (record,) = drain_records(caplog)
    assert record.levelno == logging.WARNING
    assert "until `marketdata persist` runs" in record.getMessage()
    assert "500000 entries" in record.getMessage()
    caplog.clear()
    await redis_client.xgroup_create("spool:trades", "timescale", id="0", mkstream=True)
    await check_spool(redis_server.url, 500_000, log)
    assert drain_records(caplog) == []
