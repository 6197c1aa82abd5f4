"""OKX through the real service against the simulator's OKX v5 dialect: books exact by
their seqId chain and checksums, a break resyncs only its instrument, rejected subscribes
are on /ready and retried, the 64008 upgrade notice is handed over with no book out of
sync, `snapshot: rest` builds the books from REST snapshots, trades once each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from marketdata.service import Service
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.scenarios import Scenario
from tests.integration.persist_helpers import persist_config, row_counts, run_persist
from tests.integration.scenario_runner import Collector, get_json, metric, wait_until
from tests.integration.sim_venue_run import SimVenueRun

INSTS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
FIRST_TRADE_ID = 10_000_001  # the simulator's markets number trades from here


class OkxRun(SimVenueRun):
    venue = "okx"
    path = "/okx/ws/v5/public"

    def __init__(self, source: OkxSource, scenario: Scenario, collector: Collector) -> None:
        super().__init__(source, scenario, collector, {"symbols": list(INSTS),
                                                       "subscribe_timeout_s": 2.0})  # fmt: skip

    def trade_ids(self, inst: str) -> list[int]:
        return [int(t["trade_id"]) for t in self.collector.messages[f"trades:okx:{inst}"]]

    def made(self, inst: str) -> list[int]:
        """The ids of every trade the simulator made for `inst`."""
        return list(range(FIRST_TRADE_ID, self.source.markets[inst].trade_id + 1))


def _sum(service: Service, name: str) -> float:
    return sum(metric(service, name, exchange="okx", symbol=inst) for inst in INSTS)


@pytest.fixture
async def okx_run(redis_client: Any) -> AsyncIterator[Any]:
    runs: list[OkxRun] = []

    async def start(
        scenario: Scenario | None = None, rate: float = 50, checksums: bool = True
    ) -> OkxRun:
        collector = Collector(redis_client)
        await collector.start()
        source = OkxSource(rate, seed=7, symbols=INSTS, checksums=checksums)
        run = OkxRun(source, scenario or Scenario(), collector)
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.stop()


async def test_books_follow_the_simulator_and_trades_arrive_once(redis_server, okx_run):
    run = await okx_run()
    service = await run.start(redis_server.url, top_of_book="bbo-tbt")
    status, body = await run.ready()
    assert status == 200, body
    assert body["symbols"] == 3
    await run.collector.collect_until(lambda c: False, timeout_s=2.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    for inst in INSTS:
        last = run.collector.messages[f"orderbook:okx:{inst}"][-1]
        assert (last["exchange"], last["symbol"]) == ("okx", inst)
        assert last["last_update_id"] == run.source.seq[inst]  # exact at the last seqId
        # Trades: every one the simulator made, once, in order, ids as text.
        assert run.trade_ids(inst) == run.made(inst), inst
        assert all(type(t["trade_id"]) is str for t in run.collector.messages[f"trades:okx:{inst}"])
        for name in ("checksum_mismatches_total", "sequence_gaps_total", "resyncs_total"):
            assert metric(service, name, exchange="okx", symbol=inst) == 0, (name, inst)
    assert metric(service, "messages_processed_total", type="bbo") > 0


@pytest.mark.parametrize(
    ("scenario", "checksums", "counter"),
    [
        (Scenario(gap_every=50), True, "sequence_gaps_total"),
        (Scenario(checksum_corrupt_every=50), True, "checksum_mismatches_total"),
        (Scenario(checksum_corrupt_every=50), False, "sequence_gaps_total"),
    ],
    ids=["gap", "checksum", "chain-without-checksums"],
)
async def test_a_break_resyncs_only_its_instrument(
    redis_server, okx_run, scenario, checksums, counter
):
    """Three instruments on one connection; every 50th books update of the connection is
    dropped or fails its check. OKX's seqId is per instrument: each break resubscribes
    its own instrument's books and nothing else."""
    run = await okx_run(scenario, rate=60, checksums=checksums)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    breaks = {i: metric(service, counter, exchange="okx", symbol=i) for i in INSTS}
    resyncs = {i: metric(service, "resyncs_total", exchange="okx", symbol=i) for i in INSTS}
    assert sum(breaks.values()) >= 3, breaks
    assert resyncs == breaks  # each break resynced its instrument alone
    for inst in INSTS:  # and the trades never paused or doubled
        assert run.trade_ids(inst) == run.made(inst), inst
    disconnects = metric(service, "ws_disconnects_total", exchange="okx", symbol="BTC-USDT",
                         stream="ws")  # fmt: skip
    assert disconnects == 0  # a resubscribe, not a reconnect


async def test_cut_connections_reconnect_and_resync(redis_server, okx_run):
    """Every 400th frame the simulator closes the connection: the service reconnects,
    subscribes again and its books come back to the simulator's. OKX has no trade
    history on the socket, so trades made while it was away are missing, never doubled."""
    run = await okx_run(Scenario(disconnect_every=400), rate=60)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    disconnects = metric(service, "ws_disconnects_total", exchange="okx", symbol="BTC-USDT",
                         stream="ws")  # fmt: skip
    assert disconnects >= 2
    for inst in INSTS:
        ids = run.trade_ids(inst)
        assert ids == sorted(set(ids)), inst  # in order, none twice
        assert set(ids) <= set(run.made(inst))
    status, body = await get_json(service, "/ready")
    assert status == 200, body


async def test_a_rejected_instrument_is_on_ready_and_the_others_run(redis_server, okx_run):
    run = await okx_run(Scenario(reject_symbols=frozenset({"ETH-USDT"})))
    service = await run.start(redis_server.url)

    async def eth_rejected() -> bool:
        if service.http_port is None:
            return False
        _, body = await get_json(service, "/ready")
        return any("rejected" in p for p in body["problems"].get("okx:ETH-USDT", []))

    assert await wait_until(eth_rejected, 10.0)
    status, body = await get_json(service, "/ready")
    assert status == 503
    assert set(body["problems"]) == {"okx:ETH-USDT"}, body
    assert any(
        p.startswith("books subscribe failing: rejected: 60018 ")
        for p in body["problems"]["okx:ETH-USDT"]
    ), body
    labels = {"exchange": "okx", "symbol": "ETH-USDT", "channel": "books", "reason": "rejected"}
    assert metric(service, "subscription_failures_total", **labels) >= 1
    # Once OKX takes it again, it syncs with no restart.
    run.scenario.reject_symbols = frozenset()
    status, body = await run.ready()
    assert status == 200, body


async def test_rejected_first_subscribes_are_retried_until_ready(redis_server, okx_run):
    run = await okx_run(Scenario(reject_subscribes=2))
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    failures = sum(
        metric(service, "subscription_failures_total", exchange="okx", symbol=i,
               channel=c, reason="rejected")
        for i in INSTS
        for c in ("books", "trades")
    )  # fmt: skip
    assert failures >= 6  # the first request (every channel of every instrument) was refused


async def test_an_upgrade_notice_hands_over_with_no_book_out_of_sync(redis_server, okx_run, caplog):
    """OKX announces a cut with 64008; the simulator closes the connection 1.5 s later.
    The service opens a successor and switches to it once its books are synced, before
    the old connection goes: no book is ever reported out of sync."""
    caplog.set_level(logging.INFO, logger="marketdata.venues.okx.feed")
    scenario = Scenario(upgrade_notice_after_s=1.5, upgrade_close_s=1.5)
    run = await okx_run(scenario)
    service = await run.start(redis_server.url, symbols_per_connection=3)
    status, body = await run.ready()
    assert status == 200, body
    unsynced: list[str] = []

    async def watch() -> None:
        while True:
            for inst in INSTS:
                if metric(service, "book_synced", exchange="okx", symbol=inst) != 1:
                    unsynced.append(inst)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        # Two notices: the first connection's and its successor's.
        await run.collector.collect_until(lambda c: False, timeout_s=5.0)
    finally:
        watcher.cancel()
    assert unsynced == []
    handovers = [r for r in caplog.records if "handed over to the new connection" in r.message]
    assert len(handovers) >= 2, [r.message for r in caplog.records]
    disconnects = sum(
        metric(service, "ws_disconnects_total", exchange="okx", symbol=i, stream="ws")
        for i in INSTS
    )
    assert disconnects == 0  # the active connection was never lost
    assert await run.settle()
    for inst in INSTS:
        assert run.trade_ids(inst) == run.made(inst), inst
    status, _ = await get_json(service, "/ready")
    assert status == 200


async def test_rest_snapshots_build_the_books(redis_server, redis_client, okx_run):
    """`snapshot: rest`: updates are buffered and bridged onto REST snapshots with seqId;
    a gap fetches a new one for its instrument. The requests are counted in the budget
    shared through Redis by every process behind the IP."""
    run = await okx_run(Scenario(gap_every=41), rate=60, checksums=False)
    shared = {"rest_budget": {"shared": True, "ip_label": "okx-test"}}
    seen: list[int] = []  # the shared count's TTL, each time it was found

    async def watch_budget() -> None:
        while True:
            if await redis_client.hget("rest_budget:okx:okx-test", "used") is not None:
                seen.append(await redis_client.pttl("rest_budget:okx:okx-test"))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_budget())
    try:
        service = await run.start(
            redis_server.url, settings=shared, snapshot="rest", symbols_per_connection=3
        )
        status, body = await run.ready()
    finally:
        watcher.cancel()
    assert status == 200, body
    assert seen, "the snapshots were not counted in the shared budget"
    assert 0 < max(seen) <= 4_000  # OKX's limit is per 2 s: its window's key lives 2 of them
    await run.collector.collect_until(lambda c: False, timeout_s=3.0)
    assert await run.settle(), "books did not reach the simulator's final state"
    requests = metric(service, "snapshot_requests_total", status="200")
    gaps = _sum(service, "sequence_gaps_total")
    assert gaps >= 2
    for inst in INSTS:  # each gap refetched its own instrument's snapshot alone
        labels = {"exchange": "okx", "symbol": inst}
        assert metric(service, "resyncs_total", **labels) == metric(
            service, "sequence_gaps_total", **labels
        )
    assert requests >= len(INSTS) + gaps  # one per instrument, then one per gap
    for inst in INSTS:
        assert run.trade_ids(inst) == run.made(inst), inst


async def test_okx_trades_reach_postgres_once_each(redis_server, redis_client, pg, okx_run):
    """The seed path: simulator -> service -> spool -> `persist` -> the trades table, exactly
    the trades the simulator made, none twice, with OKX's ids as text."""
    persist = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    persist_task = await run_persist(persist)
    run = await okx_run(rate=80)
    try:
        await run.start(redis_server.url)
        status, body = await run.ready()
        assert status == 200, body
        await run.collector.collect_until(lambda c: False, timeout_s=2.0)
        assert await run.settle()
        expected = {(inst, str(i)) for inst in INSTS for i in run.made(inst)}
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
    assert {r["exchange"] for r in rows} == {"okx"}
    assert {(r["symbol"], r["trade_id"]) for r in rows} == expected
    prices = {r["symbol"]: r["price"] for r in rows}
    assert prices["BTC-USDT"] == prices["BTC-USDT"].quantize(Decimal("0.1"))  # OKX's tick
