"""MongoDB sink: against a real server when MARKETDATA_TEST_MONGO_URL is set; the batching,
retry and state logic always, against an in-memory double of the collections."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketdata.persist.mongo import MongoSink
from marketdata.persist.rows import TradeRow
from marketdata.persist.service import PersistService
from marketdata.persist.worker import SinkState
from tests.integration.persist_helpers import persist_config, spool_trades
from tests.integration.scenario_runner import wait_until
from tests.mongo_double import FakeDatabase

MONGO_URL = os.environ.get("MARKETDATA_TEST_MONGO_URL")


def rows(n: int, first: int = 0) -> list[TradeRow]:
    now = datetime.now(UTC)
    return [
        TradeRow(f"{i}-0".encode(), now, "binance_futures", "BTCUSDT", str(i), Decimal("1.5"),
                 Decimal("0.25"), "buy", now, 0.0)
        for i in range(first, first + n)
    ]  # fmt: skip


async def test_redelivered_batch_counts_as_success_on_the_double() -> None:
    db = FakeDatabase()
    sink = MongoSink("mongodb://unused", "md", db)
    await sink.start()
    assert (await sink.write(rows(100), [])).written["trades"] == 100
    again = await sink.write(rows(150), [])  # 100 seen before, 50 new
    assert again.written["trades"] == 50
    assert len(db["trades"].docs) == 150


async def test_mongo_outage_retries_then_drains_exactly(redis_server, redis_client) -> None:
    db = FakeDatabase()
    config = persist_config(
        redis_server.url, "postgresql://unused@127.0.0.1/x",
        timescale={"enabled": False}, batch={"max_rows": 500, "max_ms": 50},
    )  # fmt: skip
    service = PersistService(config, [MongoSink("mongodb://unused", "md", db)])
    task = asyncio.create_task(service.run())
    worker = service.workers[0]
    try:
        await spool_trades(redis_client, 0, 2000)
        assert await wait_until(lambda: _docs(db, 2000), 10)
        db.down = True
        await spool_trades(redis_client, 2000, 2000)
        assert await wait_until(lambda: _state(worker, SinkState.UNAVAILABLE), 10)
        await asyncio.sleep(1.0)
        assert len(db["trades"].docs) == 2000
        db.down = False
        assert await wait_until(lambda: _docs(db, 4000), 20)
        assert await wait_until(lambda: _state(worker, SinkState.OK), 10)
    finally:
        service.stop()
        await task
    ids = [d["trade_id"] for d in db["trades"].docs]
    assert sorted(ids, key=int) == [str(i) for i in range(4000)]


async def _docs(db: FakeDatabase, n: int) -> bool:
    return len(db["trades"].docs) == n


async def _state(worker, state: SinkState) -> bool:
    return worker.state is state


@pytest.mark.skipif(not MONGO_URL, reason="set MARKETDATA_TEST_MONGO_URL to test a real MongoDB")
async def test_real_mongodb_contract() -> None:
    database = f"marketdata_test_{uuid.uuid4().hex[:8]}"
    sink = MongoSink(MONGO_URL or "", database)
    await sink.start()
    try:
        assert (await sink.write(rows(100), [])).written["trades"] == 100
        assert (await sink.write(rows(150), [])).written["trades"] == 50
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(MONGO_URL)
        collection = client[database]["trades"]
        assert await collection.count_documents({}) == 150
        indexes = await collection.index_information()
        assert indexes["natural_key"]["unique"]
        await client.drop_database(database)
        await client.close()
    finally:
        await sink.close()
