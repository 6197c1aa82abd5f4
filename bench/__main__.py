"""`python -m bench`: prints a table and writes bench/results.json.

Every figure is the median of RUNS runs (with min and max); cases that are compared run
alternately in the same process, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path

from bench import e2e, peer
from bench.core import core_parse_sync_apply, core_tops, floor_loads
from bench.frames import looped_depth_frames
from bench.persist import latency, throughput
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

RESULTS = Path(__file__).parent / "results.json"


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--persist-trades", type=int, default=100_000)
    parser.add_argument("--persist-rate", type=int, default=5000)
    parser.add_argument("--persist-seconds", type=float, default=10.0)
    parser.add_argument("--skip-persist", action="store_true")
    parser.add_argument("--e2e-runs", type=int, default=5, help="runs of each service case")
    parser.add_argument("--e2e-seconds", type=float, default=4.0)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()

    results = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **in_process_cases(args),
    }
    if not args.skip_persist:
        results.update(persist_cases(args))
    if not args.skip_e2e:
        results.update(service_cases(args))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print_in_process(results)
    if "persist_rows_per_s" in results:
        r = results["persist_rows_per_s"]
        name = "persist: spool -> PostgreSQL (rows/s)"
        print(f"{name:<34} {r['median']:>14,.0f} {r['min']:>10,.0f} {r['max']:>10,.0f}")
        lat = results["persist_receive_to_commit_ms"]
        print(f"persist: receive -> committed at {args.persist_rate:,} trades/s: "
              f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p99.9']:.1f} ms, "
              f"max {lat['max']:.1f} ms ({lat['trades']:,} trades)")  # fmt: skip
    if "service" in results:
        print_service(results["service"])
    print(f"written to {RESULTS}")


def in_process_cases(args: argparse.Namespace) -> dict:
    """Floor, core and (when installed) the cryptofeed peer on the same frames, alternated."""
    snapshots, frames = looped_depth_frames(args.messages)
    with_peer = peer.available()
    expected = core_tops(snapshots, frames, 20) if with_peer else {}
    floor, core, cryptofeed = [], [], []
    for _ in range(args.runs):  # alternate A/B so drift hits all alike
        floor.append(floor_loads(frames))
        core.append(core_parse_sync_apply(snapshots, frames))
        if with_peer:
            cryptofeed.append(peer.cryptofeed_parse_sync_apply(snapshots, frames, expected))
    core_median = statistics.median(core)
    results = {
        "messages": len(frames),
        "runs": args.runs,
        "floor_orjson_loads_msgs_per_s": summarize(floor),
        "core_parse_sync_apply_msgs_per_s": summarize(core),
        "core_us_per_msg": 1e6 / core_median,
        "core_vs_floor": core_median / statistics.median(floor),
    }
    if with_peer:
        results["peer_cryptofeed_msgs_per_s"] = summarize(cryptofeed)
        results["core_vs_cryptofeed"] = core_median / statistics.median(cryptofeed)
    return results


def print_in_process(results: dict) -> None:
    print(f"{results['messages']:,} real Binance futures depth frames (capture looped), "
          f"{results['runs']} runs")  # fmt: skip
    print(f"{'case':<34} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    for name, key in (
        ("floor: orjson.loads", "floor_orjson_loads_msgs_per_s"),
        ("core: parse + sync + book apply", "core_parse_sync_apply_msgs_per_s"),
        (f"peer: {peer.PIN} handler", "peer_cryptofeed_msgs_per_s"),
    ):
        if key in results:
            r = results[key]
            print(f"{name:<34} {r['median']:>14,.0f} {r['min']:>10,.0f} {r['max']:>10,.0f}")
    line = f"core: {results['core_us_per_msg']:.2f} us/msg, {results['core_vs_floor']:.2f}x floor"
    if "core_vs_cryptofeed" in results:
        print(f"{line}, {results['core_vs_cryptofeed']:.2f}x cryptofeed")
    else:
        print(f"{line}; peer: cryptofeed is not installed (pip install -e '.[bench]')")


def print_service(service: dict) -> None:
    r = service["max_rate_10_symbols"]
    print(f"{'service: highest rate, 10 symbols':<34} {r['median']:>14,.0f} "
          f"{r['min']:>10,.0f} {r['max']:>10,.0f}")  # fmt: skip
    for case in service["at_5000_msgs_per_s"]:
        book = case["book_publish_ms"]
        print(f"service at 5,000 msgs/s, {case['symbols']:>3} symbols: book receive -> PUBLISH "
              f"p50 {book['p50']:.2f} ms, p99 {book['p99']:.2f} ms, p99.9 {book['p99.9']:.2f} ms;"
              f" frame -> book p99 {case['frame_to_book_ms']['p99']:.3f} ms;"
              f" book age at publish p50 {case['book_age_ms']['p50']:.0f} ms")  # fmt: skip
    m = service["memory"]
    print(
        f"memory: {m['mb_per_symbol']:.2f} MB RSS per symbol (1000-level books, "
        f"{m['symbols']} symbols: {m['rss_100_mb']:.0f} MB, 1 symbol: {m['rss_1_mb']:.0f} MB)"
    )


def service_cases(args: argparse.Namespace) -> dict:
    """The service in its own process, a feed server, a redis-server; medians of runs,
    the per-run percentiles kept whole in results.json."""
    redis_server = RedisServer()
    redis_server.start()
    try:
        rates = []
        for _ in range(args.e2e_runs):
            rates.append(e2e.max_rate(redis_server.url, 10, args.e2e_seconds))
        at_5000 = []
        for symbols in (1, 10, 100):
            runs = [
                e2e.latency_at(redis_server.url, symbols, 5000, args.e2e_seconds)
                for _ in range(args.e2e_runs)
            ]
            at_5000.append(_median_run(runs))
        memory = e2e.memory_per_symbol(redis_server.url, 100)
    finally:
        redis_server.stop()
    return {
        "service": {
            "max_rate_10_symbols": summarize([r["processed_msgs_per_s"] for r in rates]),
            "max_rate_runs": rates,
            "at_5000_msgs_per_s": at_5000,
            "memory": memory,
        }
    }


def _median_run(runs: list[dict]) -> dict:
    """The run whose book p99 is the median one (percentiles are not averaged)."""
    ordered = sorted(runs, key=lambda r: r["book_publish_ms"]["p99"])
    return {**ordered[len(ordered) // 2], "runs": len(runs)}


def persist_cases(args: argparse.Namespace) -> dict:
    """PostgreSQL with fsync on, and a redis-server, both started for the run."""
    redis_server, postgres = RedisServer(), PostgresServer(durable=True)
    redis_server.start()
    postgres.start()
    try:
        runs = [
            asyncio.run(throughput(redis_server.url, postgres.dsn, args.persist_trades))
            for _ in range(args.runs)
        ]
        values = sorted(
            asyncio.run(
                latency(redis_server.url, postgres.dsn, args.persist_rate, args.persist_seconds)
            )
        )
    finally:
        postgres.destroy()
        redis_server.stop()

    def pct(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    return {
        "persist_rows_per_s": summarize(runs),
        "persist_receive_to_commit_ms": {
            "rate": args.persist_rate, "trades": len(values), "p50": pct(0.5),
            "p99": pct(0.99), "p99.9": pct(0.999), "max": values[-1] * 1000,
        },
    }  # fmt: skip


if __name__ == "__main__":
    main()
