"""`marketdata persist` says what is wrong: a failing sink is logged at once with its cause,
reminded while it lasts, its recovery logged; and it stops at once on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

import pytest
import yaml

from marketdata import outage
from marketdata.persist.service import PersistService
from marketdata.persist.timescale import TimescaleSink
from tests.helpers import free_port
from tests.integration.persist_helpers import (
    health,
    persist_config,
    row_counts,
    run_persist,
    spool_trades,
)
from tests.integration.scenario_runner import wait_until


async def test_subprocess_with_postgres_down_says_so_and_stops_on_sigterm(
    redis_server, redis_client, tmp_path
):
    config = tmp_path / "config.yaml"
    dsn = f"postgresql://marketdata@127.0.0.1:{free_port()}/marketdata"  # nobody listens
    config.write_text(yaml.safe_dump({
        "redis_url": redis_server.url,
        "persist": {"health_port": 0, "timescale": {"dsn": dsn}},
        "exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}},
    }))  # fmt: skip
    await spool_trades(redis_client, 0, 10)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "persist", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    log = b""
    try:
        while b"marketdata persist" not in log:
            log += await asyncio.wait_for(process.stderr.readline(), 30)
        started = time.monotonic()
        while b"ERROR" not in log:
            line = await asyncio.wait_for(process.stderr.readline(), 1.0)
            assert line, log.decode()
            log += line
        assert time.monotonic() - started < 1.0
        assert b"Connect call failed" in log  # the cause
    finally:
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        stderr = await asyncio.wait_for(process.stderr.read(), 10)
        await process.wait()
        stopped_in = time.monotonic() - sent
    log += stderr
    assert process.returncode == 0, log.decode()
    assert stopped_in < 2.0, log.decode()
    assert b"Traceback" not in log, log.decode()
    assert log.count(b"ERROR") == 1, log.decode()  # no storm
    (group,) = await redis_client.xinfo_groups("spool:trades")
    assert group["pending"] + group["lag"] == 10  # nothing acknowledged


@pytest.fixture
def quick_reminders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage, "REMINDER_INTERVAL_S", 0.5)


async def test_outage_logged_once_reminded_and_its_end_logged(
    redis_server, redis_client, pg, caplog, quick_reminders
):
    caplog.set_level(logging.INFO, "marketdata.persist")
    pg.stop()
    service = PersistService(persist_config(redis_server.url, pg.dsn), [TimescaleSink(pg.dsn)])
    task = await run_persist(service)
    try:
        await spool_trades(redis_client, 0, 100)

        async def reminded() -> bool:
            return any("still failing after" in r.getMessage() for r in caplog.records)

        assert await wait_until(reminded, 10)
        assert (await health(service.http_port))[0] == 503
        pg.start()

        async def stored() -> bool:
            return await row_counts(pg.dsn) == (100, 100)

        assert await wait_until(stored, 20)
    finally:
        service.stop()
        await task
    sink_lines = [
        r for r in caplog.records
        if r.name.endswith("worker") and r.getMessage().startswith("timescale sink")
    ]  # fmt: skip
    first, *reminders, last = sink_lines
    assert first.levelno == logging.ERROR
    assert "failing, retrying: start: postgresql unreachable" in first.getMessage()
    assert reminders
    assert all("still failing after" in r.getMessage() for r in reminders)
    assert last.levelno == logging.INFO
    assert "recovered after" in last.getMessage()
    assert "failed attempts" in last.getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback walls
