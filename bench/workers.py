"""Service throughput at full rate with `--workers 1` and `--workers 2`, side by side.

`python -m bench.workers` (and `python -m bench`'s service section). One feed server
(bench/feed_server.py --prerender, its own process, started once) serves every run the same
real Binance futures diff chain for the same symbols as fast as each connection reads.
The symbols are chosen so that each of the two shards holds half of them (a shard is a hash
of the name, so ten arbitrary names may well split 3 + 7). Each run starts `marketdata run
--workers N` as a subprocess against a real redis-server, waits until every book is
synced, and reads depth messages processed over a window from the supervisor's aggregate
`/metrics` (one process's own with one worker). Runs alternate 1, 2, 1, 2, ...; the figures
are medians, with the ratio of each pair.

The feed shares the two cores with the workers (and redis-server), so its own capacity is
measured first, alone: a client that only drains the sockets counts what it can send.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from typing import Any

import yaml

from bench.cpu import Usage
from bench.e2e import Process, Samples, scrape, total, window
from bench.progress import Progress
from marketdata.shard import shard_of
from tests.helpers import free_port

VENUE = "binance_futures"
FRAMES_PER_SYMBOL = 80_000  # 20 symbols at 2 workers' ~95,000 msgs/s: 16 s of them


def balanced_symbols(count: int, shards: int = 2) -> list[str]:
    """`count` symbol names (W000USDT, W001USDT, ...; some skipped) of which each of
    `shards` shards holds count / shards."""
    if count % shards:
        raise ValueError(f"{count} symbols do not split evenly into {shards} shards")
    per_shard = count // shards
    chosen: dict[int, list[str]] = {k: [] for k in range(shards)}
    i = 0
    while any(len(names) < per_shard for names in chosen.values()):
        name = f"W{i:03d}USDT"
        names = chosen[shard_of(VENUE, name, shards)]
        if len(names) < per_shard:
            names.append(name)
        i += 1
    return sorted(name for names in chosen.values() for name in names)


class Feed:
    """The feed server, started once for every run."""

    def __init__(self, frames: int, symbols: list[str]) -> None:
        self.port = free_port()
        self.frames = frames
        self.process = Process(
            "-m", "bench.feed_server", "--port", str(self.port), "--rate", "0",
            "--frames", str(frames), "--prerender", "--symbols", ",".join(symbols),
        )  # fmt: skip
        _wait_port(self.port, 120, self.process)

    def reset(self) -> None:
        """Before a run: its symbols' streams start again once their snapshots are served."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def close(self) -> None:
        self.process.stop()


def generator_alone(feed: Feed, symbols: list[str]) -> dict[str, float]:
    """What the feed sends to one client that only drains its sockets (no parsing): every
    symbol's whole chain, in frames/s from the first byte received to the last, with the
    mean frame size."""
    feed.reset()
    sockets = [_open_stream(feed.port, symbol) for symbol in symbols]
    received = [0] * len(symbols)
    first = [0.0] * len(symbols)
    last = [0.0] * len(symbols)

    def drain(i: int, sock: socket.socket) -> None:
        buffer = bytearray(1 << 18)
        sock.settimeout(2.0)  # the chain is used up when nothing comes for this long
        try:
            while n := sock.recv_into(buffer):
                last[i] = time.perf_counter()
                if not received[i]:
                    first[i] = last[i]
                received[i] += n
        except TimeoutError:
            pass
        sock.close()

    threads = [
        threading.Thread(target=drain, args=(i, s), daemon=True) for i, s in enumerate(sockets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(last) - min(first)
    frame_bytes = _mean_frame_bytes()
    return {
        "frames_per_s": sum(received) / elapsed / frame_bytes,
        "mb_per_s": sum(received) / elapsed / 1e6,
        "frame_bytes": frame_bytes,
        "seconds": elapsed,
    }


def _mean_frame_bytes() -> float:
    """The mean size of a feed frame as sent (ws header included), for W000USDT."""
    from bench.feed_server import TEMPLATE, _rename, ws_frame
    from bench.frames import looped_depth_frames

    _, frames = looped_depth_frames(4000)
    ours = [ws_frame(_rename(f, "W000USDT")) for f in frames if TEMPLATE.lower().encode() in f[:40]]
    return sum(map(len, ours)) / len(ours)


def _open_stream(port: int, symbol: str) -> socket.socket:
    """A raw WebSocket upgrade of the depth stream, after its snapshot is fetched."""
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/fapi/v1/depth?symbol={symbol}", timeout=10
    ) as response:
        response.read()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    path = f"/public/stream?streams={symbol.lower()}@depth@0ms"
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"feed refused the upgrade: {head!r}")
    sock.settimeout(None)
    return sock


class Service:
    """`marketdata run --workers N` on the feed's symbols, against `redis_url`."""

    def __init__(self, redis_url: str, feed: Feed, symbols: list[str], workers: int) -> None:
        self.http_port = free_port()
        self.symbols = symbols
        self.frames = feed.frames
        self.workers = workers
        self.dir = tempfile.TemporaryDirectory()
        config = {
            "redis_url": redis_url, "health_port": self.http_port, "log_level": "WARNING",
            "spool": {"spill_path": os.path.join(self.dir.name, "spool.jsonl")},
            "exchanges": {VENUE: {
                "symbols": symbols, "ws_url": f"ws://127.0.0.1:{feed.port}",
                "rest_url": f"http://127.0.0.1:{feed.port}", "snapshot_limit": 100,
            }},
        }  # fmt: skip
        path = os.path.join(self.dir.name, "config.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        self.process = Process(
            "-m", "marketdata.cli", "run", "--config", path, "--workers", str(workers)
        )
        _wait_port(self.http_port, 60, self.process)

    def wait_synced(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while total(scrape(self.http_port), "book_synced") < len(self.symbols):
            if time.monotonic() > deadline or self.process.proc.poll() is not None:
                raise RuntimeError(f"books did not sync:\n{self.process.tail()}")
            time.sleep(0.2)

    def processes(self) -> dict[str, int]:
        """The service's processes by name: "service" alone with one worker (no supervisor
        then), else "supervisor" and "worker-K"."""
        if self.workers == 1:
            return {"service": self.process.proc.pid}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health") as response:
            listed = json.loads(response.read())["workers"]
        found = {"supervisor": self.process.proc.pid}
        found.update({f"worker-{w['worker']}": int(w["pid"]) for w in listed})
        return found

    def processed_rate(self, seconds: float) -> tuple[float, dict[str, float], float]:
        """(depth msgs/s processed over `seconds`, the same per worker label, sequence gaps
        at the end), from two fresh scrapes of the aggregate /metrics (bench.e2e's window)."""
        before, after, processed = window(self.http_port, seconds)
        sent = len(self.symbols) * self.frames
        if total(after, "messages_processed_total", type="depth") > 0.9 * sent:
            raise RuntimeError(f"the feed's {sent:,} frames are nearly used up: use more")
        scale = processed / max(1.0, _processed(after) - _processed(before))  # to the window
        per_worker = {
            worker: (_processed(after, worker) - _processed(before, worker)) * scale / seconds
            for worker in sorted(_workers(after))
        }
        return processed / seconds, per_worker, total(after, "sequence_gaps_total")

    def close(self) -> None:
        self.process.stop()
        self.dir.cleanup()


def _processed(samples: Samples, worker: str = "") -> float:
    labels = {"type": "depth", "worker": worker} if worker else {"type": "depth"}
    return total(samples, "messages_processed_total", **labels)


def _workers(samples: Samples) -> set[str]:
    """The `worker` labels of the aggregate's samples ("" with one process)."""
    return {
        dict(labels).get("worker", "")
        for (name, labels) in samples
        if name == "messages_processed_total"
    }


def _wait_port(port: int, timeout_s: float, process: Process) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"exited before listening:\n{process.tail()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def one_run(
    redis_url: str,
    feed: Feed,
    symbols: list[str],
    workers: int,
    seconds: float,
    redis_pid: int | None = None,
) -> dict[str, Any]:
    """One service run's rate, and the cores each process used meanwhile ("others": every
    process outside this bench, e.g. other work on a shared machine)."""
    feed.reset()
    service = Service(redis_url, feed, symbols, workers)
    try:
        service.wait_synced()
        processes = service.processes()
        processes["feed"] = feed.process.proc.pid
        if redis_pid is not None:
            processes["redis"] = redis_pid
        usage = Usage(processes)
        rate, per_worker, gaps = service.processed_rate(seconds)
        cores = usage.cores()
    finally:
        service.close()
    if gaps:
        raise RuntimeError(f"{gaps:.0f} sequence gaps at full rate: the run means nothing")
    service_cores = sum(used for name, used in cores.items() if name in _SERVICE)
    return {
        "processed_msgs_per_s": rate,
        "per_worker_msgs_per_s": per_worker,
        "cores": cores,
        "msgs_per_service_cpu_s": rate / service_cores if service_cores else 0.0,
    }


_SERVICE = ("service", "supervisor", "worker-0", "worker-1")


def _cores(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {used:.2f}" for name, used in cores.items())


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(
    redis_url: str,
    symbols: int,
    runs: int,
    seconds: float,
    frames: int,
    progress: Progress,
    redis_pid: int | None = None,
) -> dict[str, Any]:
    names = balanced_symbols(symbols)
    started = progress.start(f"workers: feed server, {frames:,} frames per symbol")
    feed = Feed(frames, names)
    try:
        alone = generator_alone(feed, names)
        progress.end("workers: feed alone (a client draining its sockets)", started,
                     f"{alone['frames_per_s']:,.0f} frames/s")  # fmt: skip
        one: list[dict[str, Any]] = []
        two: list[dict[str, Any]] = []
        started = progress.start(f"workers: {symbols} symbols, 1 and 2 workers, {runs} runs")
        for i in range(runs):
            one.append(one_run(redis_url, feed, names, 1, seconds, redis_pid))
            two.append(one_run(redis_url, feed, names, 2, seconds, redis_pid))
            a, b = one[-1]["processed_msgs_per_s"], two[-1]["processed_msgs_per_s"]
            split = " + ".join(f"{v:,.0f}" for v in two[-1]["per_worker_msgs_per_s"].values())
            cores_one, cores_two = _cores(one[-1]["cores"]), _cores(two[-1]["cores"])
            progress.line(f"workers run {i + 1}/{runs}: 1 worker {a:,.0f} msgs/s "
                          f"(cores: {cores_one}), 2 workers {b:,.0f} msgs/s "
                          f"({split}; cores: {cores_two}): {b / a:.2f}x")  # fmt: skip
    finally:
        feed.close()
    rates_one = [r["processed_msgs_per_s"] for r in one]
    rates_two = [r["processed_msgs_per_s"] for r in two]
    ratio = statistics.median(rates_two) / statistics.median(rates_one)
    progress.end("workers", started, f"2 workers {ratio:.2f}x 1 worker")
    return {
        "symbols": symbols,
        "runs": runs,
        "window_s": seconds,
        "cores": os.cpu_count(),
        "feed_alone": alone,
        "one_worker_msgs_per_s": summarize(rates_one),
        "two_workers_msgs_per_s": summarize(rates_two),
        "ratio": ratio,
        "ratio_per_run": summarize([b / a for a, b in zip(rates_one, rates_two, strict=True)]),
        "one_worker_runs": one,
        "two_workers_runs": two,
        "others_cores_max": max(r["cores"]["others"] for r in one + two),
        "service_cores": {
            "one_worker": statistics.median(_service_cores(r) for r in one),
            "two_workers": statistics.median(_service_cores(r) for r in two),
        },
        "msgs_per_service_cpu_s": {
            "one_worker": statistics.median(r["msgs_per_service_cpu_s"] for r in one),
            "two_workers": statistics.median(r["msgs_per_service_cpu_s"] for r in two),
        },
    }


def _service_cores(run: dict[str, Any]) -> float:
    return sum(used for name, used in run["cores"].items() if name in _SERVICE)


def print_workers(r: dict[str, Any]) -> None:
    one, two, per_run = r["one_worker_msgs_per_s"], r["two_workers_msgs_per_s"], r["ratio_per_run"]
    print(f"service at full rate, {r['symbols']} symbols (half in each shard), "
          f"{r['cores']} cores: 1 worker {one['median']:,.0f} msgs/s "
          f"({one['min']:,.0f}..{one['max']:,.0f}), 2 workers {two['median']:,.0f} msgs/s "
          f"({two['min']:,.0f}..{two['max']:,.0f}): {r['ratio']:.2f}x "
          f"(per run {per_run['min']:.2f}..{per_run['max']:.2f})")  # fmt: skip
    cores, per_cpu = r["service_cores"], r["msgs_per_service_cpu_s"]
    print(f"  cores the service got (median): 1 worker {cores['one_worker']:.2f}, 2 workers "
          f"{cores['two_workers']:.2f}; msgs per service CPU-second: 1 worker "
          f"{per_cpu['one_worker']:,.0f}, 2 workers {per_cpu['two_workers']:,.0f}")  # fmt: skip
    alone = r["feed_alone"]
    print(f"  feed alone (a client draining its sockets, no parsing): "
          f"{alone['frames_per_s']:,.0f} frames/s ({alone['mb_per_s']:,.0f} MB/s); "
          f"cores used by processes outside the bench during a run: up to "
          f"{r['others_cores_max']:.2f}")  # fmt: skip


def main() -> None:
    from tests.redis_server import RedisServer

    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring window per run")
    parser.add_argument("--frames", type=int, default=FRAMES_PER_SYMBOL, help="per symbol")
    args = parser.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    try:
        assert redis_server.process is not None
        result = run(
            redis_server.url, args.symbols, args.runs, args.seconds, args.frames, Progress(),
            redis_server.process.pid,
        )  # fmt: skip
    finally:
        redis_server.stop()
    print_workers(result)


if __name__ == "__main__":
    main()
