"""`python -m bench`: prints a table and writes bench/results.json.

Every figure is the median of RUNS runs (with min and max); cases that are compared run
alternately in the same process, because these machines are noisy. Each case prints a line
as it starts and ends (and each run of it), so a run of several minutes shows progress.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

from bench import e2e, fanout, peer, takeover, workers
from bench.core_cases import print_table, run_venues, summarize
from bench.persist import latency, throughput
from bench.progress import Progress
from bench.venues import VENUES
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

RESULTS = Path(__file__).parent / "results.json"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--messages",
        type=int,
        default=150_000,
        help="frames per core case (OKX takes an eighth, Coinbase less: bench/venues.py)",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--venues", type=_venues, default=list(VENUES), help="core cases, comma-separated"
    )
    parser.add_argument("--persist-trades", type=int, default=100_000)
    parser.add_argument("--persist-rate", type=int, default=5000)
    parser.add_argument("--persist-seconds", type=float, default=10.0)
    parser.add_argument("--skip-persist", action="store_true")
    parser.add_argument("--e2e-runs", type=int, default=5, help="runs of each service case")
    parser.add_argument("--e2e-seconds", type=float, default=4.0)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--workers-runs", type=int, default=3, help="runs of 1 and 2 workers")
    parser.add_argument("--workers-symbols", type=int, default=20)
    parser.add_argument("--skip-workers", action="store_true", help="no --workers 1 vs 2 case")
    parser.add_argument(
        "--skip-scale", action="store_true", help="no fan-out (single vs cluster) nor takeover"
    )
    args = parser.parse_args()

    progress = Progress()
    pin = peer.PIN if peer.available() else None
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **run_venues(args.venues, args.messages, args.runs, pin, progress),
    }
    if not args.skip_persist:
        results.update(persist_cases(args, progress))
    if not args.skip_e2e:
        results.update(service_cases(args, progress))
    if not args.skip_scale:
        results["fanout"] = fanout.measure(fanout.parse_args([]), progress)
        started = progress.start("takeover after kill -9, ttl 5 s, 10 trials")
        results["takeover"] = asyncio.run(takeover.run(10, 5.0, 10, progress))
        progress.end("takeover", started, "")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print()
    print_table(results)
    if "persist_rows_per_s" in results:
        r = results["persist_rows_per_s"]
        print(f"persist: spool -> PostgreSQL: {r['median']:,.0f} rows/s "
              f"({r['min']:,.0f}..{r['max']:,.0f})")  # fmt: skip
        lat = results["persist_receive_to_commit_ms"]
        print(f"persist: receive -> committed at {args.persist_rate:,} trades/s: "
              f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p99.9']:.1f} ms, "
              f"max {lat['max']:.1f} ms ({lat['trades']:,} trades)")  # fmt: skip
    if "service" in results:
        print_service(results["service"])
    if "workers" in results:
        workers.print_workers(results["workers"])
    if "fanout" in results:
        for name, f in results["fanout"].items():
            print(f"fan-out to 200 subscribers, {name}: {f['median']:,.0f} deliveries/s "
                  f"({f['min']:,.0f}..{f['max']:,.0f}; subscribers cut {f['cut']})")  # fmt: skip
    if "takeover" in results:
        t = results["takeover"]
        print(f"takeover after kill -9 (ttl {t['ttl_s']:g} s, {t['trials']} trials): "
              f"p50 {t['p50_s']:.2f} s, max {t['max_s']:.2f} s")  # fmt: skip
    print(f"written to {RESULTS}; {progress.elapsed():.0f} s in all")


def _venues(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VENUES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown venue(s) {unknown}: choose from {list(VENUES)}")
    return names


def print_service(service: dict[str, Any]) -> None:
    r = service["max_rate_10_symbols"]
    print(f"service: highest rate sustained, 10 symbols: {r['median']:,.0f} msgs/s "
          f"({r['min']:,.0f}..{r['max']:,.0f})")  # fmt: skip
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


def service_cases(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """The service in its own process, a feed server, a redis-server; medians of runs,
    the per-run percentiles kept whole in results.json."""
    redis_server = RedisServer()
    redis_server.start()
    runs = args.e2e_runs
    try:
        rates = []
        started = progress.start(f"service: highest rate, 10 symbols, {runs} runs")
        for i in range(runs):
            rates.append(e2e.max_rate(redis_server.url, 10, args.e2e_seconds))
            progress.line(f"service: highest rate run {i + 1}/{runs}: "
                          f"{rates[-1]['processed_msgs_per_s']:,.0f} msgs/s")  # fmt: skip
        max_rate = summarize([r["processed_msgs_per_s"] for r in rates])
        progress.end("service: highest rate", started, f"{max_rate['median']:,.0f} msgs/s")
        scale_out: dict[str, Any] = {}
        if not args.skip_workers:
            assert redis_server.process is not None
            scale_out["workers"] = workers.run(
                redis_server.url, args.workers_symbols, args.workers_runs, args.e2e_seconds,
                workers.FRAMES_PER_SYMBOL, progress, redis_server.process.pid,
            )  # fmt: skip
        at_5000 = []
        for symbols in (1, 10, 100):
            name = f"service at 5,000 msgs/s, {symbols} symbols"
            started = progress.start(f"{name}, {runs} runs")
            cases = []
            for i in range(runs):
                cases.append(e2e.latency_at(redis_server.url, symbols, 5000, args.e2e_seconds))
                p99 = cases[-1]["book_publish_ms"]["p99"]
                progress.line(f"{name} run {i + 1}/{runs}: book -> PUBLISH p99 {p99:.2f} ms")
            at_5000.append(_median_run(cases))
            p99 = at_5000[-1]["book_publish_ms"]["p99"]
            progress.end(name, started, f"median run's book -> PUBLISH p99 {p99:.2f} ms")
        started = progress.start("service: memory, 1 and 100 symbols")
        memory = e2e.memory_per_symbol(
            redis_server.url, 100, lambda text: progress.line(f"service: memory: {text}")
        )
        progress.end("service: memory", started, f"{memory['mb_per_symbol']:.2f} MB/symbol")
    finally:
        redis_server.stop()
    return {
        "service": {
            "max_rate_10_symbols": max_rate,
            "max_rate_runs": rates,
            "at_5000_msgs_per_s": at_5000,
            "memory": memory,
        },
        **scale_out,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose book p99 is the median one (percentiles are not averaged)."""
    ordered = sorted(runs, key=lambda r: r["book_publish_ms"]["p99"])
    return {**ordered[len(ordered) // 2], "runs": len(runs)}


def persist_cases(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """PostgreSQL with fsync on, and a redis-server, both started for the run."""
    redis_server, postgres = RedisServer(), PostgresServer(durable=True)
    redis_server.start()
    postgres.start()
    try:
        name = f"persist: {args.persist_trades:,} trades spool -> PostgreSQL"
        started = progress.start(f"{name}, {args.runs} runs")
        runs = []
        for i in range(args.runs):
            runs.append(
                asyncio.run(throughput(redis_server.url, postgres.dsn, args.persist_trades))
            )
            progress.line(f"persist run {i + 1}/{args.runs}: {runs[-1]:,.0f} rows/s")
        progress.end("persist", started, f"{summarize(runs)['median']:,.0f} rows/s")
        name = f"persist: receive -> committed at {args.persist_rate:,} trades/s"
        started = progress.start(f"{name} for {args.persist_seconds:.0f} s")
        values = sorted(
            asyncio.run(
                latency(redis_server.url, postgres.dsn, args.persist_rate, args.persist_seconds)
            )
        )
        progress.end(name, started, f"{len(values):,} trades")
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
