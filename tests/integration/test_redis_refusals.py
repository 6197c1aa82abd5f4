"""Commands Redis refuses inside an accepted batch (maxmemory, ACL): what it accepted is
never sent again, what it refused is counted per command and reason and shown by /ready."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from marketdata.spool import TRADES_STREAM
from tests.integration.scenario_runner import Run, get_json, metric, start_run, wait_until
from tests.redis_server import RedisServer


@pytest.fixture
async def own_redis(tmp_path) -> AsyncIterator[RedisServer]:
    """A server of the test's own: its config and users are changed."""
    server = RedisServer(str(tmp_path))
    server.start()
    yield server
    server.stop()


async def trades_flowing(run: Run) -> None:
    await run.started()

    async def flowing() -> bool:
        return metric(run.service, "redis_publishes_total", kind="trade") >= 20

    assert await wait_until(flowing, 15)


def duplicates(run: Run) -> int:
    ids = [
        (channel, int(m["trade_id"]))
        for channel, messages in run.collector.messages.items()
        if channel.startswith("trades:")
        for m in messages
    ]
    return sum(n - 1 for n in Counter(ids).values())


async def metrics_text(run: Run) -> str:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{run.service.http_port}/metrics"
        async with session.get(url) as response:
            return await response.text()


async def assert_refusing(run: Run, command: str, reason: str) -> None:
    status, body = await get_json(run.service, "/ready")
    assert status == 503, body
    assert any(p.startswith(f"{command} refused: {reason}") for p in body["problems"]["redis"])
    assert metric(run.service, "redis_command_refusals_total", command=command, reason=reason)
    text = await metrics_text(run)
    assert f'redis_command_refusals_total{{command="{command}",reason="{reason}"}}' in text


async def test_maxmemory_refusals_resend_nothing_and_spool_catches_up(own_redis, start_sim):
    client = aioredis.Redis.from_url(own_redis.url)
    run = await start_run(own_redis.url, client, start_sim, rate=100)
    try:
        await trades_flowing(run)
        await client.config_set("maxmemory", "1")  # noeviction: SET and XADD refused
        await run.collector.collect_until(lambda c: False, 3.0)
        await assert_refusing(run, "XADD", "OOM")
        await assert_refusing(run, "SET", "OOM")
        assert duplicates(run) == 0
        await client.config_set("maxmemory", "0")

        async def ready() -> bool:
            return (await get_json(run.service, "/ready"))[0] == 200

        assert await wait_until(ready, 5)
        assert await run.settle()
    finally:
        await run.stop()
    assert duplicates(run) == 0
    published = Counter(
        (m["symbol"], int(m["trade_id"])) for ms in run.collector.messages.values() for m in ms
        if "trade_id" in m
    )  # fmt: skip
    spooled = Counter(
        (f[b"symbol"].decode(), int(f[b"trade_id"])) for _, f in await client.xrange(TRADES_STREAM)
    )
    assert spooled == published  # each trade spooled once, the refused ones later
    await client.aclose()


async def test_acl_without_xadd_publishes_each_trade_once(own_redis, start_sim):
    client = aioredis.Redis.from_url(own_redis.url)
    await client.execute_command("ACL", "SETUSER", "pub", "on", ">pw", "~*", "&*", "+@all", "-xadd")
    url = own_redis.url.replace("redis://", "redis://pub:pw@")
    run = await start_run(url, client, start_sim, rate=100)
    try:
        await trades_flowing(run)
        await run.collector.collect_until(lambda c: False, 3.0)
        await assert_refusing(run, "XADD", "NOPERM")
        assert metric(run.service, "redis_publishes_total", kind="trade") > 0
    finally:
        await run.stop()
        await client.aclose()
    assert duplicates(run) == 0
