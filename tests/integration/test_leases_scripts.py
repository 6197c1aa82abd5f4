"""The lease scripts against a real redis-server: acquire, renew, tokens, release only by
the owner, expiry, heartbeats, and the server-side fence on the publisher's connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from marketdata.leases_fence import Fence, FencedSender
from marketdata.leases_scripts import FENCED, INSTANCES_KEY, lease_key, token_key
from marketdata.leases_store import LeaseStore
from marketdata.metrics import Metrics
from marketdata.redis_batch import RespConnection
from tests.integration.scenario_runner import wait_until
from tests.redis_server import RedisServer

BTC = ("binance_futures", "BTCUSDT")
ETH = ("kraken", "ETH/USD")

Stores = Callable[..., LeaseStore]


@pytest.fixture
async def stores(redis_server: RedisServer, redis_client: aioredis.Redis) -> AsyncIterator[Stores]:
    """Each call: one instance's store over a client of its own."""
    made: list[LeaseStore] = []

    def make(instance_id: str, ttl_ms: int = 5000) -> LeaseStore:
        store = LeaseStore(aioredis.Redis.from_url(redis_server.url), instance_id, ttl_ms)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def test_acquire_takes_a_free_lease_with_a_new_token_each_time(
    stores: Stores, redis_client: aioredis.Redis
) -> None:
    a, b = stores("a"), stores("b")
    assert await a.acquire([BTC, ETH]) == {BTC: 1, ETH: 1}
    assert await b.acquire([BTC]) == {}  # held
    assert await redis_client.get(lease_key(*BTC)) == b"a:1"
    assert 4000 < await redis_client.pttl(lease_key(*BTC)) <= 5000
    assert await a.release({BTC: "a:1"}) == {BTC: True}
    assert await b.acquire([BTC]) == {BTC: 2}  # the token only grows
    assert await redis_client.get(lease_key(*BTC)) == b"b:2"
    assert await redis_client.get(token_key(*BTC)) == b"2"


async def test_renew_and_release_only_by_the_owner_of_that_token(
    stores: Stores, redis_client: aioredis.Redis
) -> None:
    a, b = stores("a"), stores("b")
    await a.acquire([BTC])
    await redis_client.pexpire(lease_key(*BTC), 1000)
    assert await b.renew({BTC: "b:1"}) == {BTC: False}
    assert await a.renew({BTC: "a:0"}) == {BTC: False}  # an older acquisition of a's
    assert await b.release({BTC: "b:1"}) == {BTC: False}
    assert await redis_client.get(lease_key(*BTC)) == b"a:1"
    assert await a.renew({BTC: "a:1"}) == {BTC: True}
    assert await redis_client.pttl(lease_key(*BTC)) > 4000
    assert await a.release({BTC: "a:1"}) == {BTC: True}
    assert await redis_client.exists(lease_key(*BTC)) == 0
    assert await a.release({BTC: "a:1"}) == {BTC: False}  # not twice


async def test_an_expired_lease_is_free_and_its_old_owner_cannot_renew_it(
    stores: Stores, redis_client: aioredis.Redis
) -> None:
    a, b = stores("a", ttl_ms=200), stores("b")
    assert await a.acquire([BTC]) == {BTC: 1}
    held, free = await b.pttls([BTC, ETH])
    assert (0 < held <= 200, free) == (True, -2)

    async def expired() -> bool:
        return await redis_client.exists(lease_key(*BTC)) == 0

    assert await wait_until(expired, 5)
    assert await a.renew({BTC: "a:1"}) == {BTC: False}
    assert await b.acquire([BTC]) == {BTC: 2}


async def test_heartbeats_count_the_live_instances(
    stores: Stores, redis_client: aioredis.Redis
) -> None:
    a, b = stores("a", ttl_ms=300), stores("b")
    assert await a.heartbeat() == 1
    assert await b.heartbeat() == 2
    assert await b.heartbeat() == 2  # once each

    async def a_gone() -> bool:
        return await b.heartbeat() == 1

    assert await wait_until(a_gone, 5)
    assert await redis_client.zrange(INSTANCES_KEY, 0, -1) == [b"b"]
    await b.leave()
    assert await redis_client.zcard(INSTANCES_KEY) == 0


async def test_the_fence_runs_commands_only_under_the_current_token(
    stores: Stores, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    a = stores("a")
    tokens = await a.acquire([BTC])
    fence = Fence([BTC, ETH], clock=lambda: 100.0)
    fence.grant(BTC, f"a:{tokens[BTC]}", tokens[BTC], deadline=105.0)
    metrics = Metrics()
    sender = FencedSender(RespConnection(redis_server.url), fence, metrics.lease_fenced_commands)
    entry = ("exchange", "binance_futures", "symbol", "BTCUSDT", "trade_id", "1")
    commands = [
        ("SET", "market_data:BTCUSDT", "x", "EX", 60),
        ("PUBLISH", "orderbook:BTCUSDT", "{}"),
        ("XADD", "spool:trades", "*", *entry),
        ("SET", "market_data:kraken:ETH/USD", "y"),  # ETH is not held: not sent
        ("XLEN", "spool:trades"),  # not a symbol's: sent as it is
    ]
    try:
        replies = await sender.send(commands)
        assert replies[:2] == [b"OK", 0]
        assert replies[2].startswith(b"1")  # a stream id
        assert replies[3:] == [FENCED, 1]
        assert await redis_client.get("market_data:BTCUSDT") == b"x"
        assert await redis_client.exists("market_data:kraken:ETH/USD") == 0

        # Another instance takes the lease: the same commands are refused by Redis, but the
        # spool entry (history, never fenced) is appended.
        await redis_client.set(lease_key(*BTC), "b:2")
        replies = await sender.send(commands[:3])
        assert replies[:2] == [FENCED, FENCED]
        assert replies[2].startswith(b"1")
        assert await redis_client.xlen("spool:trades") == 2

        # Past the local deadline nothing is sent at all.
        fence.clock = lambda: 105.0
        await redis_client.set(lease_key(*BTC), f"a:{tokens[BTC]}")
        assert await sender.send(commands[:1]) == [FENCED]
        assert await redis_client.get("market_data:BTCUSDT") == b"x"

        # Redis forgets its scripts (a restart): the commands go again, as EVAL.
        fence.clock = lambda: 100.0
        await redis_client.script_flush()
        assert await sender.send(commands[:2]) == [b"OK", 0]
        assert await sender.send(commands[:1]) == [b"OK"]
    finally:
        await sender.close()
    registry = metrics.registry
    labels = {"exchange": "binance_futures", "symbol": "BTCUSDT"}
    redis_refused = {**labels, "where": "redis"}
    assert registry.get_sample_value("lease_fenced_commands_total", redis_refused) == 2
    local = {**labels, "where": "local"}
    assert registry.get_sample_value("lease_fenced_commands_total", local) == 1
    eth = {"exchange": "kraken", "symbol": "ETH/USD", "where": "local"}
    assert registry.get_sample_value("lease_fenced_commands_total", eth) == 1
