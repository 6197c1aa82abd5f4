"""TimescaleDB (PostgreSQL) sink, with asyncpg.

Bulk path: COPY into a session temp table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING
in one transaction, so redelivered rows are skipped by their keys. CHECK constraints refuse
NaN, non-positive prices and negative quantities. If a batch holds a row the database (or
asyncpg, encoding it) refuses for what the row holds, its rows are retried one by one and only
the offending rows are reported as rejected. Any other failure (unreachable, bad password,
a table dropped under us) is retryable: the next write opens a new pool and re-creates the
schema.

Schema setup, on every start: create what is missing and migrate what an earlier version
made (trades.trade_id bigint -> text, l2_snapshots.last_update_id nullable), in one
transaction under an advisory lock, so persist processes starting together take turns and
the later ones find nothing left to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketdata.logs import describe
from marketdata.persist.rows import BookRow, TradeRow
from marketdata.persist.sink import RetryableSinkError, WriteResult

log = logging.getLogger(__name__)

Conn = PoolConnectionProxy  # a connection the pool lends

SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    time        timestamptz NOT NULL,
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    trade_id    text        NOT NULL,  -- the venue's id: not every venue's is a number
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
    last_update_id  bigint,               -- NULL: the venue numbers no updates (Kraken)
    exchange_time   timestamptz NOT NULL,
    recv_time       timestamptz NOT NULL,
    bids            jsonb       NOT NULL,
    asks            jsonb       NOT NULL,
    PRIMARY KEY (exchange, symbol, time)
);
"""
TRADE_COLUMNS = ("time", "exchange", "symbol", "trade_id", "price", "qty", "side", "recv_time")
BOOK_COLUMNS = (
    "time", "exchange", "symbol", "last_update_id", "exchange_time", "recv_time", "bids", "asks",
)  # fmt: skip
TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS trades_in (LIKE trades) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS l2_snapshots_in (LIKE l2_snapshots) ON COMMIT DELETE ROWS;
"""
CONNECT_TIMEOUT_S = 5.0
SCHEMA_LOCK = int.from_bytes(b"mdschema", "big")  # pg_advisory_xact_lock key, any fixed bigint
RETRYABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
# Refusals of one row for what it holds: retrying the same row cannot help. DataError is
# SQLSTATE class 22 (numeric out of range, invalid text representation, ...) and also what
# asyncpg raises when it cannot encode a query argument; COPY raises OverflowError for an
# integer out of int64 range.
ROW_LEVEL = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, OverflowError)


class TimescaleSink:
    name = "timescale"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self.hypertables = False

    async def start(self) -> None:
        try:
            self.hypertables = await self._setup_schema()
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=0, max_size=2, command_timeout=60, timeout=CONNECT_TIMEOUT_S
            )
        except RETRYABLE as e:
            await self.close()
            raise RetryableSinkError(f"postgresql unreachable: {describe(e)}") from e
        except asyncpg.PostgresError as e:  # bad password, no such database, no privilege
            await self.close()
            raise RetryableSinkError(f"postgresql refused: {describe(e)}") from e
        kind = "hypertables (timescaledb)" if self.hypertables else "plain tables (no timescaledb)"
        log.info("timescale sink ready: %s", kind)

    async def _setup_schema(self) -> bool:
        """On a connection of its own, without the pool's command timeout: a migration
        rewrites the whole table and takes as long as that takes."""
        conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            hypertables = await setup_schema(conn)
        except BaseException:
            conn.terminate()
            raise
        await conn.close(timeout=CONNECT_TIMEOUT_S)
        return hypertables

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    async def write(self, trades: list[TradeRow], books: list[BookRow]) -> WriteResult:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        trade_records = [_trade_record(t) for t in trades]
        book_records = [_book_record(b) for b in books]
        try:
            async with self._pool.acquire() as conn:
                try:
                    return await _bulk(conn, trade_records, book_records)
                except ROW_LEVEL:
                    return await _one_by_one(conn, trades, trade_records, books, book_records)
        except RETRYABLE as e:
            await self.close()  # a fresh pool next time
            raise RetryableSinkError(f"postgresql write failed: {describe(e)}") from e
        except asyncpg.UndefinedTableError as e:
            await self.close()  # the next write starts again: the schema is re-created
            raise RetryableSinkError(f"postgresql table missing, re-creating: {e}") from e
        except asyncpg.PostgresError as e:
            await self.close()
            raise RetryableSinkError(f"postgresql refused the batch: {describe(e)}") from e


async def setup_schema(conn: asyncpg.Connection) -> bool:
    """Create the tables, migrate what an earlier version made, and make hypertables when
    TimescaleDB is available (True then). Raises RetryableSinkError when a table cannot be
    migrated as it is (a compressed hypertable): a person has to act first."""
    started = time.monotonic()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(SCHEMA)
        changes = await _migrate(conn)
        hypertables = await _make_hypertables(conn)
    if changes:
        log.info("schema migrated in %.1f s: %s", time.monotonic() - started, "; ".join(changes))
    return hypertables


async def _migrate(conn: asyncpg.Connection) -> list[str]:
    """Bring tables an earlier version made to SCHEMA; what was changed (nothing: [])."""
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND (table_name, column_name) IN"
        " (('trades', 'trade_id'), ('l2_snapshots', 'last_update_id'))"
    )
    columns = {(r["table_name"], r["column_name"]): r for r in rows}
    changes = []
    trade_id = columns[("trades", "trade_id")]
    if trade_id["data_type"] != "text":
        if await _compression_on(conn, "trades"):
            raise _compressed("trades", "the type of trade_id")
        count = await conn.fetchval("SELECT count(*) FROM trades")
        # Rewrites the table and its indexes under an ACCESS EXCLUSIVE lock.
        await _alter(
            conn,
            "trades",
            "the type of trade_id",
            "ALTER COLUMN trade_id TYPE text USING trade_id::text",
        )
        changes.append(f"trades.trade_id {trade_id['data_type']} -> text ({count} rows rewritten)")
    if columns[("l2_snapshots", "last_update_id")]["is_nullable"] == "NO":
        count = await conn.fetchval("SELECT count(*) FROM l2_snapshots")
        # Only the catalog. TimescaleDB refuses it with compression on before late 2024
        # (timescale/timescaledb#7455).
        await _alter(
            conn,
            "l2_snapshots",
            "last_update_id's NOT NULL",
            "ALTER COLUMN last_update_id DROP NOT NULL",
        )
        changes.append(f"l2_snapshots.last_update_id may be NULL ({count} rows, not rewritten)")
    return changes


async def _alter(conn: asyncpg.Connection, table: str, what: str, change: str) -> None:
    try:
        await conn.execute(f"ALTER TABLE {table} {change}")
    except asyncpg.FeatureNotSupportedError as e:
        # TimescaleDB's answer for a hypertable with compression on; PostgreSQL's own (a
        # view uses the column, say) goes up as it is, with the view's name.
        if "compression" not in str(e):
            raise
        raise _compressed(table, what, describe(e)) from e


async def _compression_on(conn: asyncpg.Connection, table: str) -> bool:
    """A hypertable with compression on: TimescaleDB cannot change its columns' types."""
    if not await conn.fetchval(
        "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL"
    ):
        return False
    return bool(
        await conn.fetchval(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = current_schema() AND hypertable_name = $1",
            table,
        )
    )


def _compressed(table: str, what: str, answer: str = "") -> RetryableSinkError:
    """Decompressing may need far more disk than the compressed data: a person decides."""
    said = f" ({answer})" if answer else ""
    return RetryableSinkError(
        f"cannot migrate table {table}: TimescaleDB cannot change {what} of a hypertable with"
        f" compression on{said}. Decompress it and turn compression off (SELECT"
        f" decompress_chunk(c, true) FROM show_chunks('{table}') c; ALTER TABLE {table} SET"
        " (timescaledb.compress = false);); persist retries the migration meanwhile"
    )


async def _make_hypertables(conn: asyncpg.Connection) -> bool:
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if not available:
        return False
    await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table in ("trades", "l2_snapshots"):
        await conn.execute(
            "SELECT create_hypertable($1::regclass, 'time', if_not_exists => TRUE, "
            "migrate_data => TRUE)",
            table,
        )
    return True


async def _bulk(
    conn: Conn, trades: list[tuple[Any, ...]], books: list[tuple[Any, ...]]
) -> WriteResult:
    result = WriteResult()
    async with conn.transaction():
        await conn.execute(TEMP_TABLES)
        result.written["trades"] = await _copy_insert(conn, "trades", TRADE_COLUMNS, trades)
        result.written["l2_snapshots"] = await _copy_insert(
            conn, "l2_snapshots", BOOK_COLUMNS, books
        )
    return result


async def _copy_insert(
    conn: Conn, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> int:
    if not records:
        return 0
    await conn.copy_records_to_table(f"{table}_in", records=records, columns=columns)
    names = ", ".join(columns)
    status = await conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_in ON CONFLICT DO NOTHING"
    )
    return int(status.rsplit(" ", 1)[1])


async def _one_by_one(
    conn: Conn,
    trades: list[TradeRow],
    trade_records: list[tuple[Any, ...]],
    books: list[BookRow],
    book_records: list[tuple[Any, ...]],
) -> WriteResult:
    """Find the rows the database refuses for what they hold; store all the others."""
    result = WriteResult(written={"trades": 0, "l2_snapshots": 0})
    work = [
        ("trades", TRADE_COLUMNS, [t.entry_id for t in trades], trade_records),
        ("l2_snapshots", BOOK_COLUMNS, [b.entry_id for b in books], book_records),
    ]
    async with conn.transaction():
        for table, columns, ids, records in work:
            names = ", ".join(columns)
            values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING"
            for entry_id, record in zip(ids, records, strict=True):
                try:
                    async with conn.transaction():  # a savepoint per row
                        status = await conn.execute(sql, *record)
                    result.written[table] += int(status.rsplit(" ", 1)[1])
                except ROW_LEVEL as e:
                    result.rejected.append((entry_id, f"{table}: {describe(e)}"))
    return result


def _trade_record(t: TradeRow) -> tuple[Any, ...]:
    return (t.time, t.exchange, t.symbol, t.trade_id, t.price, t.qty, t.side, t.recv_time)


def _book_record(b: BookRow) -> tuple[Any, ...]:
    return (
        b.time, b.exchange, b.symbol, b.last_update_id, b.exchange_time, b.recv_time,
        b.bids, b.asks,
    )  # fmt: skip
