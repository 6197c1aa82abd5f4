"""Bybit through the real service against the simulator's Bybit v5 dialect: books exact,
a break in `u` resubscribes only its symbol's book topic, restarts (u == 1) are no gap,
rejected subscribes are on /ready and retried, trades once each, into PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from marketdata.config import parse_config
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.service import Service
from marketdata.sim.app import create_sim_app
from marketdata.sim.bybit_market import BybitSource, trade_id
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.scenarios import Scenario
from tests.helpers import free_port
from tests.integration.persist_helpers import persist_config, row_counts, run_persist
from tests.integration.scenario_runner import Collector, get_json, metric, wait_until
from tests.integration.sim_venue_run import SimVenueRun

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEPTH = 50
FIRST_TRADE = 10_000_001  # the simulator's markets number trades from here


class BybitRun(SimVenueRun):
    venue = "bybit"
    path = "/bybit/v5/public/linear"
    settle_depth = 20

    def __init__(self, source: BybitSource, scenario: Scenario, collector: Collector) -> None:
        section = {"symbols": list(SYMBOLS), "depth": DEPTH, "subscribe_timeout_s": 2.0}
        super().__init__(source, scenario, collector, section)

    def trade_ids(self, symbol: str) -> list[str]:
        """Every trade the simulator made for `symbol`, in order, as linear ids."""
        last = self.source.markets[symbol].trade_id
        return [trade_id(symbol, n, "linear") for n in range(FIRST_TRADE, last + 1)]

    def published_trades(self, symbol: str) -> list[str]:
        return [t["trade_id"] for t in self.collector.messages[f"trades:bybit:{symbol}"]]


def _skipped(service: Service) -> dict[str, float]:
    """messages_error_total by reason: the frames the service could not read."""
    return {
        sample.labels["reason"]: sample.value
        for family in service.metrics.registry.collect()
        if family.name == "messages_error"
        for sample in family.samples
        if sample.name == "messages_error_total"
    }


def _per_symbol(service: Service, name: str) -> dict[str, float]:
    return {s: metric(service, name, exchange="bybit", symbol=s) for s in SYMBOLS}


@pytest.fixture
async def bybit_run(redis_client: Any) -> AsyncIterator[Any]:
    runs: list[BybitRun] = []

    async def start(scenario: Scenario | None = None, rate: float = 50) -> BybitRun:
        collector = Collector(redis_client)
        await collector.start()
        run = BybitRun(BybitSource(rate, seed=7, symbols=SYMBOLS), scenario or Scenario(),
                       collector)  # fmt: skip
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.stop()


async def test_books_follow_the_simulator_and_trades_arrive_once(redis_server, bybit_run):
    run = await bybit_run()
    service = await run.start(redis_server.url, ping_interval_s=1)
    status, body = await run.ready()
    assert status == 200, body
    assert body["symbols"] == 3
    await run.collector.collect_until(lambda c: False, timeout_s=2.5)
    assert _skipped(service) == {}  # the pongs too were read as Bybit's
    assert await run.settle(), "books did not reach the simulator's final state"
    for symbol in SYMBOLS:
        last = run.collector.messages[f"orderbook:bybit:{symbol}"][-1]
        assert (last["exchange"], last["symbol"]) == ("bybit", symbol)
        assert last["last_update_id"] == run.source.topics[(symbol, DEPTH)].u
        assert len(last["bids"]) == 20
        # Trades: every one the simulator made, once, in order, with its UUID.
        assert run.published_trades(symbol) == run.trade_ids(symbol), symbol
        assert run.source.subscribed[f"orderbook.{DEPTH}.{symbol}"] == 1
    assert _per_symbol(service, "sequence_gaps_total") == dict.fromkeys(SYMBOLS, 0.0)
    status, book = await get_json(service, "/books/bybit/BTCUSDT")
    assert status == 200
    assert book["symbol"] == "BTCUSDT"


async def test_a_break_in_u_resubscribes_only_its_symbol(redis_server, bybit_run):
    """Three symbols on one connection; every 40th book delta of the connection is
    dropped. Each break resubscribes that symbol's book topic, and nothing else: no
    reconnect, the trade topics subscribed once and their trades uninterrupted."""
    run = await bybit_run(Scenario(gap_every=40), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    gaps = _per_symbol(service, "sequence_gaps_total")
    resyncs = _per_symbol(service, "resyncs_total")
    assert sum(gaps.values()) >= 3, gaps
    assert resyncs == gaps  # each break resynced its symbol alone
    subscribed = run.source.subscribed
    for symbol in SYMBOLS:
        assert subscribed[f"orderbook.{DEPTH}.{symbol}"] == 1 + resyncs[symbol], symbol
        assert subscribed[f"publicTrade.{symbol}"] == 1
        assert run.published_trades(symbol) == run.trade_ids(symbol), symbol
    disconnects = metric(service, "ws_disconnects_total", exchange="bybit", symbol="BTCUSDT",
                         stream="ws")  # fmt: skip
    assert disconnects == 0  # a resubscribe, not a reconnect


@pytest.mark.parametrize("knob", ["duplicate_every", "reorder_every"])
async def test_duplicated_or_reordered_deltas_resync_their_symbol(redis_server, bybit_run, knob):
    """One symbol per connection (the default), so the two deltas a reorder swaps are the
    same symbol's: every fault breaks `u` on its connection, resyncing that symbol."""
    run = await bybit_run(Scenario(**{knob: 50}), rate=60)
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=3.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    resyncs = _per_symbol(service, "resyncs_total")
    assert min(resyncs.values()) >= 1, resyncs
    for symbol in SYMBOLS:
        assert run.source.subscribed[f"orderbook.{DEPTH}.{symbol}"] == 1 + resyncs[symbol]


async def test_a_restart_snapshot_replaces_the_book_without_a_resync(redis_server, bybit_run):
    run = await bybit_run(Scenario(restart_every=60), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=3.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    assert _per_symbol(service, "resyncs_total") == dict.fromkeys(SYMBOLS, 0.0)
    assert _per_symbol(service, "sequence_gaps_total") == dict.fromkeys(SYMBOLS, 0.0)
    published_u = [
        run.collector.messages[f"orderbook:bybit:{s}"][-1]["last_update_id"] for s in SYMBOLS
    ]
    true_u = [run.source.topics[(s, DEPTH)].u for s in SYMBOLS]
    assert any(p < t for p, t in zip(published_u, true_u, strict=True))  # ids started over
    for symbol in SYMBOLS:
        assert run.source.subscribed[f"orderbook.{DEPTH}.{symbol}"] == 1


async def test_malformed_frames_are_skipped_and_the_books_go_on(redis_server, bybit_run):
    run = await bybit_run(Scenario(malformed_every=50), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=2.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    skipped = _skipped(service)
    assert skipped.get("bad_json", 0) >= 2, skipped
    assert skipped.get("bad_shape", 0) >= 1, skipped
    assert _per_symbol(service, "resyncs_total") == dict.fromkeys(SYMBOLS, 0.0)
    for symbol in SYMBOLS:
        assert run.published_trades(symbol) == run.trade_ids(symbol), symbol


async def test_a_rejected_symbol_is_on_ready_and_the_others_run(redis_server, bybit_run):
    run = await bybit_run(Scenario(reject_symbols=frozenset({"ETHUSDT"})))
    service = await run.start(redis_server.url, symbols_per_connection=3)

    async def eth_rejected() -> bool:
        if service.http_port is None:
            return False
        status, body = await get_json(service, "/ready")
        problems = body["problems"]
        return any("rejected" in p for p in problems.get("bybit:ETHUSDT", [])) and (
            set(problems) == {"bybit:ETHUSDT"}
        )

    assert await wait_until(eth_rejected, 10.0)
    status, body = await get_json(service, "/ready")
    assert status == 503
    assert (
        "orderbook subscribe failing: rejected: error:handler not found,topic:orderbook.50.ETHUSDT"
        in body["problems"]["bybit:ETHUSDT"]
    )
    labels = {"exchange": "bybit", "symbol": "ETHUSDT", "reason": "rejected"}
    assert metric(service, "subscription_failures_total", channel="orderbook", **labels) >= 1
    # Once Bybit takes it again, it syncs with no restart.
    run.scenario.reject_symbols = frozenset()
    status, body = await run.ready()
    assert status == 200, body


async def test_rejected_first_subscribes_are_retried_until_ready(redis_server, bybit_run):
    run = await bybit_run(Scenario(reject_subscribes=2))
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    failures = sum(
        metric(service, "subscription_failures_total", exchange="bybit", symbol=s,
               channel=c, reason="rejected")
        for s in SYMBOLS for c in ("orderbook", "publicTrade")
    )  # fmt: skip
    assert failures >= 6  # the first request carried all six topics, and was refused


async def test_a_cut_connection_reconnects_and_resyncs(redis_server, bybit_run):
    run = await bybit_run(Scenario(disconnect_every=300), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=3.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    disconnects = metric(service, "ws_disconnects_total", exchange="bybit", symbol="BTCUSDT",
                         stream="ws")  # fmt: skip
    assert disconnects >= 1
    for symbol in SYMBOLS:  # trades during a reconnect are lost, none is repeated
        published = run.published_trades(symbol)
        made = run.trade_ids(symbol)
        assert len(set(published)) == len(published)
        assert [made.index(i) for i in published] == sorted(made.index(i) for i in published)


async def test_bybit_trades_reach_postgres_once_each(redis_server, redis_client, pg, bybit_run):
    """The seed path: simulator -> service -> spool -> `persist` -> the trades table, exactly
    the trades the simulator made, none twice, with Bybit's UUID ids as text."""
    persist = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    run = await bybit_run(rate=80)
    try:
        await run.start(redis_server.url)
        status, body = await run.ready()
        assert status == 200, body
        await run.collector.collect_until(lambda c: False, timeout_s=2.0)
        assert await run.settle()
        expected = {(symbol, i) for symbol in SYMBOLS for i in run.trade_ids(symbol)}
        assert len(expected) > 50
        sides = {  # the taker's side: Bybit's `S`
            (s, trade_id(s, t["a"], "linear")): "sell" if t["m"] else "buy"
            for s in SYMBOLS
            for t in run.source.markets[s].recent_trades
        }

        async def all_stored() -> bool:
            return await row_counts(pg.dsn) == (len(expected), len(expected))

        assert await wait_until(all_stored, 20), await row_counts(pg.dsn)
        conn = await asyncpg.connect(pg.dsn)
        try:
            rows = await conn.fetch("SELECT exchange, symbol, trade_id, price, side FROM trades")
        finally:
            await conn.close()
    finally:
        persist.stop()
        await persist_task
    assert {r["exchange"] for r in rows} == {"bybit"}
    assert {(r["symbol"], r["trade_id"]) for r in rows} == expected
    assert {(r["symbol"], r["trade_id"]): r["side"] for r in rows} == sides
    prices = {r["symbol"]: r["price"] for r in rows}
    assert prices["SOLUSDT"] == prices["SOLUSDT"].quantize(Decimal("0.001"))


async def test_a_bybit_fault_leaves_kraken_beside_it_alone(redis_server, redis_client):
    """Bybit and Kraken from one config against one simulator serving both dialects: a
    break in Bybit's `u` resyncs Bybit symbols, never a Kraken pair."""
    pairs = ("BTC/USD", "ETH/USD")
    sources: dict[str, Any] = {
        "bybit": BybitSource(60, 5, SYMBOLS[:2]),
        "kraken": KrakenSource(60, 5, pairs),
    }
    scenarios = {"bybit": Scenario(gap_every=40), "kraken": Scenario()}
    runner = web.AppRunner(create_sim_app(sources, scenarios), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ws = f"ws://127.0.0.1:{port}"
    config = parse_config(
        {
            "redis_url": redis_server.url,
            "health_port": 0,
            "reconnect": {"initial_delay_s": 0.05, "max_delay_s": 0.5},
            "exchanges": {
                "bybit": {
                    "symbols": list(SYMBOLS[:2]),
                    "depth": DEPTH,
                    "ws_url": f"{ws}/bybit/v5/public/linear",
                },
                "kraken": {"symbols": list(pairs), "ws_url": f"{ws}/kraken/v2", "depth": 25},
            },
            "spool": {"spill_path": os.path.join(tempfile.mkdtemp(), "spool.jsonl")},
        },
        environ={},
    )
    service = Service(config)
    task = asyncio.create_task(service.run())
    try:

        async def bybit_resynced() -> bool:
            return sum(_per_symbol(service, "resyncs_total").values()) >= 2

        assert await wait_until(bybit_resynced, 15.0)
        kraken = {p: metric(service, "resyncs_total", exchange="kraken", symbol=p) for p in pairs}
        assert kraken == dict.fromkeys(pairs, 0.0)
        scenarios["bybit"].enabled = False

        async def ready() -> bool:
            return service.http_port is not None and (await get_json(service, "/ready"))[0] == 200

        assert await wait_until(ready, 10.0)
        _, body = await get_json(service, "/ready")
        assert body["symbols"] == 4
    finally:
        service.stop()
        await task
        for source in sources.values():
            await source.close()
        await runner.cleanup()


async def test_spot_takes_its_topics_ten_at_most_per_request(redis_server, redis_client):
    """Six spot symbols on one connection are twelve topics: the simulator refuses a
    request of more than ten, as Bybit spot does, so the service must split them."""
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "XRPUSDT", "ADAUSDT")
    collector = Collector(redis_client)
    await collector.start()
    run = BybitRun(BybitSource(50, 9, symbols), Scenario(), collector)
    try:
        url = f"ws://127.0.0.1:{run.port}/bybit/v5/public/spot"
        service = await run.start(redis_server.url, symbols=list(symbols), category="spot",
                                  symbols_per_connection=6, ws_url=url)  # fmt: skip
        status, body = await run.ready()
        assert status == 200, body
        assert body["symbols"] == 6
        failures = sum(
            metric(service, "subscription_failures_total", exchange="bybit", symbol=s,
                   channel=c, reason="rejected")
            for s in symbols for c in ("orderbook", "publicTrade")
        )  # fmt: skip
        assert failures == 0

        def traded(c: Collector) -> bool:
            return all(c.messages[f"trades:bybit:{s}"] for s in symbols[:3])

        assert await collector.collect_until(traded, 2.0)
        for symbol in symbols[:3]:
            ids = [t["trade_id"] for t in collector.messages[f"trades:bybit:{symbol}"]]
            assert all(i.isdigit() for i in ids)
            first = int(ids[0]) - int(trade_id(symbol, 0, "spot"))
            assert ids == [trade_id(symbol, n, "spot") for n in range(first, first + len(ids))]
    finally:
        await run.stop()
