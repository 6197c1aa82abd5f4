"""Three service instances behind one IP cold-start 100 symbols against the simulator: with
rest_budget.shared on, the snapshot weight the simulator receives in any wall-clock minute
stays within the venue's limit; each keeping its own budget, together they pass it.

The limit is lowered to 200 a minute (a budget of 160, 8 snapshots of weight 20 at
snapshot_limit 1000): the 100 snapshots of the cold start need 13 minutes of it, so every
instance keeps asking for as long as the test watches.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis

from marketdata.service import Service
from marketdata.sim.sources import GeneratedSource
from marketdata.venues.binance.futures import SNAPSHOT_WEIGHTS
from tests.integration.conftest import SimServer, service_config

SYMBOLS = [f"S{i:03d}USDT" for i in range(100)]
INSTANCES = 3
LIMIT = 200  # rest_weight_per_min
BUDGET = 160  # 80% of it
WEIGHT = SNAPSHOT_WEIGHTS[1000]
WATCH_S = 10.0  # at least; through the next minute's first seconds when it comes soon
MINUTE_TURN_WITHIN_S = 25.0


def weight_by_minute(sim: SimServer) -> Counter[int]:
    """Snapshot weight the simulator received, by wall-clock minute (its log is in loop
    time, which the test's loop shares)."""
    offset = time.time() - asyncio.get_running_loop().time()
    minutes: Counter[int] = Counter()
    for at, _symbol, _status in sim.scenario.snapshot_log:
        minutes[int((at + offset) // 60)] += WEIGHT
    return minutes


async def run_instances(
    redis_url: str, sim: SimServer, shared: bool, done: Callable[[], bool], timeout_s: float
) -> None:
    """Three instances, a third of the symbols each, until `done()` (or the timeout)."""
    services = [
        Service(
            service_config(
                redis_url, sim, SYMBOLS[k::INSTANCES],
                {"rest_weight_per_min": LIMIT, "symbols_per_connection": 50},
                rest_budget={"shared": shared, "ip_label": "egress-1"},
            )
        )
        for k in range(INSTANCES)
    ]  # fmt: skip
    tasks = [asyncio.create_task(service.run()) for service in services]
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.05)
                for task in tasks:
                    if task.done():
                        task.result()  # an instance that stopped fails the test
    except TimeoutError:
        pass
    finally:
        for service in services:
            service.stop()
        await asyncio.gather(*tasks)


async def test_three_instances_sharing_one_budget_stay_within_the_limit(
    redis_server, redis_client: aioredis.Redis, start_sim
) -> None:
    sim = await start_sim(GeneratedSource(rate=5, seed=7, symbols=SYMBOLS))
    start = time.time()
    to_next_minute = 60.0 - start % 60.0
    watch_s = to_next_minute + 3.0 if to_next_minute < MINUTE_TURN_WITHIN_S else WATCH_S
    await run_instances(redis_server.url, sim, True, lambda: False, watch_s)

    minutes = weight_by_minute(sim)
    assert minutes, "no snapshot was requested"
    assert all(weight <= LIMIT for weight in minutes.values()), minutes
    assert max(minutes.values()) >= BUDGET, minutes  # the instances spent what there was
    if to_next_minute < MINUTE_TURN_WITHIN_S:  # the minute turned: a new budget, as large
        assert minutes[int(start // 60) + 1] >= BUDGET, minutes
    assert len(sim.scenario.snapshot_log) < len(SYMBOLS)  # the rest were held back
    assert int(await redis_client.hget("rest_budget:binance_futures:egress-1", "used")) <= BUDGET


async def test_three_instances_each_with_its_own_budget_pass_the_limit(
    redis_server, redis_client: aioredis.Redis, start_sim
) -> None:
    sim = await start_sim(GeneratedSource(rate=5, seed=7, symbols=SYMBOLS))

    def passed() -> bool:
        return max(weight_by_minute(sim).values(), default=0) > LIMIT

    await run_instances(redis_server.url, sim, False, passed, 20.0)
    assert passed(), weight_by_minute(sim)
    assert await redis_client.exists("rest_budget:binance_futures:egress-1") == 0
