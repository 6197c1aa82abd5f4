"""Injected faults: the service notices (a metric moves), recovers, and ends with the
simulator's own book."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from marketdata.sim.scenarios import Scenario
from tests.integration.scenario_runner import get_json, metric, start_run, wait_until

BOTH = ("BTCUSDT", "ETHUSDT")
METRIC_NAMES = (
    "ws_connected", "ws_disconnects_total", "messages_processed_total",
    "messages_error_total", "processing_latency_seconds_bucket", "exchange_lag_seconds_bucket",
    "orderbook_updates_total", "sequence_gaps_total", "resyncs_total",
    "snapshot_requests_total", "trades_processed_total", "redis_publishes_total",
    "redis_errors_total", "publish_latency_seconds_bucket", "book_levels", "book_synced",
)  # fmt: skip
SCENARIOS = {
    "gap": (Scenario(gap_every=60), {}, [("sequence_gaps_total", {"symbol": "BTCUSDT"})]),
    "reorder": (Scenario(reorder_every=70), {}, [("resyncs_total", {"symbol": "ETHUSDT"})]),
    "duplicate": (
        Scenario(duplicate_every=25), {}, [("diffs_dropped_total", {"symbol": "BTCUSDT"})]
    ),
    "disconnect": (
        Scenario(disconnect_every=150), {},
        [("ws_disconnects_total", {"symbol": "BTCUSDT", "stream": "book"})],
    ),
    "silence": (
        Scenario(silence_ms=1500, silence_every=150), {"stale_after_s": 0.5},
        [("messages_error_total", {"reason": "stale_connection"})],
    ),
    "snapshot 500": (
        Scenario(snapshot_status=500, snapshot_failures=2), {},
        [("snapshot_requests_total", {"status": "500"})],
    ),
    "malformed": (
        Scenario(malformed_every=40), {}, [("messages_error_total", {"reason": "bad_json"})]
    ),
    "oversize": (
        Scenario(oversize_every=250), {}, [("messages_error_total", {"reason": "oversize"})]
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario_detected_and_recovered(name, redis_server, redis_client, start_sim):
    scenario, overrides, moved = SCENARIOS[name]
    run = await start_run(redis_server.url, redis_client, start_sim, scenario, **overrides)
    try:
        await run.collector.collect_until(lambda c: False, timeout_s=3.0)
        assert await run.settle(), f"{name}: books did not reach the simulator's final state"
    finally:
        await run.stop()
    for metric_name, labels in moved:
        labels = {"exchange": "binance_futures", **labels} if "symbol" in labels else labels
        assert metric(run.service, metric_name, **labels) >= 1, (name, metric_name)
    run.assert_books_equal_simulator()
    run.assert_trades_complete()  # trades a reconnect missed were fetched
    if name in ("duplicate", "malformed"):  # handled without throwing the book away
        assert (
            metric(run.service, "resyncs_total", exchange="binance_futures", symbol="BTCUSDT") == 0
        )


async def test_429_retry_after_is_honoured(redis_server, redis_client, start_sim):
    scenario = Scenario(snapshot_status=429, snapshot_failures=1, retry_after_s=2)
    run = await start_run(redis_server.url, redis_client, start_sim, scenario, symbols=("BTCUSDT",))
    try:
        await run.collector.collect_until(lambda c: len(scenario.snapshot_log) >= 2, 10)
        assert await run.settle(timeout_s=10)
    finally:
        await run.stop()
    log = scenario.snapshot_log
    assert [status for _, _, status in log[:2]] == [429, 200]
    assert log[1][0] - log[0][0] >= 2.0  # nothing asked before Retry-After had passed
    run.assert_books_equal_simulator()


async def test_418_stops_all_snapshot_requests(redis_server, redis_client, start_sim):
    scenario = Scenario(snapshot_status=418, snapshot_failures=100, retry_after_s=1)
    run = await start_run(redis_server.url, redis_client, start_sim, scenario, symbols=BOTH)
    try:
        await run.started()
        await asyncio.sleep(3.0)
        status, body = await get_json(run.service, "/ready")
    finally:
        await run.stop()
    assert len(scenario.snapshot_log) == 1  # banned: not one more request, for any symbol
    assert status == 503
    assert "book not synced (buffering)" in body["problems"]["binance_futures:ETHUSDT"]


async def test_ready_before_and_after_sync_and_when_silenced(redis_server, redis_client, start_sim):
    scenario = Scenario(
        snapshot_status=429, retry_after_s=2,  # holds every symbol's first sync for 2 s
        silence_ms=4000, silence_every=1200, silence_symbols=frozenset({"ETHUSDT"}),
    )  # fmt: skip
    run = await start_run(redis_server.url, redis_client, start_sim, scenario, stale_after_s=1.0)
    try:
        await run.started()
        status, body = await get_json(run.service, "/ready")
        assert status == 503  # nothing synced yet
        assert set(body["problems"]) >= {"binance_futures:BTCUSDT", "binance_futures:ETHUSDT"}

        async def ready() -> bool:
            return (await get_json(run.service, "/ready"))[0] == 200

        assert await wait_until(ready, 5)
        status, body = await get_json(run.service, "/books/BTCUSDT")
        assert status == 200
        assert len(body["bids"]) == 20

        async def eth_silenced() -> bool:
            status, body = await get_json(run.service, "/ready")
            return status == 503 and list(body["problems"]) == ["binance_futures:ETHUSDT"]

        # ETH goes silent after 1200 frames (about 4 s); the watchdog then reconnects it
        assert await wait_until(eth_silenced, 15), await get_json(run.service, "/ready")
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{run.service.http_port}/metrics"
            async with session.get(url) as response:
                exposition = await response.text()
        for name in METRIC_NAMES:
            assert f"\n{name}" in exposition, name
        status, health = await get_json(run.service, "/health")
        assert status == 200
        assert health["status"] == "ok"
    finally:
        await run.stop()


async def test_redis_outage_service_stays_up_and_recovers(redis_server, redis_client, start_sim):
    run = await start_run(redis_server.url, redis_client, start_sim)

    async def ready_is(code: int) -> bool:
        return (await get_json(run.service, "/ready"))[0] == code

    try:
        await run.started()
        assert await wait_until(lambda: ready_is(200), 10)
        redis_server.stop()
        assert await wait_until(lambda: ready_is(503), 5)
        status, body = await get_json(run.service, "/ready")
        assert "redis" in body["problems"]
        await asyncio.sleep(2.0)  # books keep syncing, trades queue up
        assert not run.task.done()
        assert metric(run.service, "redis_errors_total") >= 1
        redis_server.start()
        await run.collector.pubsub.aclose()
        run.collector = type(run.collector)(redis_client)
        await run.collector.start()
        assert await wait_until(lambda: ready_is(200), 10)
        assert await run.settle()
    finally:
        await run.stop()
    run.assert_books_equal_simulator()


async def test_handover_before_max_age_keeps_the_book(redis_server, redis_client, start_sim):
    run = await start_run(
        redis_server.url, redis_client, start_sim,
        reconnect={"initial_delay_s": 0.05, "max_delay_s": 0.5, "max_connection_age_s": 1.0},
    )  # fmt: skip
    try:
        await run.collector.collect_until(lambda c: False, timeout_s=3.5)
        assert await run.settle()
    finally:
        await run.stop()
    feed = run.service.feed_for("binance_futures", "BTCUSDT")
    assert feed is not None
    assert min(c.handovers for c in feed.connections) >= 2
    for symbol in BOTH:
        labels = {"exchange": "binance_futures", "symbol": symbol}
        assert metric(run.service, "resyncs_total", **labels) == 0  # no gap, no rebuild
        assert metric(run.service, "ws_disconnects_total", stream="book", **labels) == 0
    run.assert_books_equal_simulator()
    run.assert_trades_complete()
