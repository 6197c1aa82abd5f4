"""Coinbase through the real service against the simulator's Advanced Trade dialect: books
equal the simulator's, the tickers agree with them, a sequence gap resyncs every product
of its connection and no other, rejected subscribes are on /ready and retried, a snapshot
over 4 MiB is taken, trades once each, and the seed path into PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.service import Service
from marketdata.sim import coinbase_frames
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.scenarios import Scenario
from tests.integration.persist_helpers import persist_config, row_counts, run_persist
from tests.integration.scenario_runner import Collector, get_json, metric, wait_until
from tests.integration.sim_venue_run import SimVenueRun

PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")
FIRST_TRADE_ID = 10_000_001  # the simulator's markets number trades from here


class CoinbaseRun(SimVenueRun):
    venue = "coinbase"
    path = "/coinbase"

    def __init__(self, source: CoinbaseSource, scenario: Scenario, collector: Collector) -> None:
        section = {"symbols": source.listed(), "subscribe_timeout_s": 2.0}
        super().__init__(source, scenario, collector, section, heartbeat_s=0.5)

    @property
    def products(self) -> list[str]:
        return self.symbols

    def trade_ids(self, product: str) -> list[int]:
        return [int(t["trade_id"]) for t in self.collector.messages[f"trades:coinbase:{product}"]]

    def made(self, product: str) -> list[int]:
        """The ids of every trade the simulator made for `product`."""
        return list(range(FIRST_TRADE_ID, self.source.markets[product].trade_id + 1))


def _per_product(service: Service, name: str, products: list[str]) -> dict[str, float]:
    return {p: metric(service, name, exchange="coinbase", symbol=p) for p in products}


@pytest.fixture
async def coinbase_run(redis_client: Any) -> AsyncIterator[Any]:
    runs: list[CoinbaseRun] = []

    async def start(
        scenario: Scenario | None = None,
        rate: float = 50,
        products: tuple[str, ...] = PRODUCTS,
        depth: int = 300,
    ) -> CoinbaseRun:
        collector = Collector(redis_client)
        await collector.start()
        source = CoinbaseSource(rate, seed=7, symbols=products, depth=depth)
        run = CoinbaseRun(source, scenario or Scenario(), collector)
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.stop()


async def test_books_follow_the_simulator_and_trades_arrive_once(redis_server, coinbase_run):
    run = await coinbase_run()
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    assert body["symbols"] == 3
    await run.collector.collect_until(lambda c: False, timeout_s=2.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    for product in PRODUCTS:
        last = run.collector.messages[f"orderbook:coinbase:{product}"][-1]
        assert (last["exchange"], last["symbol"], last["last_update_id"]) == (
            "coinbase",
            product,
            None,
        )
        assert len(last["bids"]) == 20
        # Trades: every one the simulator made, once, in order, ids as text.
        assert run.trade_ids(product) == run.made(product), product
        trades = run.collector.messages[f"trades:coinbase:{product}"]
        assert all(type(t["trade_id"]) is str for t in trades)
    # The tickers were checked against the books, and all agreed; nothing was resynced.
    checks = _per_product(service, "top_of_book_checks_total", list(PRODUCTS))
    assert all(n > 5 for n in checks.values()), checks
    assert _per_product(service, "top_of_book_mismatches_total", list(PRODUCTS)) == dict.fromkeys(
        PRODUCTS, 0.0
    )
    assert _per_product(service, "resyncs_total", list(PRODUCTS)) == dict.fromkeys(PRODUCTS, 0.0)
    status, book = await get_json(service, "/books/coinbase/BTC-USD")
    assert status == 200
    assert book["symbol"] == "BTC-USD"


async def test_a_gap_resyncs_every_product_of_its_connection_and_no_other(
    redis_server, coinbase_run
):
    """Two connections (BTC-USD with ETH-USD; SOL-USD alone); every 40th frame of the first
    is dropped. Each gap resyncs both its products, and SOL-USD never."""
    scenario = Scenario(gap_every=40, fault_symbols=frozenset({"BTC-USD"}))
    run = await coinbase_run(scenario, rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=2)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    gaps = _per_product(service, "sequence_gaps_total", list(PRODUCTS))
    resyncs = _per_product(service, "resyncs_total", list(PRODUCTS))
    assert gaps["BTC-USD"] >= 2, gaps
    assert gaps["BTC-USD"] == gaps["ETH-USD"]
    assert resyncs["BTC-USD"] == resyncs["ETH-USD"] >= gaps["BTC-USD"]
    assert (gaps["SOL-USD"], resyncs["SOL-USD"]) == (0, 0)
    # The clean connection's trades never paused or doubled.
    assert run.trade_ids("SOL-USD") == run.made("SOL-USD")
    disconnects = metric(service, "ws_disconnects_total", exchange="coinbase", symbol="BTC-USD",
                         stream="ws")  # fmt: skip
    assert disconnects == 0  # a resubscribe, not a reconnect


async def test_a_rejected_product_is_on_ready_and_the_others_run(redis_server, coinbase_run):
    run = await coinbase_run(Scenario(reject_symbols=frozenset({"ETH-USD"})))
    service = await run.start(redis_server.url, symbols_per_connection=3)

    async def only_eth_rejected() -> bool:
        if service.http_port is None:
            return False
        _, body = await get_json(service, "/ready")
        problems = body["problems"]
        eth = problems.get("coinbase:ETH-USD", [])
        return set(problems) == {"coinbase:ETH-USD"} and any("rejected" in p for p in eth)

    assert await wait_until(only_eth_rejected, 10.0)
    status, body = await get_json(service, "/ready")
    assert status == 503
    assert any(
        p.startswith("level2 subscribe failing: rejected: ")
        for p in body["problems"]["coinbase:ETH-USD"]
    ), body
    labels = {"exchange": "coinbase", "symbol": "ETH-USD", "channel": "level2",
              "reason": "rejected"}  # fmt: skip
    assert metric(service, "subscription_failures_total", **labels) >= 1
    # Once Coinbase takes it again, it syncs with no restart.
    run.scenario.reject_symbols = frozenset()
    status, body = await run.ready()
    assert status == 200, body


async def test_rejected_first_subscribes_are_retried_until_ready(redis_server, coinbase_run):
    run = await coinbase_run(Scenario(reject_subscribes=2))
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    failures = sum(
        metric(service, "subscription_failures_total", exchange="coinbase", symbol=p,
               channel=channel, reason="rejected")
        for p in PRODUCTS
        for channel in ("heartbeats", "level2", "market_trades", "ticker")
    )  # fmt: skip
    assert failures >= 2


async def test_a_snapshot_over_4_mib_is_taken_whole(redis_server, coinbase_run):
    """The client accepts frames up to 32 MiB: a 25,000-level-a-side book comes in one
    snapshot frame well over 4 MiB, and the product syncs from it."""
    run = await coinbase_run(rate=20, products=("BTC-USD",), depth=25_000)
    service = await run.start(redis_server.url)
    status, body = await run.ready(timeout_s=20.0)
    assert status == 200, body
    market = run.source.markets["BTC-USD"]
    levels = coinbase_frames.whole_book(market)
    shape = run.source.products["BTC-USD"]
    event = coinbase_frames.book("snapshot", "BTC-USD", shape, levels, "2026-11-22T00:00:00Z")
    assert len(coinbase_frames.envelope("l2_data", 0, [event])) > 4 * 1024 * 1024
    assert await run.settle()
    service.update_gauges()  # as a /metrics scrape does
    labels = {"exchange": "coinbase", "symbol": "BTC-USD", "side": "bid"}
    held = service.metrics.registry.get_sample_value("book_levels", labels)
    assert held is not None
    assert held > 24_000  # the whole book, far beyond the top


async def test_coinbase_trades_reach_postgres_once_each(
    redis_server, redis_client, pg, coinbase_run
):
    """The seed path: simulator -> service -> spool -> `persist` -> the trades table, exactly
    the trades the simulator made, none twice, with Coinbase's ids as text."""
    persist = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    run = await coinbase_run(rate=80)
    try:
        await run.start(redis_server.url, symbols_per_connection=3)
        status, body = await run.ready()
        assert status == 200, body
        await run.collector.collect_until(lambda c: False, timeout_s=2.0)
        assert await run.settle()
        expected = {(p, str(i)) for p in PRODUCTS for i in run.made(p)}
        assert len(expected) > 50

        async def all_stored() -> bool:
            return await row_counts(pg.dsn) == (len(expected), len(expected))

        assert await wait_until(all_stored, 20), await row_counts(pg.dsn)
        conn = await asyncpg.connect(pg.dsn)
        try:
            rows = await conn.fetch("SELECT exchange, symbol, trade_id, side FROM trades")
        finally:
            await conn.close()
    finally:
        persist.stop()
        await persist_task
    assert {r["exchange"] for r in rows} == {"coinbase"}
    assert {(r["symbol"], r["trade_id"]) for r in rows} == expected
    # The taker's side, as the service publishes it: the simulator's m (buyer is maker).
    btc = {int(t["a"]): t for t in run.source.markets["BTC-USD"].recent_trades}
    for row in rows:
        if row["symbol"] == "BTC-USD" and int(row["trade_id"]) in btc:
            assert row["side"] == ("sell" if btc[int(row["trade_id"])]["m"] else "buy")
