"""`marketdata run --workers 2` as a real process tree against the simulator and Redis:
each symbol published by exactly one worker, one endpoint for all, a killed worker restarted
without pausing the other, and SIGTERM stopping every worker cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from marketdata.config import parse_config
from marketdata.service import Service
from marketdata.shard import Shard, shard_config, shard_of
from marketdata.sim.sources import GeneratedSource
from tests.helpers import free_port
from tests.integration.conftest import write_service_config
from tests.integration.scenario_runner import get_json, wait_until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"]
OWNER = {s: shard_of("binance_futures", s, 2) for s in SYMBOLS}
MAX_GAP_S = 1.0


class Supervised:
    """A `marketdata run --workers 2` process; its stderr read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}") as response:
                return response.status, await response.text()

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}") as response:
                return response.status, await response.json()

    async def ready(self) -> bool:
        try:
            return (await self.get("/ready"))[0] == 200
        except aiohttp.ClientError:
            return False

    async def exited(self, timeout_s: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout_s)
        await self._reader
        return code

    async def stop(self, timeout_s: float = 15.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.exited(timeout_s)


class Arrivals:
    """When each orderbook message arrived, per symbol, from a Redis subscriber."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.pubsub = client.pubsub()
        self.times: dict[str, list[float]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe("orderbook:*")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                symbol = message["channel"].decode().removeprefix("orderbook:")
                self.times[symbol].append(time.monotonic())

    def since(self, symbol: str, start: float) -> list[float]:
        return [t for t in self.times[symbol] if t >= start]

    async def close(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.pubsub.aclose()


async def _start(tmp_path: Path, redis_url: str, start_sim: Any) -> Supervised:
    assert set(OWNER.values()) == {0, 1}, "both workers need symbols for these tests"
    sim = await start_sim(GeneratedSource(rate=40, seed=5, symbols=SYMBOLS))
    port = free_port()
    config = write_service_config(
        tmp_path, redis_url, sim, SYMBOLS, health_port=port, publish_interval_ms=50
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "run", "--config", str(config), "--workers", "2",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    supervised = Supervised(process, port)
    if not await wait_until(supervised.ready, 20):
        await supervised.stop()
        pytest.fail(f"never ready through the supervisor:\n{supervised.log}")
    return supervised


def _updated_symbols(metrics_text: str) -> dict[str, set[str]]:
    """worker -> the symbols its orderbook_updates_total counted."""
    found: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "orderbook_updates":
            for sample in family.samples:
                if sample.value > 0:
                    found[sample.labels["worker"]].add(sample.labels["symbol"])
    return found


async def _promtool_check(text: str) -> tuple[int, str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    process = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate(text.encode())
    return process.returncode or 0, output.decode()


async def test_two_workers_split_the_symbols_behind_one_endpoint_and_stop_cleanly(
    redis_server, redis_client, start_sim, tmp_path
):
    arrivals = Arrivals(redis_client)
    await arrivals.start()
    run = await _start(tmp_path, redis_server.url, start_sim)
    try:

        async def all_published() -> bool:
            return all(arrivals.times[s] for s in SYMBOLS)

        assert await wait_until(all_published, 10), dict(arrivals.times)
        status, text = await run.get("/metrics")
        assert status == 200
        code, complaints = await _promtool_check(text)
        assert code == 0, complaints
        by_worker = _updated_symbols(text)
        assert set(by_worker) == {"0", "1"}
        assert by_worker["0"] | by_worker["1"] == set(SYMBOLS)
        assert by_worker["0"] & by_worker["1"] == set()
        assert by_worker["0"] == {s for s, k in OWNER.items() if k == 0}
        assert 'workers_up{worker="1"} 1.0' in text
        status, health = await run.get_json("/health")
        assert [w["state"] for w in health["workers"]] == ["running", "running"]
        assert len({w["port"] for w in health["workers"]} | {run.port}) == 3
        status, ready = await run.get_json("/ready")
        assert (status, ready["symbols"]) == (200, 6)
        one = next(s for s, k in OWNER.items() if k == 1)
        status, book = await run.get_json(f"/books/{one}")
        assert (status, book["symbol"]) == (200, one)
        # Both workers fetched snapshots through one REST budget in Redis (one host, one IP).
        used = await redis_client.hget("rest_budget:binance_futures:default", "used")
        assert used is not None
        assert int(used) > 0, used  # (the minute may have turned since the snapshots)
    finally:
        code = await run.stop()
        await arrivals.close()
    log = run.log
    assert code == 0, log
    for k in (0, 1):
        assert f"[worker-{k}] " in log
        published = [line for line in run.lines if "all pending messages published" in line]
        assert [line for line in published if line.startswith(f"[worker-{k}] ")], log
        assert re.search(rf"worker-{k} \(pid \d+\) stopped: exit code 0", log), log
    assert "Traceback" not in log


async def test_a_killed_worker_comes_back_and_the_other_never_pauses(
    redis_server, redis_client, start_sim, tmp_path
):
    arrivals = Arrivals(redis_client)
    await arrivals.start()
    run = await _start(tmp_path, redis_server.url, start_sim)
    try:

        async def all_publishing() -> bool:  # ready is not yet a book seen by the subscriber
            return all(len(arrivals.times[s]) >= 2 for s in SYMBOLS)

        assert await wait_until(all_publishing, 10), dict(arrivals.times)
        _, health = await run.get_json("/health")
        victim = health["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        last: list[Any] = []

        async def reports_worker_0_down() -> bool:
            status, body = await run.get_json("/ready")
            last[:] = [body]
            return status == 503 and "worker-0" in body["problems"]

        assert await wait_until(reports_worker_0_down, 5), last
        assert await wait_until(run.ready, 20), run.log
        back_at = time.monotonic()
        _, health = await run.get_json("/health")
        worker = health["workers"][0]
        assert worker["restarts"] == 1
        assert worker["pid"] != victim["pid"]
        assert worker["last_exit"] == "killed by SIGKILL"
        mine = [s for s, k in OWNER.items() if k == 0]
        others = [s for s, k in OWNER.items() if k == 1]

        async def republished() -> bool:
            return all(arrivals.since(s, back_at) for s in mine)

        assert await wait_until(republished, 10)
        for symbol in others:
            times = [t for t in arrivals.times[symbol] if t <= back_at]
            window = [t for t in times if t >= killed_at - MAX_GAP_S]
            gaps = [b - a for a, b in zip(window, window[1:], strict=False)]
            assert window, symbol
            assert window[0] < killed_at
            assert window[-1] > back_at - MAX_GAP_S
            assert max(gaps) < MAX_GAP_S, (symbol, max(gaps))
        # The kill did stop the victim's symbols for a while (this test can tell a pause).
        for symbol in mine:
            times = arrivals.times[symbol]
            # Every interval that ends after the kill, so the one spanning it counts even
            # when a loaded machine held the last arrival before it for over a second.
            gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > killed_at]
            assert max(gaps) > 0.3, symbol
        assert re.search(
            r"worker-0 \(pid \d+, shard 0/2\) died after .*: killed by SIGKILL", run.log
        )
        assert "worker-0 is back" in run.log
    finally:
        await run.stop()
        await arrivals.close()


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
async def test_an_empty_shard_starts_and_its_ready_reflects_redis(
    redis_server, redis_client, tmp_path, redis_up
):
    url = redis_server.url if redis_up else f"redis://127.0.0.1:{free_port()}/0"
    raw = {
        "redis_url": url,
        "health_port": 0,
        "spool": {"enabled": redis_up, "spill_path": str(tmp_path / "spill.jsonl")},
        "exchanges": {"binance_futures": {"symbols": ["ETHUSDT"]}},
    }
    config = parse_config(raw, environ={})
    empty = next(k for k in range(4) if shard_of("binance_futures", "ETHUSDT", 4) != k)
    service = Service(shard_config(config, Shard(empty, 4)))
    task = asyncio.create_task(service.run())
    expected = 200 if redis_up else 503
    last: list[Any] = []
    try:

        async def answers() -> bool:
            if service.http_port is None:
                return False
            status, body = await get_json(service, "/ready")
            last[:] = [body]
            return status == expected

        assert await wait_until(answers, 10), last
        assert last[0]["symbols"] == 0
        assert list(last[0]["problems"]) == ([] if redis_up else ["redis"])
    finally:
        service.stop()
        await task


async def test_a_worker_with_a_config_error_is_not_restarted_and_the_supervisor_exits_2(
    redis_server, redis_client, start_sim, tmp_path
):
    sim = await start_sim(GeneratedSource(rate=10, seed=5, symbols=SYMBOLS))
    config = write_service_config(
        tmp_path, redis_server.url, sim, [*SYMBOLS, "NOPEUSDT"], health_port=free_port()
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "run", "--config", str(config), "--workers", "2",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    run = Supervised(process, 0)
    code = await run.exited(20)
    owner = shard_of("binance_futures", "NOPEUSDT", 2)
    assert code == 2, run.log
    assert f"worker-{owner} (pid" in run.log
    assert "configuration error (exit code 2); not restarting" in run.log
    assert "NOPEUSDT" in run.log
    assert "died after" not in run.log


async def test_a_taken_health_port_is_one_line_and_exit_1(redis_server, start_sim, tmp_path):
    sim = await start_sim(GeneratedSource(rate=10, seed=5, symbols=SYMBOLS))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_service_config(tmp_path, redis_server.url, sim, SYMBOLS, health_port=port)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "marketdata.cli", "run", "--config", str(config),
            "--workers", "2", stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    log = stderr.decode()
    assert process.returncode == 1, log
    assert f"cannot listen on 127.0.0.1:{port} (health_port)" in log
    assert "[worker-" not in log  # no worker was started
