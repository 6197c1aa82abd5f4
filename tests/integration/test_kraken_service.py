"""Kraken through the real service against the simulator's Kraken v2 dialect: books exact
by their checksums, a checksum failure resyncs only its pair, rejected subscribes are on
/ready and retried, trades once each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.scenarios import Scenario
from tests.integration.persist_helpers import persist_config, row_counts, run_persist
from tests.integration.scenario_runner import Collector, get_json, metric, wait_until
from tests.integration.sim_venue_run import SimVenueRun

PAIRS = ("BTC/USD", "ETH/USD", "SOL/USD")
FIRST_TRADE_ID = 10_000_001  # the simulator's markets number trades from here


class KrakenRun(SimVenueRun):
    venue = "kraken"
    path = "/kraken/v2"

    def __init__(self, source: KrakenSource, scenario: Scenario, collector: Collector) -> None:
        section = {"symbols": list(PAIRS), "depth": 25, "subscribe_timeout_s": 2.0}
        super().__init__(source, scenario, collector, section)


@pytest.fixture
async def kraken_run(redis_client: Any) -> AsyncIterator[Any]:
    runs: list[KrakenRun] = []

    async def start(scenario: Scenario | None = None, rate: float = 50) -> KrakenRun:
        collector = Collector(redis_client)
        await collector.start()
        run = KrakenRun(
            KrakenSource(rate, seed=7, symbols=PAIRS), scenario or Scenario(), collector
        )
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.stop()


async def test_books_follow_the_simulator_and_trades_arrive_once(redis_server, kraken_run):
    run = await kraken_run()
    service = await run.start(redis_server.url)
    status, body = await run.ready()
    assert status == 200, body
    assert body["symbols"] == 3
    await run.collector.collect_until(lambda c: False, timeout_s=2.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    for pair in PAIRS:
        last = run.collector.messages[f"orderbook:kraken:{pair}"][-1]
        assert (last["exchange"], last["symbol"], last["last_update_id"]) == ("kraken", pair, None)
        assert len(last["bids"]) == 20
        # Trades: every one the simulator made, once, in order, ids as text.
        trades = run.collector.messages[f"trades:kraken:{pair}"]
        expected = list(range(FIRST_TRADE_ID, run.source.markets[pair].trade_id + 1))
        assert [int(t["trade_id"]) for t in trades] == expected, pair
        assert all(type(t["trade_id"]) is str for t in trades)
        assert metric(service, "checksum_mismatches_total", exchange="kraken", symbol=pair) == 0
    status, book = await get_json(service, "/books/kraken/BTC/USD")
    assert status == 200
    assert book["symbol"] == "BTC/USD"


async def test_a_checksum_failure_resyncs_only_its_pair(redis_server, kraken_run):
    """Three pairs on one connection; every 60th book update of the connection carries a
    wrong checksum. Each mismatch resubscribes its own pair, and nothing else."""
    run = await kraken_run(Scenario(checksum_corrupt_every=60), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    mismatches = {
        p: metric(service, "checksum_mismatches_total", exchange="kraken", symbol=p) for p in PAIRS
    }
    resyncs = {p: metric(service, "resyncs_total", exchange="kraken", symbol=p) for p in PAIRS}
    assert sum(mismatches.values()) >= 3, mismatches
    assert resyncs == mismatches  # each failure resynced its pair alone
    for pair in PAIRS:  # and the trades never paused or doubled
        trades = [int(t["trade_id"]) for t in run.collector.messages[f"trades:kraken:{pair}"]]
        assert trades == list(range(FIRST_TRADE_ID, run.source.markets[pair].trade_id + 1))
    disconnects = metric(service, "ws_disconnects_total", exchange="kraken", symbol="BTC/USD",
                         stream="ws")  # fmt: skip
    assert disconnects == 0  # a resubscribe, not a reconnect


async def test_dropped_updates_are_caught_by_the_checksum(redis_server, kraken_run):
    run = await kraken_run(Scenario(gap_every=40), rate=60)
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    caught = sum(
        metric(service, "checksum_mismatches_total", exchange="kraken", symbol=p) for p in PAIRS
    )
    assert caught >= 1


async def test_a_rejected_pair_is_on_ready_and_the_others_run(redis_server, kraken_run):
    run = await kraken_run(Scenario(reject_symbols=frozenset({"ETH/USD"})))
    service = await run.start(redis_server.url)

    async def eth_rejected() -> bool:
        if service.http_port is None:
            return False
        _, body = await get_json(service, "/ready")
        return any("rejected" in p for p in body["problems"].get("kraken:ETH/USD", []))

    assert await wait_until(eth_rejected, 10.0)
    status, body = await get_json(service, "/ready")
    assert status == 503
    assert set(body["problems"]) == {"kraken:ETH/USD"}, body
    assert any(
        p.startswith("book subscribe failing: rejected: ")
        for p in body["problems"]["kraken:ETH/USD"]
    )
    labels = {"exchange": "kraken", "symbol": "ETH/USD", "channel": "book", "reason": "rejected"}
    assert metric(service, "subscription_failures_total", **labels) >= 1
    # Once Kraken takes it again, it syncs with no restart.
    run.scenario.reject_symbols = frozenset()
    status, body = await run.ready()
    assert status == 200, body


async def test_rejected_first_subscribes_are_retried_until_ready(redis_server, kraken_run):
    run = await kraken_run(Scenario(reject_subscribes=2))
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    failures = sum(
        metric(service, "subscription_failures_total", exchange="kraken", symbol=p,
               channel="instrument", reason="rejected")
        for p in PAIRS
    )  # fmt: skip
    assert failures >= 3  # the instrument request was refused at least once (for every pair)


async def test_kraken_trades_reach_postgres_once_each(redis_server, redis_client, pg, kraken_run):
    """The seed path: simulator -> service -> spool -> `persist` -> the trades table, exactly
    the trades the simulator made, none twice, with Kraken's ids as text."""
    persist = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    run = await kraken_run(rate=80)
    try:
        await run.start(redis_server.url)
        status, body = await run.ready()
        assert status == 200, body
        await run.collector.collect_until(lambda c: False, timeout_s=2.0)
        assert await run.settle()
        expected = {
            (pair, str(i))
            for pair in PAIRS
            for i in range(FIRST_TRADE_ID, run.source.markets[pair].trade_id + 1)
        }
        assert len(expected) > 50

        async def all_stored() -> bool:
            return await row_counts(pg.dsn) == (len(expected), len(expected))

        assert await wait_until(all_stored, 20), await row_counts(pg.dsn)
        conn = await asyncpg.connect(pg.dsn)
        try:
            rows = await conn.fetch("SELECT exchange, symbol, trade_id, price FROM trades")
        finally:
            await conn.close()
    finally:
        persist.stop()
        await persist_task
    assert {r["exchange"] for r in rows} == {"kraken"}
    assert {(r["symbol"], r["trade_id"]) for r in rows} == expected
    prices = {r["symbol"]: r["price"] for r in rows}
    assert prices["BTC/USD"] == prices["BTC/USD"].quantize(Decimal("0.1"))  # pair precision
