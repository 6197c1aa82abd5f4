"""`python -m bench.fanout`: messages/s delivered to many subscribers, one Redis beside a
Redis Cluster with sharded pub/sub, in one run.

Each of SUBSCRIBERS subscribers holds one connection and subscribes to one book channel
(subscriber i to channel i mod CHANNELS) on the node that owns it: SUBSCRIBE on the single
Redis, SSUBSCRIBE on the cluster's master for the channel's slot (what `redis-cli -c`
finds). Subscribers are spread over a few processes that only parse (hiredis) and count,
so the client side is not what is measured. Publishers (other processes) send book-sized
messages round-robin over the channels, PUBLISH or SPUBLISH, in pipelined batches of
BATCH, one batch in flight per node: memory stays bounded and the rate is what Redis
takes. A subscriber that falls behind is cut off by Redis's pub/sub output-buffer limit;
such cuts are counted and reported.

The figure is deliveries per second counted by the subscribers over `--seconds`, after a
warm-up; each case runs `--runs` times, alternately, and the median is reported with min
and max. Servers run on free loopback ports: a redis-server, and a cluster of 3 masters
(and `--replicas` replicas each; sharded messages are propagated to a shard's replicas).
On a 2-core machine the cluster's three masters, the publishers and the subscribers share
two cores: the figures say what this machine does, not what three hosts would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

import hiredis

from bench.progress import Progress
from marketdata.redis_batch import RespConnection, pack
from tests.redis_cluster import RedisClusterServer
from tests.redis_server import RedisServer

READ_CHUNK = 256 * 1024
BATCH = 50

Target = tuple[int, str]  # (node port, channel)


@dataclass(frozen=True)
class Case:
    name: str
    subscribe: str  # SUBSCRIBE or SSUBSCRIBE
    publish: str  # PUBLISH or SPUBLISH
    owners: dict[str, int]  # channel -> port of the node that serves it


def _channels(count: int) -> list[str]:
    return [f"orderbook:S{i:03d}USDT" for i in range(count)]


# ---- subscriber processes ---------------------------------------------------------------


def _subscriber_main(
    targets: list[Target], command: str, ready: Any, go: Event, results: Any, window: tuple
) -> None:
    asyncio.run(_subscribers(targets, command, ready, go, results, window))


async def _subscribers(
    targets: list[Target], command: str, ready: Any, go: Event, results: Any, window: tuple
) -> None:
    warmup_s, seconds = window
    state = {"messages": 0, "confirmed": 0, "cut": 0, "want": len(targets)}
    subscribed = asyncio.Event()
    links = []
    for port, channel in targets:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(pack([(command, channel)]))
        links.append((reader, writer))
    tasks = [asyncio.create_task(_count(reader, state, subscribed)) for reader, _ in links]
    await subscribed.wait()
    ready.put(len(targets))
    await asyncio.to_thread(go.wait)
    await asyncio.sleep(warmup_s)
    first, started = state["messages"], time.perf_counter()
    await asyncio.sleep(seconds)
    delivered, elapsed = state["messages"] - first, time.perf_counter() - started
    results.put({"delivered": delivered, "elapsed": elapsed, "cut": state["cut"]})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, writer in links:
        writer.close()


async def _count(
    reader: asyncio.StreamReader, state: dict[str, int], subscribed: asyncio.Event
) -> None:
    replies = hiredis.Reader()
    while True:
        chunk = await reader.read(READ_CHUNK)
        if not chunk:
            state["cut"] += 1  # Redis cut us off: the output buffer limit
            return
        replies.feed(chunk)
        while (reply := replies.gets()) is not False:
            kind = reply[0]
            if kind in (b"message", b"smessage"):
                state["messages"] += 1
            elif kind in (b"subscribe", b"ssubscribe"):
                state["confirmed"] += 1
                if state["confirmed"] == state["want"]:
                    subscribed.set()


# ---- publisher processes ----------------------------------------------------------------


def _publisher_main(
    by_node: dict[int, list[str]], command: str, size: int, go: Event, stop: Event, results: Any
) -> None:
    asyncio.run(_publishers(by_node, command, size, go, stop, results))


async def _publishers(
    by_node: dict[int, list[str]], command: str, size: int, go: Event, stop: Event, results: Any
) -> None:
    payload = b"x" * size
    sent = {"published": 0, "receivers": 0}
    connections = {port: RespConnection(f"redis://127.0.0.1:{port}/0") for port in by_node}
    await asyncio.to_thread(go.wait)

    async def node(port: int, channels: list[str]) -> None:
        connection, k = connections[port], 0
        while not stop.is_set():
            batch = []
            for _ in range(BATCH):
                batch.append((command, channels[k % len(channels)], payload))
                k += 1
            replies = await connection.send(batch)
            sent["published"] += len(batch)
            sent["receivers"] += sum(r for r in replies if isinstance(r, int))

    await asyncio.gather(*(node(port, chs) for port, chs in by_node.items()))
    for connection in connections.values():
        await connection.close()
    results.put(sent)


# ---- one run ----------------------------------------------------------------------------


def run_case(case: Case, args: argparse.Namespace) -> dict[str, float]:
    mp = multiprocessing.get_context("spawn")
    ready, results, published = mp.Queue(), mp.Queue(), mp.Queue()
    go, stop = mp.Event(), mp.Event()
    channels = list(case.owners)
    targets = [
        (case.owners[channels[i % len(channels)]], channels[i % len(channels)])
        for i in range(args.subscribers)
    ]
    groups = [targets[i :: args.subscriber_processes] for i in range(args.subscriber_processes)]
    window = (args.warmup, args.seconds)
    subscribers = [
        mp.Process(target=_subscriber_main,
                   args=(group, case.subscribe, ready, go, results, window))
        for group in groups if group
    ]  # fmt: skip
    for process in subscribers:
        process.start()
    for _ in subscribers:
        ready.get(timeout=60)
    publishers = []
    for p in range(args.publishers):
        mine = channels[p :: args.publishers]
        by_node: dict[int, list[str]] = {}
        for channel in mine:
            by_node.setdefault(case.owners[channel], []).append(channel)
        arguments = (by_node, case.publish, args.size, go, stop, published)
        publishers.append(mp.Process(target=_publisher_main, args=arguments))
    for process in publishers:
        process.start()
    go.set()
    reports = [results.get(timeout=args.warmup + args.seconds + 60) for _ in subscribers]
    stop.set()
    sent = [published.get(timeout=60) for _ in publishers]
    for process in [*subscribers, *publishers]:
        process.join(30)
    delivered = sum(r["delivered"] for r in reports)
    elapsed = statistics.mean(r["elapsed"] for r in reports)
    return {
        "delivered_per_s": delivered / elapsed,
        "cut_subscribers": sum(r["cut"] for r in reports),
        "published": sum(s["published"] for s in sent),
    }


def _cases(args: argparse.Namespace) -> tuple[list[Case], list[Any]]:
    channels = _channels(args.channels)
    single = RedisServer()
    single.start()
    cluster = RedisClusterServer(replicas=args.replicas)
    cluster.start()
    owners = {channel: cluster.master_for(channel) for channel in channels}
    cases = [
        Case("single Redis, PUBLISH", "SUBSCRIBE", "PUBLISH", dict.fromkeys(channels, single.port)),
        Case("3-master cluster, SPUBLISH", "SSUBSCRIBE", "SPUBLISH", owners),
    ]
    return cases, [single, cluster]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The settings (`parse_args([])`: the defaults, for a caller such as `python -m bench`)."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000, help="bytes per message (a book)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--subscriber-processes", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=1, help="per cluster master")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, progress: Progress) -> dict[str, dict[str, float]]:
    """Each case's median, min and max deliveries/s and subscribers cut, by case name."""
    cases, servers = _cases(args)
    figures: dict[str, list[dict[str, float]]] = {case.name: [] for case in cases}
    try:
        for run in range(args.runs):
            for case in cases:  # alternately: the machine's noise hits both
                started = progress.start(f"fanout {case.name} run {run + 1}")
                figure = run_case(case, args)
                figures[case.name].append(figure)
                progress.end(f"fanout {case.name} run {run + 1}", started,
                             f"{figure['delivered_per_s']:,.0f} deliveries/s")  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    return {name: _summary(runs) for name, runs in figures.items()}


def main() -> None:
    args = parse_args()
    summary = measure(args, Progress())
    if args.json:
        print(json.dumps(summary, indent=2))
    print()
    print(f"fan-out: {args.subscribers} subscribers (one connection each) over "
          f"{args.channels} channels, {args.size}-byte messages, "
          f"median of {args.runs}")  # fmt: skip
    for name, s in summary.items():
        print(f"  {name:28} {s['median']:>12,.0f} deliveries/s  "
              f"(min {s['min']:,.0f}, max {s['max']:,.0f}; "
              f"subscribers cut {s['cut']})")  # fmt: skip


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    rates = [r["delivered_per_s"] for r in runs]
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "cut": sum(r["cut_subscribers"] for r in runs),
    }


if __name__ == "__main__":
    main()
