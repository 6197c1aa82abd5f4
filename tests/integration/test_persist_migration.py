"""A database made by version 0.x (trades.trade_id bigint, l2_snapshots.last_update_id NOT
NULL) is migrated in place by the schema setup persist runs on start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from marketdata.persist.rows import BookRow, TradeRow
from marketdata.persist.sink import RetryableSinkError
from marketdata.persist.timescale import TimescaleSink

# The schema as version 0.x created it, copied here so that it stays what it was.
SCHEMA_0X = """
CREATE TABLE IF NOT EXISTS trades (
    time        timestamptz NOT NULL,
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    trade_id    bigint      NOT NULL,
    price       numeric     NOT NULL,
    qty         numeric     NOT NULL,
    side        text        NOT NULL,
    recv_time   timestamptz NOT NULL,
    PRIMARY KEY (exchange, symbol, trade_id, time),
    -- numeric NaN sorts above every number, so "> 0" alone would let it through
    CONSTRAINT trades_price_valid CHECK (price > 0 AND price <> 'NaN'),
    CONSTRAINT trades_qty_valid CHECK (qty >= 0 AND qty <> 'NaN'),
    CONSTRAINT trades_side_valid CHECK (side IN ('buy', 'sell'))
);
CREATE TABLE IF NOT EXISTS l2_snapshots (
    time            timestamptz NOT NULL,
    exchange        text        NOT NULL,
    symbol          text        NOT NULL,
    last_update_id  bigint      NOT NULL,
    exchange_time   timestamptz NOT NULL,
    recv_time       timestamptz NOT NULL,
    bids            jsonb       NOT NULL,
    asks            jsonb       NOT NULL,
    PRIMARY KEY (exchange, symbol, time)
);
"""
T0 = datetime(2024, 1, 1, tzinfo=UTC)
OLD_IDS = [123, 124, 125, 2**62, 2**63 - 1]
MIGRATION_LOGGER = "marketdata.persist.timescale"


@pytest.fixture
async def old_db(pg) -> AsyncIterator[asyncpg.Connection]:
    """The 0.x schema holding a few trades and books, as 0.x wrote them."""
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute(SCHEMA_0X)
    await conn.executemany(
        "INSERT INTO trades VALUES ($1, 'binance_futures', 'BTCUSDT', $2, 100.5, 0.25, 'buy', $1)",
        [(T0 + timedelta(seconds=i), trade_id) for i, trade_id in enumerate(OLD_IDS)],
    )
    await conn.executemany(
        "INSERT INTO l2_snapshots VALUES ($1, 'binance_futures', 'BTCUSDT', $2, $1, $1,"
        ' \'[["100.5", "1"]]\', \'[["101", "2"]]\')',
        [(T0 + timedelta(seconds=i), 1000 + i) for i in range(3)],
    )
    yield conn
    await conn.close()


async def started(dsn: str) -> TimescaleSink:
    sink = TimescaleSink(dsn)
    await sink.start()
    return sink


async def columns(conn: asyncpg.Connection) -> dict[str, tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE (table_name, column_name) IN"
        " (('trades', 'trade_id'), ('l2_snapshots', 'last_update_id'))"
    )
    return {f"{r[0]}.{r[1]}": (r[2], r[3]) for r in rows}


def trade(trade_id: str, at: datetime, entry: bytes = b"1-0") -> TradeRow:
    return TradeRow(
        entry, at, "binance_futures", "BTCUSDT", trade_id, Decimal("100.5"), Decimal("0.25"),
        "sell", at, 0.0,
    )  # fmt: skip


def book(last_update_id: int | None, at: datetime) -> BookRow:
    return BookRow(b"2-0", at, "kraken", "XBT/USD", last_update_id, at, at, "[]", "[]")


def migrations(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == MIGRATION_LOGGER and r.getMessage().startswith("schema migrated")
    ]


async def test_old_schema_is_migrated_in_place_keeping_every_row(old_db, pg, caplog):
    caplog.set_level(logging.INFO, logger=MIGRATION_LOGGER)
    assert await columns(old_db) == {
        "trades.trade_id": ("bigint", "NO"), "l2_snapshots.last_update_id": ("bigint", "NO"),
    }  # fmt: skip
    sink = await started(pg.dsn)
    try:
        assert await columns(old_db) == {
            "trades.trade_id": ("text", "NO"), "l2_snapshots.last_update_id": ("bigint", "YES"),
        }  # fmt: skip
        ids = await old_db.fetch("SELECT trade_id, time FROM trades ORDER BY time")
        assert [(r[0], r[1]) for r in ids] == [
            (str(trade_id), T0 + timedelta(seconds=i)) for i, trade_id in enumerate(OLD_IDS)
        ]
        assert await old_db.fetchval("SELECT count(*) FROM l2_snapshots") == 3
        (message,) = migrations(caplog)
        assert "trades.trade_id bigint -> text (5 rows rewritten)" in message
        assert "l2_snapshots.last_update_id may be NULL (3 rows, not rewritten)" in message

        later = T0 + timedelta(hours=1)
        result = await sink.write(
            [
                trade("abc-1", later, b"3-0"),
                trade("01J9ZQ4XK3M5N7P9R1S3T5V7W9", later, b"3-1"),
                trade("123", T0, b"3-2"),  # stored by 0.x as the integer 123
                trade("9223372036854775808", later, b"3-3"),  # past bigint
            ],
            [book(None, later)],
        )
        assert result.rejected == []
        assert result.written == {"trades": 3, "l2_snapshots": 1}
        assert await old_db.fetchval("SELECT count(*) FROM trades WHERE trade_id = '123'") == 1
        assert await old_db.fetchval("SELECT count(*) FROM trades") == len(OLD_IDS) + 3
        assert await old_db.fetchval(
            "SELECT last_update_id FROM l2_snapshots WHERE exchange = 'kraken'"
        ) is None  # fmt: skip
        with pytest.raises(asyncpg.UniqueViolationError):  # the key still holds
            await old_db.execute(
                "INSERT INTO trades VALUES ($1, 'binance_futures', 'BTCUSDT', 'abc-1', 1, 1,"
                " 'buy', $1)",
                later,
            )
    finally:
        await sink.close()


async def test_setup_twice_changes_nothing_the_second_time(old_db, pg, caplog):
    caplog.set_level(logging.INFO, logger=MIGRATION_LOGGER)
    await (await started(pg.dsn)).close()
    before = await old_db.fetch("SELECT * FROM trades ORDER BY time")
    relfile = await old_db.fetchval("SELECT pg_relation_filenode('trades')")
    await (await started(pg.dsn)).close()
    assert len(migrations(caplog)) == 1
    assert await old_db.fetch("SELECT * FROM trades ORDER BY time") == before
    assert await old_db.fetchval("SELECT pg_relation_filenode('trades')") == relfile  # no rewrite
    assert (await columns(old_db))["trades.trade_id"] == ("text", "NO")


async def test_two_setups_racing_on_the_old_schema_migrate_once(old_db, pg, caplog):
    caplog.set_level(logging.INFO, logger=MIGRATION_LOGGER)
    sinks = await asyncio.gather(*(started(pg.dsn) for _ in range(2)))
    for sink in sinks:
        await sink.close()
    assert len(migrations(caplog)) == 1
    assert (await columns(old_db))["trades.trade_id"] == ("text", "NO")
    assert await old_db.fetchval("SELECT count(*) FROM trades") == len(OLD_IDS)


async def test_two_setups_racing_on_an_empty_database_both_start(pg, caplog):
    caplog.set_level(logging.INFO, logger=MIGRATION_LOGGER)
    sinks = await asyncio.gather(*(started(pg.dsn) for _ in range(2)))
    for sink in sinks:
        await sink.close()
    assert migrations(caplog) == []  # created as text: nothing to migrate
    conn = await asyncpg.connect(pg.dsn)
    try:
        assert (await columns(conn))["trades.trade_id"] == ("text", "NO")
    finally:
        await conn.close()


async def test_compressed_hypertable_is_refused_with_what_to_do(old_db, pg):
    # TimescaleDB's catalog view, as 2.x has it, claiming compression is on for trades
    # (the extension itself is not installed here).
    await old_db.execute(
        "CREATE SCHEMA timescaledb_information;"
        " CREATE TABLE timescaledb_information.hypertables"
        " (hypertable_schema name, hypertable_name name, compression_enabled boolean);"
        " INSERT INTO timescaledb_information.hypertables VALUES (current_schema(), 'trades', true)"
    )
    try:
        sink = TimescaleSink(pg.dsn)
        with pytest.raises(RetryableSinkError) as refused:
            await sink.start()
        await sink.close()
        message = str(refused.value)
        assert "cannot migrate table trades" in message
        assert "compression on" in message
        assert "decompress_chunk" in message
        assert "timescaledb.compress = false" in message
        # nothing changed: the whole setup is one transaction
        assert await columns(old_db) == {
            "trades.trade_id": ("bigint", "NO"), "l2_snapshots.last_update_id": ("bigint", "NO"),
        }  # fmt: skip
    finally:
        await old_db.execute("DROP SCHEMA timescaledb_information CASCADE")


async def test_timescaledb_refusing_an_alter_for_compression_says_what_to_do(old_db, pg):
    # TimescaleDB before late 2024 refuses even DROP NOT NULL with compression on, with
    # this SQLSTATE; an event trigger answers the same for every ALTER TABLE here.
    await old_db.execute("ALTER TABLE trades ALTER COLUMN trade_id TYPE text")
    await old_db.execute(
        "CREATE FUNCTION refuse_alter() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE EXCEPTION 'operation not supported on hypertables that have compression"
        " enabled' USING ERRCODE = 'feature_not_supported'; END $$;"
        " CREATE EVENT TRIGGER refuse_alter ON ddl_command_start WHEN TAG IN ('ALTER TABLE')"
        " EXECUTE FUNCTION refuse_alter()"
    )
    try:
        with pytest.raises(RetryableSinkError) as refused:
            await TimescaleSink(pg.dsn).start()
    finally:
        await old_db.execute("DROP EVENT TRIGGER refuse_alter; DROP FUNCTION refuse_alter()")
    message = str(refused.value)
    assert "cannot migrate table l2_snapshots" in message
    assert "last_update_id's NOT NULL" in message
    assert "operation not supported on hypertables that have compression enabled" in message
    assert "decompress_chunk" in message
    assert (await columns(old_db))["l2_snapshots.last_update_id"] == ("bigint", "NO")


async def test_a_view_on_trade_id_stops_the_migration_naming_it(old_db, pg):
    await old_db.execute("CREATE VIEW trade_ids AS SELECT trade_id FROM trades")
    try:
        with pytest.raises(RetryableSinkError) as refused:
            await TimescaleSink(pg.dsn).start()
    finally:
        await old_db.execute("DROP VIEW trade_ids")
    message = str(refused.value)
    assert "cannot alter type of a column used by a view or rule" in message
    assert "trade_ids" in message
    assert (await columns(old_db))["trades.trade_id"] == ("bigint", "NO")
