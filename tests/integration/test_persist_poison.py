"""Rows a sink refuses for what they hold go to spool:dead; a schema or password problem is
retried. Neither ends `marketdata persist`."""

from __future__ import annotations

import logging

import asyncpg

from marketdata.persist.mongo import MongoSink
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.spool import BOOKS_STREAM, TRADES_STREAM, book_entry
from tests.integration.persist_helpers import (
    drained,
    health,
    persist_config,
    row_counts,
    run_persist,
    spool_trades,
    trade_fields,
)
from tests.integration.scenario_runner import wait_until
from tests.mongo_double import FakeDatabase

INT64_OVERFLOW = 2**63  # 9223372036854775808: one more than bigint holds
NUL_SYMBOL = {**trade_fields(100), "symbol": "BTC\x00USDT"}  # decodes; PostgreSQL refuses it
NUL_TRADE_ID = {**trade_fields(101), "trade_id": "101\x00"}  # the row decoder refuses it


async def _spool_with_poison(redis_client, *poison: dict[str, str]) -> list[bytes]:
    """200 good trades around the poison; the poison's entry ids."""
    await spool_trades(redis_client, 0, 100)
    ids = [await redis_client.xadd(TRADES_STREAM, fields) for fields in poison]
    await spool_trades(redis_client, 100, 100)
    return ids


async def test_refused_trades_go_to_dead_and_the_rest_commits(redis_server, redis_client, pg):
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        refused_by_pg, refused_by_decoder = await _spool_with_poison(
            redis_client, NUL_SYMBOL, NUL_TRADE_ID
        )

        async def stored() -> bool:
            return await row_counts(pg.dsn) == (200, 200)

        assert await wait_until(stored, 20), await row_counts(pg.dsn)
        assert await wait_until(lambda: drained(redis_client, "timescale"), 10)
        assert not task.done(), task.exception()
        await spool_trades(redis_client, 200, 100)  # and it goes on
        assert await wait_until(lambda: _rows(pg.dsn, 300), 20)
    finally:
        service.stop()
        await task
    dead = {fields[b"id"]: fields for _, fields in await redis_client.xrange("spool:dead")}
    assert set(dead) == {refused_by_pg, refused_by_decoder}
    assert dead[refused_by_pg][b"f:symbol"] == b"BTC\x00USDT"
    assert b"0x00" in dead[refused_by_pg][b"error"]  # invalid byte sequence for UTF8: 0x00
    assert dead[refused_by_decoder][b"f:trade_id"] == b"101\x00"
    assert dead[refused_by_decoder][b"error"] == (
        b"trade entry " + repr(refused_by_decoder).encode()
        + b": trade_id '101\\x00' holds the control character '\\x00'"
    )  # fmt: skip


async def test_any_text_trade_id_and_a_book_without_update_id_are_stored(
    redis_server, redis_client, pg
):
    ids = [str(INT64_OVERFLOW), "abc-1", "01J9ZQ4XK3M5N7P9R1S3T5V7W9"]
    no_update_id = {
        **book_entry("kraken", "XBT/USD", 0, 1, 1, 1.0, [], []), "last_update_id": ""
    }  # fmt: skip
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        for trade_id in ids:
            await redis_client.xadd(TRADES_STREAM, {**trade_fields(1), "trade_id": trade_id})
        await redis_client.xadd(BOOKS_STREAM, no_update_id)
        assert await wait_until(lambda: drained(redis_client, "timescale"), 20)
        assert await wait_until(lambda: drained(redis_client, "timescale", BOOKS_STREAM), 20)
    finally:
        service.stop()
        await task
    conn = await asyncpg.connect(pg.dsn)
    try:
        stored = await conn.fetch("SELECT trade_id FROM trades")
        books = await conn.fetch("SELECT exchange, last_update_id FROM l2_snapshots")
    finally:
        await conn.close()
    assert sorted(r["trade_id"] for r in stored) == sorted(ids)
    assert [tuple(r) for r in books] == [("kraken", None)]
    assert await redis_client.xrange("spool:dead") == []


async def test_mongo_buries_documents_it_refuses(redis_server, redis_client):
    db = FakeDatabase()
    db["trades"].validator = lambda doc: doc["trade_id"] != "150"
    config = persist_config(
        redis_server.url, "postgresql://unused@127.0.0.1/x", timescale={"enabled": False}
    )
    service = PersistService(config, [MongoSink("mongodb://unused", "md", db)])
    task = await run_persist(service)
    try:
        (refused_by_decoder,) = await _spool_with_poison(redis_client, NUL_TRADE_ID)
        too_big = book_entry("binance_futures", "BTCUSDT", INT64_OVERFLOW, 1, 1, 1.0, [], [])
        unencodable = await redis_client.xadd(BOOKS_STREAM, too_big)

        async def stored() -> bool:
            return len(db["trades"].docs) == 199  # 150 refused by the validator

        assert await wait_until(stored, 20)
        assert await wait_until(lambda: drained(redis_client, "mongo"), 10)
        assert await wait_until(lambda: drained(redis_client, "mongo", BOOKS_STREAM), 10)
        assert not task.done(), task.exception()
    finally:
        service.stop()
        await task
    dead = await redis_client.xrange("spool:dead")
    reasons = {fields[b"id"]: fields[b"error"].decode() for _, fields in dead}
    validator_refused = next(f[b"id"] for _, f in dead if f.get(b"f:trade_id") == b"150")
    assert set(reasons) == {refused_by_decoder, unencodable, validator_refused}
    assert "holds the control character" in reasons[refused_by_decoder]
    assert "8-byte ints" in reasons[unencodable]  # a book's last_update_id BSON cannot hold
    assert reasons[validator_refused] == "trades: code 121: Document failed validation"


async def test_table_dropped_under_a_live_persist_is_recreated(redis_server, redis_client, pg):
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)
        assert await wait_until(lambda: _rows(pg.dsn, 100), 20)
        conn = await asyncpg.connect(pg.dsn)
        await conn.execute("DROP TABLE trades")
        await conn.close()
        await spool_trades(redis_client, 100, 100)
        assert await wait_until(lambda: _rows(pg.dsn, 100, first=100), 20)
        assert await wait_until(lambda: drained(redis_client, "timescale"), 10)
        assert not task.done(), task.exception()
    finally:
        service.stop()
        await task


async def test_wrong_password_is_retried_and_shown(redis_server, redis_client, pg, caplog):
    dsn = pg.add_password_role("locked", "right").replace(":right@", ":wrong@")
    service = PersistService(persist_config(redis_server.url, dsn), [TimescaleSink(dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 10)

        async def retried() -> bool:
            return _metric(service, "sink_errors_total", sink="timescale") >= 3

        assert await wait_until(retried, 20)
        assert not task.done(), task.exception()
        status, body = await health(service.http_port)
        assert status == 503
        assert body["sinks"]["timescale"]["state"] == "UNAVAILABLE"
    finally:
        service.stop()
        await task
    assert await _unacked(redis_client) == 10  # nothing acknowledged
    causes = [r for r in caplog.records if "password authentication failed" in r.getMessage()]
    assert len(causes) == 1, [r.getMessage() for r in causes]  # the cause, once
    assert causes[0].levelno == logging.ERROR


async def _rows(dsn: str, n: int, first: int = 0) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM trades WHERE trade_id::numeric >= $1", first
        )
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
    return int(count) == n


async def _unacked(redis_client) -> int:
    info = {g["name"].decode(): g for g in await redis_client.xinfo_groups(TRADES_STREAM)}
    return int(info["timescale"]["pending"]) + int(info["timescale"]["lag"])


def _metric(service: PersistService, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0
