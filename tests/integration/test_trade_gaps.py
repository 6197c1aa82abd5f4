"""Trade-stream reconnects lose trades; the service fetches them and the tape stays whole."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import orjson

from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource
from tests.integration.scenario_runner import Collector, metric, start_run

SYMBOLS = ("BTCUSDT", "ETHUSDT")
RECONNECTS = 4  # per symbol


def labels(symbol: str) -> dict[str, str]:
    return {"exchange": "binance_futures", "symbol": symbol}


async def collect_until(collector: Collector, done: Callable[[], bool], timeout_s: float) -> bool:
    """Collect, checking `done` at least every 0.2 s (Collector.collect_until checks it only
    when the channels fall quiet, and trades never do here)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        await collector.collect_until(lambda c: True, timeout_s=0.2)
    return True


async def test_trades_lost_at_reconnects_are_backfilled_in_order(
    redis_server, redis_client, start_sim
):
    scenario = Scenario(disconnect_every=25, disconnect_streams=frozenset({"aggtrade"}))
    run = await start_run(redis_server.url, redis_client, start_sim, scenario, symbols=SYMBOLS)
    service = run.service

    def reconnected() -> bool:
        return all(
            metric(service, "ws_disconnects_total", **labels(s), stream="trades") >= RECONNECTS
            and metric(service, "trades_backfilled_total", **labels(s)) >= 1
            for s in SYMBOLS
        )

    try:
        assert await collect_until(run.collector, reconnected, timeout_s=30), "too few reconnects"
        assert await run.settle(), "books did not reach the simulator's final state"
        markets = run.source.markets

        tape = run.collector.messages

        def caught_up() -> bool:
            return all(
                tape[f"trades:{s}"][-1]["trade_id"] == str(markets[s].trade_id) for s in SYMBOLS
            )

        assert await collect_until(run.collector, caught_up, timeout_s=10)
    finally:
        await run.stop()
    run.assert_trades_complete()  # contiguous by id, each once, through the last trade
    for symbol in SYMBOLS:
        messages = run.collector.messages[f"trades:{symbol}"]
        backfilled = [m for m in messages if m.get("backfilled")]
        assert backfilled, symbol
        assert metric(service, "trades_backfilled_total", **labels(symbol)) == len(backfilled)
        assert metric(service, "trade_gaps_total", **labels(symbol)) >= 1
        assert metric(service, "trades_lost_total", **labels(symbol)) == 0
        assert metric(service, "ws_disconnects_total", **labels(symbol), stream="book") == 0
    assert metric(service, "trade_backfill_requests_total", status="200") >= 2


async def test_simulator_serves_the_trades_it_streamed(start_sim):
    source = GeneratedSource(rate=500, seed=3)
    sim = await start_sim(source)
    async with aiohttp.ClientSession() as session:
        url = f"{sim.url_ws}/market/stream?streams=btcusdt@aggTrade"
        streamed = []
        async with session.ws_connect(url) as ws:
            while len(streamed) < 20:
                streamed.append(orjson.loads((await ws.receive()).data)["data"])
        first = streamed[0]["a"]
        query = f"symbol=BTCUSDT&fromId={first}&limit=20"
        async with session.get(f"{sim.url_http}/fapi/v1/aggTrades?{query}") as response:
            assert response.status == 200
            page = await response.json()
        async with session.get(f"{sim.url_http}/fapi/v1/aggTrades?symbol=BTCUSDT&limit=0") as r:
            assert r.status == 400
    assert page == [{k: t[k] for k in ("a", "p", "q", "f", "l", "T", "m")} for t in streamed]
