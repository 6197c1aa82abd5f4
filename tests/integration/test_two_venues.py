"""Binance futures and Binance spot in one service, each against its own simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from marketdata.service import Service
from marketdata.sim.capture import load_capture
from marketdata.sim.sources import GeneratedSource, ReplaySource, Source
from marketdata.sim.spot_server import create_spot_app
from tests.helpers import (
    FUTURES_CAPTURE,
    SPOT_CAPTURE,
    ReferenceBook,
    captured_trades,
    expected_books_from_capture,
    free_port,
)
from tests.integration.conftest import SimServer, service_config
from tests.integration.scenario_runner import Collector, get_json, metric

FUTURES_SYMBOLS = ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
SPOT_SYMBOLS = ["BADGERBTC", "FTMUSDT", "SXPBTC", "XMRBTC"]


class SpotSim:
    """The spot dialect of the simulator on a free loopback port."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.port = free_port()
        self.url_ws = f"ws://127.0.0.1:{self.port}"
        self.url_http = f"http://127.0.0.1:{self.port}"
        self._runner = web.AppRunner(create_spot_app(source), access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if isinstance(self.source, GeneratedSource):
            await self.source.close()
        await self._runner.cleanup()


@pytest.fixture
async def start_spot_sim() -> AsyncIterator[Callable[[Source], Awaitable[SpotSim]]]:
    servers: list[SpotSim] = []

    async def start(source: Source) -> SpotSim:
        server = SpotSim(source)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def two_venue_config(
    redis_url: str, futures: SimServer, spot: SpotSim, futures_symbols: list[str],
    spot_symbols: list[str], **spot_keys: Any,
) -> Any:  # fmt: skip
    exchanges = {
        "binance_futures": {
            "symbols": futures_symbols, "ws_url": futures.url_ws, "rest_url": futures.url_http,
        },
        "binance_spot": {
            "symbols": spot_symbols, "ws_url": spot.url_ws, "rest_url": spot.url_http,
            **spot_keys,
        },
    }  # fmt: skip
    return service_config(redis_url, futures, futures_symbols, exchanges=exchanges)


def expected_spot_books(path: Path, depth: int) -> dict[str, dict[str, Any]]:
    """Each symbol's final top-`depth` book by the documented spot rule (drop u <= L; first
    applied U <= L + 1 <= u; then U == previous u + 1), with plain dicts."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    snapshots: dict[str, Any] = {}
    for r in records:
        if r["src"] == "rest":
            symbol = r["url"].split("symbol=")[1].split("&")[0]
            snapshots.setdefault(symbol, orjson.loads(r["raw"]))
    books: dict[str, ReferenceBook] = {}
    last: dict[str, int] = {}
    for r in records:
        if r["src"] != "ws_in" or "depthUpdate" not in r["raw"]:
            continue
        d = orjson.loads(r["raw"])["data"]
        s, snap = d["s"], snapshots[d["s"]]
        if s not in books:
            if d["u"] <= snap["lastUpdateId"]:
                continue
            assert d["U"] <= snap["lastUpdateId"] + 1 <= d["u"], "capture does not bridge"
            books[s] = ReferenceBook(snap["bids"], snap["asks"])
        else:
            assert d["U"] == last[s] + 1, "capture has a gap"
        books[s].apply(d["b"], d["a"])
        last[s] = d["u"]
    return {
        s: {"bids": b.top(depth)[0], "asks": b.top(depth)[1], "last_update_id": last[s]}
        for s, b in books.items()
    }


def channel(exchange: str, kind: str, symbol: str) -> str:
    return f"{kind}:{symbol}" if exchange == "binance_futures" else f"{kind}:{exchange}:{symbol}"


def last_ids_reached(expected: dict[str, dict[str, dict[str, Any]]]) -> Callable[..., bool]:
    def done(c: Collector) -> bool:
        for exchange, books in expected.items():
            for symbol, book in books.items():
                got = c.messages[channel(exchange, "orderbook", symbol)]
                if not got or got[-1]["last_update_id"] != book["last_update_id"]:
                    return False
        return True

    return done


async def test_replayed_futures_and_spot_captures_in_one_service(
    redis_server, redis_client, start_sim, start_spot_sim
):
    futures = await start_sim(ReplaySource(load_capture(FUTURES_CAPTURE), speed=0))
    spot = await start_spot_sim(ReplaySource(load_capture(SPOT_CAPTURE), speed=0))
    expected = {
        "binance_futures": expected_books_from_capture(FUTURES_CAPTURE, depth=20),
        "binance_spot": expected_spot_books(SPOT_CAPTURE, depth=20),
    }
    trades = {
        "binance_futures": captured_trades(FUTURES_CAPTURE),
        "binance_spot": captured_trades(SPOT_CAPTURE),
    }
    # The capture's snapshots hold 5000 levels a side, and diffs add more outside them.
    config = two_venue_config(
        redis_server.url, futures, spot, FUTURES_SYMBOLS, SPOT_SYMBOLS,
        snapshot_limit=5000, max_levels_per_side=20_000,
    )  # fmt: skip
    collector = Collector(redis_client)
    await collector.start()
    service = Service(config)
    task = asyncio.create_task(service.run())
    try:
        assert await collector.collect_until(last_ids_reached(expected), timeout_s=30)
        trade_count = sum(len(ids) for venue in trades.values() for ids in venue.values())

        def all_trades(c: Collector) -> bool:
            return sum(len(v) for k, v in c.messages.items() if k.startswith("trades:")) >= (
                trade_count
            )

        assert await collector.collect_until(all_trades, timeout_s=10)
        await collector.collect_until(lambda c: False, timeout_s=0.5)  # anything extra?
        ready_status, ready = await get_json(service, "/ready")
    finally:
        service.stop()
        await task
        await collector.close()
    assert ready_status == 200, ready
    for exchange, books in expected.items():
        for symbol, book in books.items():
            last = collector.messages[channel(exchange, "orderbook", symbol)][-1]
            assert (last["bids"], last["asks"]) == (book["bids"], book["asks"]), symbol
            assert (last["exchange"], last["symbol"]) == (exchange, symbol)
            got = [
                int(m["trade_id"]) for m in collector.messages[channel(exchange, "trades", symbol)]
            ]
            assert got == trades[exchange].get(symbol, []), (exchange, symbol)
    for symbol in SPOT_SYMBOLS:
        labels = {"exchange": "binance_spot", "symbol": symbol}
        # Replayed at full speed, most frames come before the snapshot: few tops are judged.
        assert metric(service, "top_of_book_mismatches_total", **labels) == 0, symbol
        assert metric(service, "sequence_gaps_total", **labels) == 0, symbol


async def test_generated_markets_on_both_venues_equal_their_simulators(
    redis_server, redis_client, start_sim, start_spot_sim
):
    futures_source = GeneratedSource(rate=200, seed=3)
    spot_source = GeneratedSource(rate=200, seed=5, consecutive_ids=True)
    futures = await start_sim(futures_source)
    spot = await start_spot_sim(spot_source)
    symbols = {"binance_futures": ["BTCUSDT"], "binance_spot": ["BTCUSDT", "ETHUSDT"]}
    sources = {"binance_futures": futures_source, "binance_spot": spot_source}
    config = two_venue_config(
        redis_server.url, futures, spot, symbols["binance_futures"], symbols["binance_spot"]
    )
    collector = Collector(redis_client)
    await collector.start()
    service = Service(config)
    task = asyncio.create_task(service.run())
    try:
        await collector.collect_until(lambda c: False, timeout_s=2.0)
        futures_source.paused = spot_source.paused = True
        expected = {
            venue: {s: {"last_update_id": sources[venue].markets[s].last_id} for s in names}
            for venue, names in symbols.items()
        }
        assert await collector.collect_until(last_ids_reached(expected), timeout_s=10)
        ready_status, ready = await get_json(service, "/ready")
    finally:
        service.stop()
        await task
        await collector.close()
    assert ready_status == 200, ready
    for venue, names in symbols.items():
        for symbol in names:
            market = sources[venue].markets[symbol]
            books = collector.messages[channel(venue, "orderbook", symbol)]
            assert (books[-1]["bids"], books[-1]["asks"]) == market.top(20), (venue, symbol)
            assert books[-1]["exchange"] == venue
            ids = [int(m["trade_id"]) for m in collector.messages[channel(venue, "trades", symbol)]]
            assert ids, (venue, symbol)
            assert ids == list(range(ids[0], market.trade_id + 1)), (venue, symbol)
            labels = {"exchange": venue, "symbol": symbol}
            assert metric(service, "top_of_book_checks_total", **labels) > 0
            assert metric(service, "top_of_book_mismatches_total", **labels) == 0
            assert metric(service, "sequence_gaps_total", **labels) == 0
