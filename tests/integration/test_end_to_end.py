"""Simulator -> service -> real redis-server, over real loopback WebSockets and HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from marketdata.service import Service
from marketdata.sim.capture import load_capture
from marketdata.sim.sources import GeneratedSource, ReplaySource
from tests.helpers import FUTURES_CAPTURE, captured_trades, expected_books_from_capture
from tests.integration.conftest import service_config
from tests.integration.scenario_runner import Collector

CAPTURE_SYMBOLS = ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]


async def run_service(config: Any) -> tuple[Service, asyncio.Task[None]]:
    service = Service(config)
    return service, asyncio.create_task(service.run())


def assert_tops_agree_with_book_ticker(service: Service, symbols: list[str]) -> None:
    """The venue's own best bid/ask was compared with the book, and never differed."""
    for symbol in symbols:
        labels = {"exchange": "binance_futures", "symbol": symbol}
        checks = service.metrics.registry.get_sample_value("top_of_book_checks_total", labels)
        assert checks, symbol
        mismatches = service.metrics.registry.get_sample_value(
            "top_of_book_mismatches_total", labels
        )
        assert mismatches == 0, symbol


async def test_replayed_capture_reaches_redis_exactly(redis_server, redis_client, start_sim):
    sim = await start_sim(ReplaySource(load_capture(FUTURES_CAPTURE), speed=0))
    expected_books = expected_books_from_capture(FUTURES_CAPTURE, depth=20)
    expected_trades = captured_trades(FUTURES_CAPTURE)
    collector = Collector(redis_client)
    await collector.start()
    service, task = await run_service(service_config(redis_server.url, sim, CAPTURE_SYMBOLS))

    def done(c: Collector) -> bool:
        books_done = all(
            c.messages[f"orderbook:{s}"]
            and c.messages[f"orderbook:{s}"][-1]["last_update_id"]
            == expected_books[s]["last_update_id"]
            for s in CAPTURE_SYMBOLS
        )
        trades = sum(len(c.messages[f"trades:{s}"]) for s in CAPTURE_SYMBOLS)
        return books_done and trades >= sum(map(len, expected_trades.values()))

    try:
        assert await collector.collect_until(done, timeout_s=30), "service did not catch up"
        await collector.collect_until(lambda c: False, timeout_s=0.5)  # anything extra?
        ttl = {s: await redis_client.ttl(f"market_data:{s}") for s in CAPTURE_SYMBOLS}
        spooled = await redis_client.xrange("spool:trades")
        for _ in range(50):  # books are sampled into the spool once a second
            book_samples = await redis_client.xlen("spool:books")
            if book_samples >= len(CAPTURE_SYMBOLS):
                break
            await asyncio.sleep(0.1)
        market_data = await redis_client.get("market_data:SUSHIUSDT")
    finally:
        service.stop()
        await task
        await collector.close()

    for symbol in CAPTURE_SYMBOLS:
        last_book = collector.messages[f"orderbook:{symbol}"][-1]
        expected = expected_books[symbol]
        assert last_book["bids"] == expected["bids"], symbol
        assert last_book["asks"] == expected["asks"], symbol
        assert len(last_book["bids"]) == 20
        assert (last_book["exchange"], last_book["symbol"]) == ("binance_futures", symbol)
        published = collector.messages[f"trades:{symbol}"]
        assert all(type(m["trade_id"]) is str for m in published)  # text on every venue
        trade_ids = [int(m["trade_id"]) for m in published]
        assert trade_ids == expected_trades[symbol], symbol  # each once, in order
        assert 0 < ttl[symbol] <= 300
    spooled_ids = sorted((e[b"symbol"].decode(), int(e[b"trade_id"])) for _, e in spooled)
    assert spooled_ids == sorted((s, i) for s, ids in expected_trades.items() for i in ids)
    assert book_samples >= len(CAPTURE_SYMBOLS)
    data = orjson.loads(market_data)
    final = expected_books["SUSHIUSDT"]
    assert (data["best_bid"], data["best_ask"]) == (final["bids"][0][0], final["asks"][0][0])
    assert data["last_price"] is not None
    assert data["trades_24h"] == len(expected_trades["SUSHIUSDT"])


async def test_generated_market_books_equal_the_simulators(redis_server, redis_client, start_sim):
    source = GeneratedSource(rate=200, seed=3)
    sim = await start_sim(source)
    symbols = ["BTCUSDT", "ETHUSDT"]
    collector = Collector(redis_client)
    await collector.start()
    service, task = await run_service(service_config(redis_server.url, sim, symbols))
    try:
        await collector.collect_until(lambda c: False, timeout_s=2.0)
        source.paused = True
        await asyncio.sleep(0.05)  # let frames in flight arrive

        def caught_up(c: Collector) -> bool:
            return all(
                c.messages[f"orderbook:{s}"]
                and c.messages[f"orderbook:{s}"][-1]["last_update_id"] == source.markets[s].last_id
                for s in symbols
            )

        assert await collector.collect_until(caught_up, timeout_s=10)
    finally:
        service.stop()
        await task
        await collector.close()
    for symbol in symbols:
        market = source.markets[symbol]
        books = collector.messages[f"orderbook:{symbol}"]
        bids, asks = market.top(20)
        assert (books[-1]["bids"], books[-1]["asks"]) == (bids, asks)
        assert len(books) > 10
        trade_ids = [int(m["trade_id"]) for m in collector.messages[f"trades:{symbol}"]]
        assert trade_ids, symbol
        assert trade_ids == list(range(trade_ids[0], market.trade_id + 1))  # none lost or doubled
    assert_tops_agree_with_book_ticker(service, symbols)


async def test_sixty_symbols_all_sync(redis_server, redis_client, start_sim):
    """120 WebSockets plus snapshot requests on one HTTP session: none may starve."""
    symbols = [f"S{i:02d}USDT" for i in range(60)]
    sim = await start_sim(GeneratedSource(rate=5, seed=1, symbols=symbols))
    config = service_config(redis_server.url, sim, symbols)
    collector = Collector(redis_client)
    await collector.start()
    service, task = await run_service(config)

    def all_published(c: Collector) -> bool:
        return all(c.messages[f"orderbook:{s}"] for s in symbols)

    try:
        assert await collector.collect_until(all_published, timeout_s=30)
    finally:
        service.stop()
        await task
        await collector.close()
    failed = service.metrics.registry.get_sample_value(
        "snapshot_requests_total", {"status": "error"}
    )
    assert not failed
