"""Every venue from one config, against one simulator process serving every dialect. A
fault on one venue resyncs that venue's symbols only."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from marketdata.config import parse_config
from marketdata.service import Service
from marketdata.sim.app import create_sim_app
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource
from tests.helpers import free_port
from tests.integration.scenario_runner import Collector, get_json, metric, wait_until

SYMBOLS = {
    "binance_futures": ["BTCUSDT", "ETHUSDT"],
    "binance_spot": ["BTCUSDT", "SOLUSDT"],
    "kraken": ["BTC/USD", "ETH/USD"],
    "okx": ["BTC-USDT", "ETH-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "bybit": ["BTCUSDT", "ETHUSDT"],
}
THREE = ("binance_futures", "binance_spot", "kraken")
ALL = tuple(SYMBOLS)


def _source(venue: str) -> Any:
    symbols = SYMBOLS[venue]
    return {
        "binance_futures": lambda: GeneratedSource(100, 3, symbols),
        "binance_spot": lambda: GeneratedSource(100, 4, symbols, consecutive_ids=True),
        "kraken": lambda: KrakenSource(60, 5, symbols),
        "okx": lambda: OkxSource(60, 6, symbols),
        "coinbase": lambda: CoinbaseSource(60, 7, symbols),
        "bybit": lambda: BybitSource(60, 8, symbols),
    }[venue]()


def _section(venue: str, port: int) -> dict[str, Any]:
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    section: dict[str, Any] = {"symbols": SYMBOLS[venue], "rest_url": http}
    section["ws_url"] = {"kraken": f"{ws}/kraken/v2", "okx": f"{ws}/okx/ws/v5/public",
                         "coinbase": f"{ws}/coinbase",
                         "bybit": f"{ws}/bybit/v5/public/linear"}.get(venue, ws)  # fmt: skip
    if venue == "kraken":
        section["depth"] = 25
    return section


def channel(venue: str, kind: str, symbol: str) -> str:
    return f"{kind}:{symbol}" if venue == "binance_futures" else f"{kind}:{venue}:{symbol}"


class Venues:
    def __init__(
        self,
        venues: tuple[str, ...],
        scenarios: dict[str, Scenario],
        collector: Collector,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.venues = venues
        self.options = options or {}  # venue -> config keys added to its section
        self.sources: dict[str, Any] = {venue: _source(venue) for venue in venues}
        self.scenarios = {v: scenarios.get(v, Scenario()) for v in venues}
        self.collector = collector
        self.port = free_port()
        app = create_sim_app(self.sources, self.scenarios)
        self.runner = web.AppRunner(app, access_log=None)
        self.service: Service | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, redis_url: str) -> Service:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        exchanges = {
            venue: _section(venue, self.port) | self.options.get(venue, {}) for venue in self.venues
        }
        config = parse_config(
            {
                "redis_url": redis_url,
                "health_port": 0,
                "publish_interval_ms": 20,
                "reconnect": {"initial_delay_s": 0.05, "max_delay_s": 0.5},
                "exchanges": exchanges,
                "spool": {"spill_path": os.path.join(tempfile.mkdtemp(), "spool.jsonl")},
            },
            environ={},
        )
        self.service = Service(config)
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def settle(self) -> bool:
        for scenario in self.scenarios.values():
            scenario.enabled = False
        await asyncio.sleep(0.5)
        for source in self.sources.values():
            source.paused = True
        await asyncio.sleep(0.2)

        def caught_up(c: Collector) -> bool:
            return all(
                self._published_top(c, venue, s) == self._sim_top(venue, s)
                for venue in self.venues
                for s in SYMBOLS[venue]
            )

        return await self.collector.collect_until(caught_up, 20.0)

    def _published_top(self, c: Collector, venue: str, symbol: str) -> Any:
        books = c.messages[channel(venue, "orderbook", symbol)]
        if not books:
            return None
        return _values(books[-1]["bids"][:10], books[-1]["asks"][:10])

    def _sim_top(self, venue: str, symbol: str) -> Any:
        return _values(*self.sources[venue].markets[symbol].top(10))

    async def stop(self) -> None:
        if self.service is not None and self.task is not None:
            self.service.stop()
            await self.task
        await self.collector.close()
        for source in self.sources.values():
            await source.close()
        await self.runner.cleanup()


def _values(bids: list[list[str]], asks: list[list[str]]) -> Any:
    return [[(Decimal(p), Decimal(q)) for p, q in side] for side in (bids, asks)]


@pytest.fixture
async def venues_run(redis_client: Any) -> AsyncIterator[Any]:
    runs: list[Venues] = []

    async def start(
        scenarios: dict[str, Scenario] | None = None,
        venues: tuple[str, ...] = THREE,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> Venues:
        collector = Collector(redis_client)
        await collector.start()
        run = Venues(venues, scenarios or {}, collector, options)
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.stop()


async def test_every_venue_runs_together_from_one_config(redis_server, venues_run):
    run = await venues_run(venues=ALL)
    service = await run.start(redis_server.url)

    async def ready() -> bool:
        return service.http_port is not None and (await get_json(service, "/ready"))[0] == 200

    assert await wait_until(ready, 20), await get_json(service, "/ready")
    status, body = await get_json(service, "/ready")
    assert body["symbols"] == sum(len(SYMBOLS[v]) for v in ALL)
    await run.collector.collect_until(lambda c: False, timeout_s=1.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    for venue, symbols in SYMBOLS.items():
        for symbol in symbols:
            book = run.collector.messages[channel(venue, "orderbook", symbol)][-1]
            assert (book["exchange"], book["symbol"]) == (venue, symbol)
            trades = run.collector.messages[channel(venue, "trades", symbol)]
            assert trades, (venue, symbol)
            texts = [t["trade_id"] for t in trades]
            assert len(set(texts)) == len(texts), (venue, symbol)  # none twice
            if all(text.isdigit() for text in texts):  # a counter: none missing either
                ids = [int(text) for text in texts]
                assert ids == list(range(ids[0], ids[0] + len(ids))), (venue, symbol)


# One fault per venue, caught by its own check: Binance's id chains, Kraken's checksums,
# OKX's seqId chain, Coinbase's connection sequence, Bybit's u chain.
FAULTS = {  # fresh for each test: a run turns its scenario off to settle
    "binance_futures": lambda: Scenario(gap_every=30),
    "binance_spot": lambda: Scenario(gap_every=30),
    "kraken": lambda: Scenario(checksum_corrupt_every=30),
    "okx": lambda: Scenario(gap_every=30),
    "coinbase": lambda: Scenario(gap_every=30),
    "bybit": lambda: Scenario(gap_every=30),
}


@pytest.mark.parametrize("faulty", list(FAULTS))
async def test_a_fault_on_one_venue_resyncs_that_venues_symbols_only(
    faulty: str, redis_server: Any, venues_run: Any
) -> None:
    run = await venues_run({faulty: FAULTS[faulty]()}, venues=ALL)
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    for venue in ALL:
        for symbol in SYMBOLS[venue]:
            resyncs = metric(service, "resyncs_total", exchange=venue, symbol=symbol)
            if venue == faulty:
                assert resyncs >= 1, (venue, symbol)
            else:
                assert resyncs == 0, (venue, symbol)
