"""/ready reports what the publisher's own connection meets: a refused AUTH is 503 with
Redis's error until the password matches, and probing opens no connections."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.integration.scenario_runner import get_json, metric, start_run, wait_until
from tests.redis_server import RedisServer


@pytest.mark.parametrize("required", [None, "right"], ids=["no-password", "other-password"])
async def test_ready_is_503_with_the_auth_error_until_the_password_matches(
    tmp_path, start_sim, required
):
    args = ("--requirepass", required) if required else ()
    server = RedisServer(str(tmp_path), args=args, password=required)
    server.start()
    client = aioredis.Redis.from_url(server.url, password=required)
    url = server.url.replace("redis://", "redis://:wrong@")
    run = await start_run(url, client, start_sim, rate=50)
    last: list[object] = []

    async def ready_is(code: int) -> bool:
        status, body = await get_json(run.service, "/ready")
        last[:] = [body]
        return status == code

    async def counted(name: str, **labels: str) -> bool:
        return metric(run.service, name, **labels) > 0

    try:
        await run.started()
        assert await wait_until(lambda: ready_is(503), 5)
        assert await wait_until(lambda: counted("trades_processed_total"), 10)
        assert await ready_is(503)
        (problem,) = last[0]["problems"]["redis"]  # type: ignore[index]
        assert problem.startswith("publishing fails: AUTH:"), problem
        assert "password" in problem or "WRONGPASS" in problem, problem
        assert metric(run.service, "redis_publishes_total", kind="trade") == 0
        await client.config_set("requirepass", "wrong")  # now the service's password is right
        assert await wait_until(lambda: ready_is(200), 10), last
        assert await wait_until(lambda: counted("redis_publishes_total", kind="trade"), 5)
    finally:
        await run.stop()
        await client.aclose()
        server.stop()


async def test_ready_probes_open_no_connections(redis_server, redis_client, start_sim):
    run = await start_run(redis_server.url, redis_client, start_sim, rate=50)

    async def ready() -> bool:
        return (await get_json(run.service, "/ready"))[0] == 200

    try:
        await run.started()
        assert await wait_until(ready, 10)
        before = (await redis_client.info("stats"))["total_connections_received"]
        for _ in range(50):
            assert await ready()
        after = (await redis_client.info("stats"))["total_connections_received"]
        assert after == before
    finally:
        await run.stop()


async def test_a_url_without_the_password_redis_wants_says_noauth(tmp_path, start_sim):
    server = RedisServer(str(tmp_path), args=("--requirepass", "secret"), password="secret")
    server.start()
    client = aioredis.Redis.from_url(server.url, password="secret")
    url = server.url  # no password in it
    run = await start_run(url, client, start_sim, rate=50)
    last: list[object] = []

    async def says_noauth() -> bool:
        status, body = await get_json(run.service, "/ready")
        last[:] = [body]
        return status == 503 and body["problems"].get("redis") == [
            "publishing fails: PING: NOAUTH Authentication required."
        ]

    try:
        await run.started()
        assert await wait_until(says_noauth, 10), last
        assert await says_noauth(), last  # and it stays so: no flapping to another cause
    finally:
        await run.stop()
        await client.aclose()
        server.stop()


async def test_a_flood_of_other_requests_never_makes_ready_busy(
    redis_server, redis_client, start_sim
):
    run = await start_run(redis_server.url, redis_client, start_sim, rate=50)
    base = "http://127.0.0.1:{port}"
    try:
        await run.started()
        base = base.format(port=run.service.http_port)

        async def ready() -> bool:
            return (await get_json(run.service, "/ready"))[0] == 200

        assert await wait_until(ready, 10)
        unlimited = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=unlimited) as session:

            async def get(path: str) -> tuple[int, bytes]:
                async with session.get(base + path) as response:
                    return response.status, await response.read()

            flood = [asyncio.create_task(get("/metrics")) for _ in range(1000)]
            probes = []
            for _ in range(10):  # a probe every 50 ms while the flood is refused as busy
                probes.append(await get("/ready"))
                await asyncio.sleep(0.05)
            flooded = await asyncio.gather(*flood)
    finally:
        await run.stop()
    assert any(b'"busy"' in body for _, body in flooded), "the flood never made /metrics busy"
    assert [status for status, _ in probes] == [200] * 10, probes
