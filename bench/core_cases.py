"""Runs the per-venue core cases (bench/venues.py) and prints their table.

Each round runs the floor (orjson.loads alone), ours and the peer's on the same frames, one
after the other, so that drift on a noisy machine hits all three alike; the figures are the
medians of the rounds, with min and max beside them.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.core import floor_loads
from bench.progress import Progress
from bench.venues import VENUES, CoreCase


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_venues(
    venues: list[str], messages: int, runs: int, peer: str | None, progress: Progress
) -> dict[str, Any]:
    """Every venue's case; `peer` is the peer's name, None when it is not installed."""
    results: dict[str, Any] = {"runs": runs, "peer": peer, "core": {}}
    for venue in venues:
        started = progress.start(f"core {venue}: preparing the frames")
        case = VENUES[venue](messages, peer is not None)
        progress.end(f"core {venue}: frames ready", started, f"{len(case.frames):,} frames")
        results["core"][venue] = run_case(case, runs, progress)
    return results


def run_case(case: CoreCase, runs: int, progress: Progress) -> dict[str, Any]:
    name = f"core {case.venue}"
    started = progress.start(f"{name}: {runs} runs")
    floor, ours, theirs = [], [], []
    for i in range(runs):
        floor.append(floor_loads(case.frames))
        rate, tops = case.ours()
        ours.append(rate)
        line = f"{name} run {i + 1}/{runs}: ours {rate:,.0f} msgs/s"
        if case.peer is not None:
            theirs.append(case.peer(tops))
            line += f", cryptofeed {theirs[-1]:,.0f} msgs/s"
        progress.line(line)
    median = statistics.median(ours)
    result: dict[str, Any] = {
        "frames": case.label,
        "messages": len(case.frames),
        "floor_orjson_loads_msgs_per_s": summarize(floor),
        "ours_msgs_per_s": summarize(ours),
        "us_per_msg": 1e6 / median,
        "vs_floor": median / statistics.median(floor),
    }
    if case.note:
        result["note"] = case.note
    figure = f"ours {median:,.0f} msgs/s"
    if theirs:
        result["peer_msgs_per_s"] = summarize(theirs)
        result["vs_peer"] = median / statistics.median(theirs)
        result["vs_peer_per_run"] = summarize([a / b for a, b in zip(ours, theirs, strict=True)])
        figure += f", {result['vs_peer']:.2f}x cryptofeed"
    progress.end(name, started, figure)
    return result


def print_table(results: dict[str, Any]) -> None:
    peer = results["peer"] or "cryptofeed"
    print(f"Core: parse + sync + book apply in process, per venue, on the same real frames "
          f"(captures looped); msgs/s, median of {results['runs']} alternated runs")  # fmt: skip
    print(f"{'venue':<16} {'frames':>8} {'floor':>10} {'ours':>10} {'min..max':>19} "
          f"{'us/msg':>6} {peer:>16} {'min..max':>19} {'ratio':>6} {'per run':>10}")  # fmt: skip
    for venue, r in results["core"].items():
        o = r["ours_msgs_per_s"]
        row = (f"{venue:<16} {r['messages']:>8,} "
               f"{r['floor_orjson_loads_msgs_per_s']['median']:>10,.0f} {o['median']:>10,.0f} "
               f"{_span(o):>19} {r['us_per_msg']:>6.2f} ")  # fmt: skip
        if "peer_msgs_per_s" in r:
            p, q = r["peer_msgs_per_s"], r["vs_peer_per_run"]
            row += (f"{p['median']:>16,.0f} {_span(p):>19} {r['vs_peer']:>5.2f}x "
                    f"{q['min']:>4.2f}..{q['max']:.2f}")  # fmt: skip
        else:
            row += f"{'not installed':>16} {'-':>19} {'-':>6} {'-':>10}"
        print(row)
    print("floor: orjson.loads alone of the same frames. ratio: our median over the peer's; "
          "per run: ours/peer within each run, min..max.")  # fmt: skip
    for r in results["core"].values():
        if "note" in r:
            print(r["note"])
    if results["peer"] is None:
        print("peer: cryptofeed is not installed (pip install -e '.[bench]'): no peer figures")


def _span(r: dict[str, float]) -> str:
    return f"{r['min']:,.0f}..{r['max']:,.0f}"
