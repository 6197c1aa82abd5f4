"""Service end to end: feed server -> real loopback WebSockets -> `marketdata run` (its own
process) -> real redis-server. Figures come from the service's own /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Note = Callable[[str], None]  # hears a line of progress
NOTE_EVERY_S = 10.0


class Process:
    def __init__(self, *args: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=self.log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def quantiles(before: Samples, after: Samples, name: str, **labels: str) -> dict[str, float]:
    """p50/p99/p99.9 (ms) of a histogram's observations between two scrapes, interpolated
    linearly inside buckets."""
    want = set(labels.items())
    buckets = sorted(
        (float(dict(lab)["le"]), v - before.get((n, lab), 0.0))
        for (n, lab), v in after.items()
        if n == f"{name}_bucket" and want <= set(lab)
    )
    count = buckets[-1][1] if buckets else 0.0
    result = {"count": count}
    for key, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
        result[key] = _interpolate(buckets, q * count) * 1000 if count else float("nan")
    return result


def _interpolate(buckets: list[tuple[float, float]], rank: float) -> float:
    low_bound, low_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return low_bound
            span = cumulative - low_count
            return low_bound + (bound - low_bound) * ((rank - low_count) / span if span else 1)
        low_bound, low_count = bound, cumulative
    return low_bound


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Run:
    """A feed server and a service on free ports, against `redis_url`."""

    def __init__(
        self,
        redis_url: str,
        symbols: int,
        rate_per_symbol: float,
        frames: int,
        snapshot_limit: int = 100,
    ) -> None:
        self.feed_port, self.http_port = free_port(), free_port()
        self.symbols = [f"S{i:03d}USDT" for i in range(symbols)]
        self.feed = Process(
            "-m", "bench.feed_server", "--port", str(self.feed_port),
            "--rate", str(rate_per_symbol), "--frames", str(frames),
        )  # fmt: skip
        _wait_port(self.feed_port, 60)
        config = {
            "redis_url": redis_url, "health_port": self.http_port, "log_level": "WARNING",
            "exchanges": {"binance_futures": {
                "symbols": self.symbols, "ws_url": f"ws://127.0.0.1:{self.feed_port}",
                "rest_url": f"http://127.0.0.1:{self.feed_port}",
                "snapshot_limit": snapshot_limit,
            }},
        }  # fmt: skip
        self.config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        yaml.safe_dump(config, self.config)
        self.config.close()
        self.service = Process("-m", "marketdata.cli", "run", "--config", self.config.name)
        _wait_port(self.http_port, 30)

    def wait_synced(self, timeout_s: float = 60, note: Note | None = None) -> None:
        """Until every book is synced; `note` hears how many are, every NOTE_EVERY_S."""
        deadline = time.monotonic() + timeout_s
        next_note = time.monotonic() + NOTE_EVERY_S
        while (synced := total(scrape(self.http_port), "book_synced")) < len(self.symbols):
            if time.monotonic() > deadline or self.service.proc.poll() is not None:
                raise RuntimeError(f"books did not sync:\n{self.service.tail()}")
            if note is not None and time.monotonic() > next_note:
                note(f"{synced:.0f} of {len(self.symbols)} books synced")
                next_note += NOTE_EVERY_S
            time.sleep(0.2)

    def close(self) -> None:
        self.service.stop()
        self.feed.stop()
        os.unlink(self.config.name)


def _wait_port(port: int, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# The service renders /metrics at most once a second (marketdata.http) and serves the same
# text to scrapes in between: a scrape this long after the one before is fresh.
FRESH_AFTER_S = 1.2


def window(http_port: int, seconds: float) -> tuple[Samples, Samples, float]:
    """Scrapes before and after about `seconds`, both fresh (wait_synced's last scrape may
    be less than a second old), and the depth messages processed between, scaled to
    exactly `seconds` by the time between the scrapes."""
    time.sleep(FRESH_AFTER_S)
    started = time.perf_counter()
    before = scrape(http_port)
    started = (started + time.perf_counter()) / 2
    time.sleep(max(seconds, FRESH_AFTER_S))
    ended = time.perf_counter()
    after = scrape(http_port)
    ended = (ended + time.perf_counter()) / 2
    kind = {"type": "depth"}
    processed = total(after, "messages_processed_total", **kind) - total(
        before, "messages_processed_total", **kind
    )
    return before, after, processed * seconds / (ended - started)


def latency_at(redis_url: str, symbols: int, rate: float, seconds: float) -> dict[str, Any]:
    """receive -> PUBLISH percentiles at `rate` depth msgs/s spread over `symbols`."""
    run = Run(redis_url, symbols, rate / symbols, frames=int(rate / symbols * (seconds + 30)))
    try:
        run.wait_synced()
        before, after, processed = window(run.http_port, seconds)
        return {
            "symbols": symbols,
            "offered_msgs_per_s": rate,
            "processed_msgs_per_s": processed / seconds,
            "book_publish_ms": quantiles(
                before, after, "publish_latency_seconds", kind="orderbook"
            ),
            "book_age_ms": quantiles(before, after, "book_age_at_publish_seconds"),
            "frame_to_book_ms": quantiles(before, after, "processing_latency_seconds"),
            "rss_mb": rss_mb(run.service.proc.pid),
        }
    finally:
        run.close()


def max_rate(redis_url: str, symbols: int, seconds: float) -> dict[str, Any]:
    """The feed sends as fast as the service reads; its processed rate is what it sustains
    (TCP back-pressure keeps the receive lag bounded by the socket buffers)."""
    run = Run(redis_url, symbols, 0, frames=60_000)
    try:
        run.wait_synced()
        before, after, processed = window(run.http_port, seconds)
        gaps = total(after, "sequence_gaps_total")
        return {
            "symbols": symbols,
            "processed_msgs_per_s": processed / seconds,
            "frame_to_book_ms": quantiles(before, after, "processing_latency_seconds"),
            "book_publish_ms": quantiles(
                before, after, "publish_latency_seconds", kind="orderbook"
            ),
            "sequence_gaps": gaps,
        }
    finally:
        run.close()


def memory_per_symbol(redis_url: str, symbols: int, note: Note | None = None) -> dict[str, float]:
    """RSS with `symbols` 1000-level books against one, at a light 10 diffs/s each."""
    rss = {}
    for n in (1, symbols):
        run = Run(redis_url, n, 10, frames=2000, snapshot_limit=1000)
        try:
            run.wait_synced(120, note)
            time.sleep(2)
            rss[n] = rss_mb(run.service.proc.pid)
        finally:
            run.close()
        if note is not None:
            note(f"{n} symbol(s): {rss[n]:.0f} MB RSS")
    return {
        "symbols": symbols,
        "rss_1_mb": rss[1],
        f"rss_{symbols}_mb": rss[symbols],
        "mb_per_symbol": (rss[symbols] - rss[1]) / (symbols - 1),
    }
