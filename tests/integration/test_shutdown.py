"""SIGTERM mid-stream, on a real `marketdata run` process: exit 0, trades flushed first."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time

import pytest

from marketdata.sim.sources import GeneratedSource
from tests.integration.conftest import write_service_config
from tests.integration.scenario_runner import Collector, start_run, wait_until


async def test_sigterm_flushes_pending_trades_and_exits_0(
    redis_server, redis_client, start_sim, tmp_path
):
    source = GeneratedSource(rate=300, seed=2)
    sim = await start_sim(source)
    config = write_service_config(tmp_path, redis_server.url, sim, ["BTCUSDT"])
    collector = Collector(redis_client)
    await collector.start()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await collector.collect_until(lambda c: len(c.messages["trades:BTCUSDT"]) >= 50, 15)
    # Hold Redis writes so trades pile up unpublished, then ask the service to stop.
    await redis_client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
    await asyncio.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    elapsed = time.monotonic() - started
    await collector.collect_until(lambda c: False, 1.0)
    await collector.close()
    log = stderr.decode()
    assert process.returncode == 0, log
    assert elapsed < 5.0
    published = int(re.search(r"all pending messages published \((\d+) trades", log).group(1))
    ids = [int(m["trade_id"]) for m in collector.messages["trades:BTCUSDT"]]
    assert len(ids) == published  # every trade the service took in reached Redis
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # once each, in order
    assert "Traceback" not in log


async def test_a_crashed_publisher_still_gets_a_full_shutdown(
    redis_server, redis_client, start_sim
):
    """If the publisher task dies, run() ends with its error, but only after shutdown has
    published what was pending and closed the endpoint."""
    run = await start_run(redis_server.url, redis_client, start_sim, rate=300)
    publisher = run.service.publisher

    async def piled_up() -> bool:
        return publisher.pending_trades >= 10

    async def crashing() -> None:
        await wait_until(piled_up, 15)
        raise RuntimeError("publisher bug")

    publisher.run = crashing  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="publisher bug"):
            await asyncio.wait_for(run.task, 30)
        await run.collector.collect_until(lambda c: _trades(c) >= 10, 5)
    finally:
        await run.collector.close()
    assert _trades(run.collector) >= 10  # every one pending when it crashed
    assert publisher.pending_trades == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", run.service.http_port)


def _trades(collector: Collector) -> int:
    return sum(len(m) for channel, m in collector.messages.items() if channel.startswith("trades:"))
