"""Shutdown while Redis stalls: what the spool did not get goes to the spill file, and
the next start appends it to the spool, once, without publishing it again."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis.asyncio as aioredis

from marketdata import spill
from marketdata.service import Service
from marketdata.spool import TRADES_STREAM
from tests.integration.scenario_runner import Collector, metric, start_run, wait_until

Key = tuple[str, int]


async def spooled(client: aioredis.Redis) -> Counter[Key]:
    entries = await client.xrange(TRADES_STREAM)
    return Counter((f[b"symbol"].decode(), int(f[b"trade_id"])) for _, f in entries)


def published(collector: Collector) -> Counter[Key]:
    return Counter(
        (m["symbol"], int(m["trade_id"]))
        for channel, messages in collector.messages.items()
        if channel.startswith("trades:")
        for m in messages
    )


async def test_trades_redis_did_not_take_at_shutdown_are_spilled_then_spooled_once(
    redis_server, redis_client, start_sim, tmp_path
):
    path = tmp_path / "spill" / "spool.jsonl"
    run = await start_run(
        redis_server.url, redis_client, start_sim, rate=200, spool={"spill_path": str(path)}
    )
    service = run.service
    await run.started()

    async def flowing() -> bool:
        return metric(service, "redis_publishes_total", kind="trade") >= 20

    assert await wait_until(flowing, 15)
    await redis_client.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
    try:
        before = metric(service, "trades_processed_total")

        async def piled_up() -> bool:
            return metric(service, "trades_processed_total") >= before + 50

        assert await wait_until(piled_up, 10)
        service.stop()
        await run.task
    finally:
        await redis_client.execute_command("CLIENT", "UNPAUSE")
    await run.collector.collect_until(lambda c: False, 0.5)  # anything sent late shows now
    await run.collector.collect_until(lambda c: True, 10)  # then read to the end
    await run.collector.close()
    accepted = int(metric(service, "trades_processed_total"))
    in_redis = await spooled(redis_client)
    in_spill = Counter(
        (dict(zip(e[3::2], e[4::2], strict=True))["symbol"],
         int(dict(zip(e[3::2], e[4::2], strict=True))["trade_id"]))
        for e in spill.read(path) if e[1] == TRADES_STREAM
    )  # fmt: skip
    assert in_spill  # the stall held trades back
    assert not in_spill & in_redis  # exactly the ones Redis does not have
    assert max((in_spill + in_redis).values()) == 1
    assert sum((in_spill + in_redis).values()) == accepted  # none lost
    assert not in_spill & published(run.collector)

    # The next start, Redis back, the market quiet: the spill goes to the spool only.
    run.source.paused = True
    collector = Collector(redis_client)
    await collector.start()
    again = Service(service.config)
    task = asyncio.create_task(again.run())
    try:

        async def spill_gone() -> bool:
            return not path.exists()

        assert await wait_until(spill_gone, 10)
    finally:
        again.stop()
        await task
    await collector.collect_until(lambda c: False, 0.3)
    await collector.close()
    final = await spooled(redis_client)
    assert final == in_redis + in_spill  # every trade once
    assert not published(collector)  # nothing published again
