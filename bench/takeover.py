"""Takeover after kill -9: two leased `marketdata run` processes share the symbols of a
simulator on one redis-server; the owner of half of them is killed, and the time from the
kill to the successor's first PUBLISH of every symbol the dead one held is measured by a
subscriber (the dead process cannot publish, so any orderbook message is the
successor's). Then a fresh instance takes the dead one's place and, once both are ready
and balanced again, the next trial kills the other one.

`python -m bench.takeover [--trials 10] [--ttl 5] [--symbols 10]`: p50 and max (s). The
time is the dead owner's lease running out (anywhere from 2/3 of the TTL to all of it
after the kill, by when it had last renewed) plus the resync of the symbols taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from bench.progress import Progress
from tests.helpers import free_port
from tests.redis_server import RedisServer

EXCHANGE = "binance_futures"


class Instance:
    """One leased `marketdata run` process, its log in a temporary file."""

    def __init__(self, name: str, redis_url: str, sim_port: int, symbols: list[str],
                 ttl_s: float, directory: Path) -> None:  # fmt: skip
        self.name = name
        self.port = free_port()
        raw = {
            "redis_url": redis_url, "health_port": self.port, "publish_interval_ms": 50,
            "spool": {"spill_path": str(directory / f"{name}.spill.jsonl")},
            "leases": {"enabled": True, "ttl_s": ttl_s, "instance_id": name},
            "exchanges": {EXCHANGE: {
                "symbols": symbols, "ws_url": f"ws://127.0.0.1:{sim_port}",
                "rest_url": f"http://127.0.0.1:{sim_port}",
            }},
        }  # fmt: skip
        config = directory / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw))
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketdata.cli", "run", "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                return bool(r.status == 200 and json.load(r)["ready"])
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


class Arrivals:
    """Monotonic arrival times of each symbol's orderbook messages."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.pubsub = client.pubsub()
        self.times: dict[str, list[float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe("orderbook:*")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                symbol = message["channel"].decode().removeprefix("orderbook:")
                self.times.setdefault(symbol, []).append(time.monotonic())

    def first_after(self, symbol: str, start: float) -> float | None:
        return next((t for t in self.times.get(symbol, []) if t >= start), None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.pubsub.aclose()


async def owners(client: aioredis.Redis, symbols: list[str]) -> dict[str, str]:
    values = await client.mget([f"lease:{{{EXCHANGE}:{s}}}" for s in symbols])
    found = zip(symbols, values, strict=True)
    return {s: v.decode().rsplit(":", 1)[0] for s, v in found if v is not None}


async def wait_balanced(client: aioredis.Redis, symbols: list[str], pair: list[Instance],
                        timeout_s: float) -> dict[str, str]:  # fmt: skip
    share = -(-len(symbols) // 2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = await owners(client, symbols)
        counts = Counter(held.values())
        names = {i.name for i in pair}
        if len(held) == len(symbols) and set(counts) == names and max(counts.values()) <= share:
            if all(await asyncio.gather(*(asyncio.to_thread(i.ready) for i in pair))):
                return held
        for instance in pair:
            if instance.proc.poll() is not None:
                raise RuntimeError(f"{instance.name} exited:\n{instance.tail()}")
        await asyncio.sleep(0.1)
    raise RuntimeError("the instances did not balance:\n" + "\n".join(i.tail() for i in pair))


async def trial(
    client: aioredis.Redis, arrivals: Arrivals, symbols: list[str], pair: list[Instance],
    victim: Instance, ttl_s: float,
) -> dict[str, Any]:  # fmt: skip
    held = await wait_balanced(client, symbols, pair, 60)
    lost = [s for s, owner in held.items() if owner == victim.name]
    # Steady state, then a moment drawn over one renewal interval: the kill falls anywhere
    # between two renewals, as a crash does.
    await asyncio.sleep(0.5 + random.uniform(0, ttl_s / 3))
    victim.kill()
    killed = time.monotonic()
    # The victim's last messages may still be on their way to the subscriber: none of
    # the successor's can come this early (its lease is 2/3 of a TTL away at least).
    after = killed + 0.2
    firsts: dict[str, float] = {}
    while len(firsts) < len(lost):
        if time.monotonic() - killed > 3 * ttl_s + 10:
            raise RuntimeError(f"no takeover of {set(lost) - set(firsts)} within 3 TTLs + 10 s")
        for symbol in lost:
            if symbol not in firsts and (at := arrivals.first_after(symbol, after)) is not None:
                firsts[symbol] = at - killed
        await asyncio.sleep(0.01)
    return {"symbols": len(lost), "first_s": min(firsts.values()), "all_s": max(firsts.values())}


def start_sim(port: int, symbols: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "marketdata.cli", "sim", "--port", str(port),
         "--symbols", ",".join(symbols), "--rate", "20", "--seed", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def run(trials: int, ttl_s: float, count: int, progress: Progress) -> dict[str, Any]:
    symbols = [f"S{i:02d}USDT" for i in range(count)]
    redis_server = RedisServer()
    redis_server.start()
    directory = Path(tempfile.mkdtemp(prefix="takeover-"))
    sim_port = free_port()
    sim = start_sim(sim_port, symbols)
    client = aioredis.Redis.from_url(redis_server.url)
    arrivals = Arrivals(client)
    pair: list[Instance] = []
    results = []
    try:
        await arrivals.start()
        pair = [Instance(n, redis_server.url, sim_port, symbols, ttl_s, directory)
                for n in ("i0", "i1")]  # fmt: skip
        for k in range(trials):
            victim = pair[k % 2]
            results.append(await trial(client, arrivals, symbols, pair, victim, ttl_s))
            progress.line(f"takeover trial {k + 1}/{trials}: {results[-1]['symbols']} symbols "
                          f"back after {results[-1]['all_s']:.2f} s (first "
                          f"{results[-1]['first_s']:.2f} s)")  # fmt: skip
            pair[k % 2] = Instance(f"i{k + 2}", redis_server.url, sim_port, symbols, ttl_s,
                                   directory)  # fmt: skip
    finally:
        for instance in pair:
            instance.stop()
        await arrivals.close()
        await client.aclose()
        sim.terminate()
        sim.wait(10)
        redis_server.stop()
    took = [r["all_s"] for r in results]
    return {
        "ttl_s": ttl_s, "symbols": count, "trials": trials,
        "p50_s": statistics.median(took), "max_s": max(took), "min_s": min(took),
        "runs": results,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=5.0, help="leases.ttl_s")
    parser.add_argument("--symbols", type=int, default=10)
    args = parser.parse_args()
    progress = Progress()
    started = progress.start(f"takeover after kill -9, ttl {args.ttl:g} s, {args.trials} trials")
    result = asyncio.run(run(args.trials, args.ttl, args.symbols, progress))
    progress.end("takeover", started, f"p50 {result['p50_s']:.2f} s, max {result['max_s']:.2f} s")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
