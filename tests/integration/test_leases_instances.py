"""Two leased instances (real `marketdata run` processes) on one Redis and the simulator:
they split the symbols, each published by exactly one of them as Redis itself sees it
(MONITOR); a killed one's symbols are taken over within the lease TTL plus resync; a paused
owner that lost its leases publishes nothing for them once it runs again."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from marketdata.sim.sources import GeneratedSource
from tests.integration.leases_helpers import Instance, Monitor, now, owners, symbol_of
from tests.integration.scenario_runner import wait_until
from tests.integration.test_workers import Arrivals

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"]
TTL_S = 2.0
RESYNC_S = 2.0  # a snapshot from the local simulator, with room for a loaded machine


@pytest.fixture
async def pair(
    redis_server: Any, redis_client: aioredis.Redis, start_sim: Any, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Instances a and b, both ready and holding three symbols each."""
    sim = await start_sim(GeneratedSource(rate=20, seed=11, symbols=SYMBOLS))
    a = await Instance.start(tmp_path / "a", "a", redis_server.url, sim, SYMBOLS, TTL_S)
    b = await Instance.start(tmp_path / "b", "b", redis_server.url, sim, SYMBOLS, TTL_S)
    try:

        async def balanced() -> bool:
            for instance in (a, b):
                if instance.process.returncode is not None:
                    pytest.fail(f"{instance.name} exited:\n{instance.log}")
            held = Counter((await owners(redis_client, SYMBOLS)).values())
            return held == {"a": 3, "b": 3} and await a.ready() and await b.ready()

        if not await wait_until(balanced, 30):
            pytest.fail(f"never balanced and ready:\n{a.log}\n{b.log}")
        yield a, b
    finally:
        for instance in (a, b):
            await instance.stop()


async def test_two_instances_split_the_symbols_and_one_takes_over_when_the_other_dies(
    redis_server: Any, redis_client: aioredis.Redis, pair: tuple[Instance, Instance]
) -> None:
    a, b = pair
    arrivals = Arrivals(redis_client)
    await arrivals.start()
    monitor = Monitor(redis_server.url)
    await monitor.start()
    try:
        held = await owners(redis_client, SYMBOLS)
        start = now()

        async def all_published() -> bool:
            return {symbol_of(w.command) for w in monitor.writes} >= set(SYMBOLS)

        assert await wait_until(all_published, 10)
        await asyncio.sleep(0.5)  # a few more flushes of each
        publishers: dict[str, set[str | None]] = {s: set() for s in SYMBOLS}
        for write in monitor.since(start, lambda w: w.command[0] == b"PUBLISH"):
            publishers[symbol_of(write.command) or ""].add(write.instance)
        assert publishers == {s: {held[s]} for s in SYMBOLS}  # one each, the lease's owner
        status, body = await a.get_json("/ready")
        assert (status, body["symbols"]) == (200, 3), body
        assert body["leases"] == {
            "instance_id": "a", "owned": 3, "instances": 2, "fair_share": 3,
            "symbols_configured": 6,
        }  # fmt: skip

        a_symbols = [s for s in SYMBOLS if held[s] == "a"]
        metrics = await a.get_text("/metrics")
        synced = _series(metrics, "book_synced")  # only what a serves, though it held more
        assert synced == {s: 1.0 for s in a_symbols}, metrics
        acquired = _series(metrics, "lease_changes_total", change="acquired")
        assert set(a_symbols) <= set(acquired)
        a.signal(signal.SIGKILL)
        killed_at = time.monotonic()

        async def taken_over() -> bool:
            return all(arrivals.since(s, killed_at) for s in a_symbols)

        assert await wait_until(taken_over, TTL_S + RESYNC_S + 2), (b.log, arrivals.times)
        takeover_s = max(arrivals.since(s, killed_at)[0] for s in a_symbols) - killed_at
        assert takeover_s <= TTL_S + RESYNC_S, takeover_s
        assert set(await owners(redis_client, SYMBOLS)) == set(SYMBOLS)
        assert set((await owners(redis_client, SYMBOLS)).values()) == {"b"}
        assert set(a_symbols) <= set(b.changes("acquired"))

        async def b_ready_alone() -> bool:
            status, body = await b.get_json("/ready")
            return status == 200 and body["symbols"] == 6 and body["leases"]["instances"] == 1

        assert await wait_until(b_ready_alone, 5)
    finally:
        await monitor.close()
        await arrivals.close()
    assert await b.stop() == 0, b.log
    at_shutdown = [line for line in b.lines if "(shutting down)" in line]
    assert len(at_shutdown) == len(SYMBOLS), b.log
    assert await redis_client.keys("lease:*") == []
    assert "Traceback" not in b.log


async def test_a_paused_owner_publishes_nothing_for_the_symbols_it_lost(
    redis_server: Any, redis_client: aioredis.Redis, pair: tuple[Instance, Instance]
) -> None:
    a, b = pair
    monitor = Monitor(redis_server.url)
    await monitor.start()
    try:
        keys = [f"lease:{{binance_futures:{s}}}" for s in SYMBOLS]
        before = dict(zip(keys, await redis_client.mget(keys), strict=True))
        old = {(k, v.decode()) for k, v in before.items() if v and v.startswith(b"a:")}
        lost = [s for s, k in zip(SYMBOLS, keys, strict=True) if k in dict(old)]
        assert len(old) == len(lost) == 3

        async def a_publishes() -> bool:
            return any(w.under in old for w in monitor.writes)

        assert await wait_until(a_publishes, 5)  # this test can see a's writes
        a.signal(signal.SIGSTOP)

        async def b_owns_all() -> bool:
            return set((await owners(redis_client, SYMBOLS)).values()) == {"b"} and len(
                await owners(redis_client, SYMBOLS)
            ) == len(SYMBOLS)

        assert await wait_until(b_owns_all, TTL_S + 5), b.log
        boundary = now()  # from here on the symbols are b's

        async def b_publishes_them() -> bool:
            return {symbol_of(w.command) for w in monitor.since(boundary, lambda w: True)} >= set(
                lost
            )

        assert await wait_until(b_publishes_them, RESYNC_S + 3)
        a.signal(signal.SIGCONT)

        async def a_saw_it() -> bool:
            return sorted(a.changes("lost")) == sorted(lost)

        assert await wait_until(a_saw_it, TTL_S + 3), a.log
        # a and b rebalance (b is over its share): a takes three symbols again, under new
        # tokens; wait for that so that anything a still had queued had its chance to go.
        assert await wait_until(lambda: _three_each(redis_client), 3 * TTL_S + 5)
        await asyncio.sleep(0.5)
    finally:
        await monitor.close()
    by_a_under_old_leases = monitor.since(boundary, lambda w: w.under in old)
    assert by_a_under_old_leases == []
    unfenced = monitor.since(boundary, lambda w: w.client != "lua" and symbol_of(w.command) in lost)
    assert unfenced == []  # every symbol's write goes through the fence script
    # Nor did a send any: its local deadline had passed when it woke (Redis's token check
    # would have refused them; the test above shows none ran).
    assert [c for c in monitor.calls if c.at >= boundary and c.under in old] == []
    assert "Traceback" not in a.log + b.log


def _series(text: str, name: str, **labels: str) -> dict[str, float]:
    """symbol -> value of the samples of `name` with these labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found[sample.labels["symbol"]] = sample.value
    return found


async def _three_each(client: aioredis.Redis) -> bool:
    return Counter((await owners(client, SYMBOLS)).values()) == {"a": 3, "b": 3}
