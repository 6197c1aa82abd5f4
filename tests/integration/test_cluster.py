"""The service, `marketdata persist` and the publisher's ClusterSender against a real Redis
Cluster on loopback (3 masters, 3 replicas), including a master's failover."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError

from marketdata.config import parse_config
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.redis_cluster import ClusterError, ClusterSender
from marketdata.rest_budget import RestBudgets
from marketdata.service import Service
from marketdata.sim.sources import GeneratedSource
from marketdata.spool import partition_of
from tests.integration.conftest import service_config
from tests.integration.persist_helpers import health, persist_config, run_persist
from tests.integration.scenario_runner import get_json, wait_until
from tests.redis_cluster import RedisClusterServer

# Symbols whose orderbook: channels hash to slots on all three masters.
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisClusterServer(str(tmp_path_factory.mktemp("cluster")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def cluster_client(cluster: RedisClusterServer) -> AsyncIterator[RedisCluster]:
    """A client to the cluster, emptied (every master flushed) for the test."""
    cluster.wait_ok()
    cluster.flushall()
    client = RedisCluster(host="127.0.0.1", port=cluster.running()[0])
    yield client
    await client.aclose()


class ShardedCollector:
    """SSUBSCRIBE to each channel on the master that owns its slot (as `redis-cli -c`
    does); collects every message per channel."""

    def __init__(self, cluster: RedisClusterServer, channels: list[str]) -> None:
        self.cluster = cluster
        self.channels = channels
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._clients: list[aioredis.Redis] = []
        self._pubsubs: list[Any] = []

    async def start(self) -> None:
        for channel in self.channels:
            client = aioredis.Redis(port=self.cluster.master_for(channel))
            pubsub = client.pubsub()
            await pubsub.ssubscribe(channel)
            self._clients.append(client)
            self._pubsubs.append(pubsub)

    async def collect(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for pubsub in self._pubsubs:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.01)
                if message is not None:
                    channel = message["channel"].decode()
                    self.messages[channel].append(orjson.loads(message["data"]))

    async def close(self) -> None:
        for pubsub in self._pubsubs:
            await pubsub.aclose()
        for client in self._clients:
            await client.aclose()


def cluster_config(url: str, sim: Any, symbols: list[str], **overrides: Any) -> Any:
    return service_config(
        url, sim, symbols, redis_cluster=True, sharded_pubsub=True,
        spool={"partitions": 3, **overrides.pop("spool", {})}, **overrides,
    )  # fmt: skip


async def stored_trades(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT symbol, trade_id FROM trades")
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()
    return [(r["symbol"], str(r["trade_id"])) for r in rows]


async def test_books_keys_and_spool_reach_subscribers_and_postgres(
    cluster, cluster_client, start_sim, pg
):
    source = GeneratedSource(rate=100, seed=5, symbols=SYMBOLS)
    sim = await start_sim(source)
    config = cluster_config(cluster.url, sim, SYMBOLS, persist={
        "health_port": 0, "timescale": {"dsn": pg.dsn}, "batch": {"max_ms": 100},
    })  # fmt: skip
    owners = {cluster.master_for(f"orderbook:{s}") for s in SYMBOLS}
    assert len(owners) == 3, "the symbols should spread over every master"
    collector = ShardedCollector(
        cluster, [f"{k}:{s}" for s in SYMBOLS for k in ("orderbook", "trades")]
    )
    await collector.start()
    service = Service(config)
    task = asyncio.create_task(service.run())
    persist = PersistService(config, [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    try:
        await collector.collect(3.0)
        source.paused = True
        await asyncio.sleep(0.2)  # frames in flight
        await collector.collect(1.0)
        market_data = {s: await cluster_client.get(f"market_data:{s}") for s in SYMBOLS}
        trades_on_wire = {
            (s, str(m["trade_id"])) for s in SYMBOLS for m in collector.messages[f"trades:{s}"]
        }

        async def all_stored() -> bool:
            return trades_on_wire <= set(await stored_trades(pg.dsn))

        assert await wait_until(all_stored, 15)
        rows = await stored_trades(pg.dsn)
    finally:
        service.stop()
        await task
        persist.stop()
        await persist_task
        await collector.close()
    for symbol in SYMBOLS:
        books = collector.messages[f"orderbook:{symbol}"]
        assert books, symbol
        market = source.markets[symbol]
        assert (books[-1]["bids"], books[-1]["asks"]) == market.top(20)
        data = orjson.loads(market_data[symbol])
        assert data["best_bid"] == market.top(20)[0][0][0]
        ids = sorted(int(t) for s, t in rows if s == symbol)
        assert ids, symbol
        assert ids == list(range(ids[0], market.trade_id + 1)), symbol  # none lost or doubled
    assert len(rows) == len(set(rows))  # every trade stored once
    added = [
        (await cluster_client.xinfo_stream(f"spool:trades:{{p{i}}}"))["entries-added"]
        for i in range(3)
    ]  # persist has trimmed what it stored: how many each partition ever had
    assert sum(1 for n in added if n) >= 2, added  # the partitions share the symbols
    assert sum(added) >= len(rows)


async def test_moved_and_ask_are_followed(cluster, cluster_client):
    sender = ClusterSender(cluster.url)
    try:
        keys = [f"key:{i}" for i in range(30)]
        assert await sender.send([("SET", k, k) for k in keys]) == [b"OK"] * 30
        wrong = sender.masters[0]
        sender._slots = [wrong] * len(sender._slots)  # a stale map: MOVED for the others
        replies = await sender.send([("GET", k) for k in keys])
        assert replies == [k.encode() for k in keys]
        assert {sender.node_for(("GET", k)) for k in keys} == set(sender.masters)

        # A slot half-way through a migration: a key not yet on the source gets ASK.
        key = "migrating:key"
        source_port = cluster.master_for(key)
        target_port = next(p for _, p in sender.masters if p != source_port)
        source, target = aioredis.Redis(port=source_port), aioredis.Redis(port=target_port)
        slot = await source.execute_command("CLUSTER", "KEYSLOT", key)
        source_id = await source.execute_command("CLUSTER", "MYID")
        target_id = await target.execute_command("CLUSTER", "MYID")
        await target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        try:
            assert await sender.send([("SET", key, "there")]) == [b"OK"]
            # The key went to the target (ASKING then SET there), not to the source.
            with pytest.raises(AskError):
                await source.exists(key)
            asking = target.pipeline(transaction=False)  # one connection: ASKING holds
            asking.execute_command("ASKING").get(key).execute_command("ASKING").delete(key)
            assert (await asking.execute())[1] == b"there"
        finally:
            for node in (source, target):
                await node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            await source.aclose()
            await target.aclose()
    finally:
        await sender.close()


async def test_the_shared_rest_budget_script_runs_on_the_cluster(cluster, cluster_client):
    budgets = RestBudgets.connect(cluster.url, "host-a", cluster=True)
    try:
        budget = budgets.for_venue("binance_futures")
        assert await budget.take(2000, 2400) == 0.0
        waited = await budget.take(500, 2400)  # past the budget: wait for the next minute
        assert waited is not None
        assert 0 < waited <= 60
        assert not budget.outage.active
        assert await cluster_client.hget(budget.key, "used") == b"2000"
    finally:
        await budgets.aclose()


async def test_a_single_redis_is_not_taken_for_a_cluster(redis_server, redis_client):
    sender = ClusterSender(redis_server.url)
    try:
        with pytest.raises(
            ClusterError,
            match=r"^redis_url does not name a Redis Cluster \(CLUSTER SLOTS: ERR This "
            r"instance has cluster support disabled\): set redis_cluster: false$",
        ):
            await sender.send([("PING",)])
    finally:
        await sender.close()


async def test_a_single_redis_named_as_a_cluster_is_said_so_by_service_and_persist(
    redis_server, start_sim, pg
):
    """redis_cluster: true against one Redis: no traceback at start (redis-py's cluster
    client raises RedisClusterException, not a RedisError); /ready and persist's /health
    say what to set, and both keep running."""
    sim = await start_sim(GeneratedSource(rate=20, seed=2, symbols=SYMBOLS[:2]))
    config = cluster_config(redis_server.url, sim, SYMBOLS[:2], persist={
        "health_port": 0, "timescale": {"dsn": pg.dsn},
    })  # fmt: skip
    service = Service(config)
    task = asyncio.create_task(service.run())
    persist = PersistService(config, [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    last: list[Any] = []

    async def both_say_so() -> bool:
        if service.http_port is None or task.done() or persist_task.done():
            return False
        status, body = await get_json(service, "/ready")
        persist_status, persist_body = await health(persist.http_port)
        last[:] = [body, persist_body]
        return (
            status == 503
            and "set redis_cluster: false" in str(body)
            and persist_status == 503
            and "Redis Cluster" in str(persist_body["redis"])
        )

    try:
        assert await wait_until(both_say_so, 15), (last, task.done(), persist_task.done())
    finally:
        service.stop()
        persist.stop()
        await asyncio.gather(task, persist_task)


async def test_a_cluster_without_redis_cluster_says_what_to_set(cluster, cluster_client, start_sim):
    sim = await start_sim(GeneratedSource(rate=20, seed=2, symbols=SYMBOLS))
    service = Service(service_config(cluster.url, sim, SYMBOLS))
    task = asyncio.create_task(service.run())
    last: list[Any] = []

    async def says_so() -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        last[:] = [body]
        return status == 503 and "set redis_cluster: true" in str(body)

    try:
        assert await wait_until(says_so, 15), last
    finally:
        service.stop()
        await task


async def test_persist_without_redis_cluster_says_what_to_set(cluster, cluster_client, pg):
    config = persist_config(cluster.url, pg.dsn)  # redis_cluster left false
    service = PersistService(config, [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    last: list[Any] = []

    async def says_so() -> bool:
        status, body = await health(service.http_port)
        last[:] = [body]
        return status == 503 and "set redis_cluster: true" in str(body["redis"])

    try:
        assert await wait_until(says_so, 10), last
    finally:
        service.stop()
        await task


async def test_persist_names_spool_streams_an_earlier_layout_left_unread(
    cluster, cluster_client, pg, caplog
):
    """Entries under spool:trades:{p2} (written with 3 partitions) and the one-Redis name
    spool:trades are not read by a persist of 2 partitions: it says so, naming them."""
    entry = {"exchange": "binance_futures", "symbol": "BTCUSDT", "trade_id": "1"}
    await cluster_client.xadd("spool:trades:{p2}", entry)
    await cluster_client.xadd("spool:trades", entry)
    await cluster_client.xadd("spool:trades:{p1}", entry)  # read: not a stray
    config = parse_config({
        "redis_url": cluster.url, "redis_cluster": True, "spool": {"partitions": 2},
        "persist": {"health_port": 0, "timescale": {"dsn": pg.dsn}},
        "exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}},
    }, environ={})  # fmt: skip
    service = PersistService(config, [TimescaleSink(pg.dsn)])
    caplog.set_level(logging.WARNING, logger="marketdata.persist.service")
    task = await run_persist(service)

    def warned() -> list[str]:
        return [r.getMessage() for r in caplog.records if "no partition of" in r.getMessage()]

    async def both_named() -> bool:
        return len(warned()) == 2

    try:
        assert await wait_until(both_named, 10), warned()
    finally:
        service.stop()
        await task
    assert sorted(m.split()[0] for m in warned()) == ["spool:trades", "spool:trades:{p2}"]
    assert "spool.partitions 2" in warned()[0]


async def test_a_master_killed_fails_over_and_publishing_resumes(
    cluster, cluster_client, start_sim, pg, caplog
):
    caplog.set_level(logging.INFO)
    symbol = "ETHUSDT"  # its book channel and its spool partition are on one master
    stream = f"spool:trades:{{p{partition_of('binance_futures', symbol, 3)}}}"
    victim = cluster.master_for(f"orderbook:{symbol}")
    assert cluster.master_for(stream) == victim
    source = GeneratedSource(rate=50, seed=7, symbols=SYMBOLS)
    sim = await start_sim(source)
    config = cluster_config(cluster.url, sim, SYMBOLS, persist={
        "health_port": 0, "timescale": {"dsn": pg.dsn}, "batch": {"max_ms": 100},
    })  # fmt: skip
    service = Service(config)
    task = asyncio.create_task(service.run())
    persist = PersistService(config, [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    statuses: list[tuple[int, Any]] = []

    async def ready_is(code: int) -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        statuses.append((status, body))
        return status == code

    async def published_since(mark: int) -> bool:
        return service.publisher.trades_published > mark

    async def stored_after(trade_id: int) -> bool:
        return any(s == symbol and int(t) > trade_id for s, t in await stored_trades(pg.dsn))

    try:
        assert await wait_until(lambda: ready_is(200), 15), statuses[-1:]
        cluster.kill(victim)
        killed = time.monotonic()
        assert await wait_until(lambda: ready_is(503), 10), statuses[-1:]
        problems = statuses[-1][1]["problems"]["redis"]
        assert any("publishing fails" in p or "no reply" in p for p in problems), problems
        assert await wait_until(lambda: ready_is(200), 20), statuses[-1:]
        recovered_after = time.monotonic() - killed
        mark = service.publisher.trades_published
        assert await wait_until(lambda: published_since(mark), 5)
        new_owner = cluster.master_for(f"orderbook:{symbol}")
        assert new_owner != victim
        collector = ShardedCollector(cluster, [f"orderbook:{symbol}"])
        await collector.start()
        try:
            await collector.collect(1.0)
        finally:
            await collector.close()
        assert collector.messages[f"orderbook:{symbol}"], "no book after the failover"
        # persist follows the failover too: trades of the partition that moved are stored
        newest = source.markets[symbol].trade_id
        assert await wait_until(lambda: stored_after(newest), 15)
    finally:
        service.stop()
        await task
        persist.stop()
        await persist_task
        cluster.start_node(victim)  # it rejoins as a replica of its successor
        cluster.wait_ok()
    assert recovered_after < 20
    messages = [r.getMessage() for r in caplog.records]
    # Told once when it starts and once when it ends, however many batches failed between.
    assert sum(m.startswith("redis publish failed") for m in messages) == 1, messages
    assert sum(m == "redis publish recovered" for m in messages) == 1, messages
    lost = f"redis cluster master unreachable: 127.0.0.1:{victim}:"
    assert sum(m.startswith(lost) for m in messages) == 1, messages
    assert f"redis cluster master 127.0.0.1:{victim} replaced in the slot map" in messages
    if os.environ.get("MARKETDATA_TEST_VERBOSE"):
        print(f"failover: ready again {recovered_after:.1f}s after the kill")


async def test_leased_instances_share_the_symbols_on_a_cluster(cluster, cluster_client, start_sim):
    """Leases on a cluster: the lease keys spread over the masters, two instances split the
    symbols, and when one stops the other takes them all and publishes them (SSUBSCRIBE)."""
    source = GeneratedSource(rate=50, seed=9, symbols=SYMBOLS)
    sim = await start_sim(source)
    services, tasks = [], []
    for name in ("a", "b"):
        config = cluster_config(
            cluster.url, sim, SYMBOLS, leases={"enabled": True, "ttl_s": 1, "instance_id": name}
        )
        services.append(Service(config))
        tasks.append(asyncio.create_task(services[-1].run()))
    first, second = services

    async def holders() -> dict[str, str]:
        values = {s: await cluster_client.get(f"lease:{{binance_futures:{s}}}") for s in SYMBOLS}
        return {s: v.decode().split(":")[0] for s, v in values.items() if v is not None}

    async def split() -> bool:
        held = await holders()
        return len(held) == len(SYMBOLS) and sorted(held.values()).count("a") == 3

    async def ready(service: Service) -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        return status == 200 and body["leases"]["owned"] == 3

    collector = None
    try:
        assert await wait_until(split, 15), await holders()
        assert await wait_until(lambda: ready(first), 15)
        assert await wait_until(lambda: ready(second), 15)
        first.stop()  # it releases its leases at shutdown: the other takes them
        await tasks[0]

        async def all_with_b() -> bool:
            held = await holders()
            return len(held) == len(SYMBOLS) and set(held.values()) == {"b"}

        assert await wait_until(all_with_b, 10), await holders()
        collector = ShardedCollector(cluster, [f"orderbook:{s}" for s in SYMBOLS])
        await collector.start()
        await collector.collect(3.0)
        for symbol in SYMBOLS:
            assert collector.messages[f"orderbook:{symbol}"], symbol
        status, body = await get_json(second, "/ready")
        assert status == 200, body
        assert body["leases"]["owned"] == len(SYMBOLS)
    finally:
        for service in services:
            service.stop()
        await asyncio.gather(*tasks)
        if collector is not None:
            await collector.close()
