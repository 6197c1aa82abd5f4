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

from bench.core import core_parse_sync_apply, floor_loads
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
    args = parser.parse_args()

    snapshots, frames = looped_depth_frames(args.messages)
    floor, core = [], []
    for _ in range(args.runs):  # alternate A/B so drift hits both alike
        floor.append(floor_loads(frames))
        core.append(core_parse_sync_apply(snapshots, frames))
    results = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "messages": len(frames),
        "runs": args.runs,
        "floor_orjson_loads_msgs_per_s": summarize(floor),
        "core_parse_sync_apply_msgs_per_s": summarize(core),
    }
    core_median = results["core_parse_sync_apply_msgs_per_s"]["median"]
    results["core_us_per_msg"] = 1e6 / core_median
    results["core_vs_floor"] = core_median / results["floor_orjson_loads_msgs_per_s"]["median"]
    if not args.skip_persist:
        results.update(persist_cases(args))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(f"{len(frames):,} real Binance futures depth frames (capture looped), {args.runs} runs")
    print(f"{'case':<34} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    for name, key in (
        ("floor: orjson.loads", "floor_orjson_loads_msgs_per_s"),
        ("core: parse + sync + book apply", "core_parse_sync_apply_msgs_per_s"),
    ):
        r = results[key]
        print(f"{name:<34} {r['median']:>14,.0f} {r['min']:>10,.0f} {r['max']:>10,.0f}")
    print(f"core: {results['core_us_per_msg']:.2f} us/msg, {results['core_vs_floor']:.2f}x floor")
    if "persist_rows_per_s" in results:
        r = results["persist_rows_per_s"]
        name = "persist: spool -> PostgreSQL (rows/s)"
        print(f"{name:<34} {r['median']:>14,.0f} {r['min']:>10,.0f} {r['max']:>10,.0f}")
        lat = results["persist_receive_to_commit_ms"]
        print(f"persist: receive -> committed at {args.persist_rate:,} trades/s: "
              f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p99.9']:.1f} ms, "
              f"max {lat['max']:.1f} ms ({lat['trades']:,} trades)")  # fmt: skip
    print(f"written to {RESULTS}")


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
