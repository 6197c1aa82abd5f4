"""MongoDB trade ids are text; integer ids an earlier version stored are converted once on
start, so that a trade redelivered across the upgrade is not stored a second time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketdata.persist.mongo import MIGRATIONS, TEXT_TRADE_IDS, MongoSink
from marketdata.persist.rows import TradeRow
from marketdata.persist.sink import RetryableSinkError
from tests.mongo_double import FakeDatabase

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LOGGER = "marketdata.persist.mongo"


def trade(trade_id: str) -> TradeRow:
    return TradeRow(
        b"1-0", T0, "binance_futures", "BTCUSDT", trade_id, Decimal("1.5"), Decimal("0.25"),
        "buy", T0, 0.0,
    )  # fmt: skip


async def old_database(*trade_ids: int | str) -> FakeDatabase:
    """Trades as an earlier version stored them (integer ids), under the unique index."""
    db = FakeDatabase()
    await MongoSink("mongodb://unused", "md", db).start()  # the indexes
    db.collections.pop(MIGRATIONS)  # as if made by that earlier version
    for trade_id in trade_ids:
        await db["trades"].insert_one(
            {"exchange": "binance_futures", "symbol": "BTCUSDT", "trade_id": trade_id, "time": T0}
        )
    return db


def conversions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and "converted" in r.msg]


async def test_integer_ids_become_text_once_and_redelivery_is_not_doubled(caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    db = await old_database(5, 6, 2**62)
    sink = MongoSink("mongodb://unused", "md", db)
    await sink.start()
    assert [d["trade_id"] for d in db["trades"].docs] == ["5", "6", str(2**62)]
    assert conversions(caplog) == ["mongo trades: 3 integer trade_ids converted to text"]
    result = await sink.write([trade("5"), trade("abc-1")], [])  # "5": redelivered
    assert result.written == {"trades": 1, "books": 0}
    assert len(db["trades"].docs) == 4
    marker = await db[MIGRATIONS].find_one({"_id": TEXT_TRADE_IDS})
    assert marker is not None
    assert marker["converted"] == 3

    await MongoSink("mongodb://unused", "md", db).start()  # again: nothing to do
    assert len(conversions(caplog)) == 1


async def test_a_new_database_records_the_conversion_without_converting(caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    db = FakeDatabase()
    await MongoSink("mongodb://unused", "md", db).start()
    await MongoSink("mongodb://unused", "md", db).start()
    assert conversions(caplog) == []
    assert len(db[MIGRATIONS].docs) == 1


async def test_a_trade_stored_both_ways_stops_the_start_with_what_to_do() -> None:
    db = await old_database(5, "5")
    sink = MongoSink("mongodb://unused", "md", db)
    with pytest.raises(RetryableSinkError, match="both an integer and a text trade_id"):
        await sink.start()
    assert await db[MIGRATIONS].find_one({"_id": TEXT_TRADE_IDS}) is None  # tried again later
