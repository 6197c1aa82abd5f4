"""Spot core: our Binance spot parse + sync + book apply, and cryptofeed 2.4.1's Binance spot
handler, on the same real spot depth frames (the capture looped), alternated run by run.

    python -m bench.spot_core [--messages N] [--runs R]

Both start from the capture's own snapshots (5000 levels a side), loaded before the clock
starts (bench.peer.drive). Both books must end equal level for level, or the figures mean
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench.peer import PIN, available, drive
from marketdata.book import PriceLevel
from marketdata.sync import BookSync, Outcome
from marketdata.venues.binance import BinanceSpot

SPOT_CAPTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "binance_spot_2021-08-14.jsonl"
MAX_LEVELS = 20_000  # the snapshots hold 5000 a side; diffs add more outside them
QUOTES = ("USDT", "BTC")
Side = dict[float, tuple[str, str]]
Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def looped_spot_frames(total: int) -> tuple[dict[str, bytes], list[bytes]]:
    """(snapshot body per symbol, `total` depth frames), the capture repeated with its ids
    renumbered so that every diff has U == previous u + 1. Before each repetition, one diff
    per symbol takes its book back to the snapshot's levels (else replayed diffs cross it)."""
    snapshots, diffs = _captured()
    initial = {s: (_levels(v["bids"]), _levels(v["asks"])) for s, v in snapshots.items()}
    books = {s: (dict(b), dict(a)) for s, (b, a) in initial.items()}
    streams = {data["s"]: stream for stream, data in diffs}
    last_u: dict[str, int] = {}
    frames: list[bytes] = []
    while len(frames) < total:
        if last_u:
            for symbol, (bids, asks) in books.items():
                u = last_u[symbol] + 1
                reset = {"e": "depthUpdate", "E": 0, "s": symbol, "U": u, "u": u,
                         "b": _changes(bids, initial[symbol][0]),
                         "a": _changes(asks, initial[symbol][1])}  # fmt: skip
                _emit(frames, streams[symbol], reset, books, last_u)
        for stream, data in diffs:
            previous = last_u.get(data["s"])
            if previous is not None:  # the first one bridges the snapshot as recorded
                data = dict(data, U=previous + 1, u=previous + 1 + data["u"] - data["U"])
            _emit(frames, stream, data, books, last_u)
    return {s: orjson.dumps(v) for s, v in snapshots.items()}, frames[:total]


def _captured() -> tuple[dict[str, dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """The capture's first snapshot per symbol, and its diffs past each snapshot."""
    records = [orjson.loads(line) for line in SPOT_CAPTURE.read_bytes().splitlines()]
    snapshots: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["src"] == "rest":
            snapshots.setdefault(r["url"].split("symbol=")[1].split("&")[0], orjson.loads(r["raw"]))
    diffs = []
    for r in records:
        if r["src"] == "ws_in" and "depthUpdate" in r["raw"]:
            message = orjson.loads(r["raw"])
            if message["data"]["u"] > snapshots[message["data"]["s"]]["lastUpdateId"]:
                diffs.append((message["stream"], message["data"]))
    return snapshots, diffs


def _emit(
    frames: list[bytes],
    stream: str,
    data: dict[str, Any],
    books: dict[str, tuple[Side, Side]],
    last_u: dict[str, int],
) -> None:
    bids, asks = books[data["s"]]
    for side, levels in ((bids, data["b"]), (asks, data["a"])):
        for price, qty in levels:
            if float(qty) == 0:
                side.pop(float(price), None)
            else:
                side[float(price)] = (price, qty)
    last_u[data["s"]] = data["u"]
    frames.append(orjson.dumps({"stream": stream, "data": data}))


def _levels(levels: list[list[str]]) -> Side:
    return {float(p): (p, q) for p, q in levels if float(q) != 0}


def _changes(now: Side, target: Side) -> list[list[str]]:
    changes = [[now[p][0], "0"] for p in now if p not in target]
    changes += [list(level) for p, level in target.items() if now.get(p) != level]
    return changes


def core(snapshots: dict[str, bytes], frames: list[bytes]) -> tuple[float, Tops]:
    """BinanceSpot.parse + BookSync (the spot rule) + book apply; (msgs/s, top 20 books)."""
    adapter = BinanceSpot()
    syncs = {s: BookSync(adapter.continuity, max_levels=MAX_LEVELS) for s in snapshots}
    for symbol, body in snapshots.items():
        syncs[symbol].on_snapshot(adapter.parse_snapshot(symbol, body, 0.0))
    parse = adapter.parse
    applied, applied_outcome = 0, Outcome.APPLIED  # an Enum member lookup costs ~0.1 us
    started = time.perf_counter()
    for frame in frames:
        for diff in parse(frame, 0.0):
            if syncs[diff.symbol].on_diff(diff) is applied_outcome:  # type: ignore[arg-type]
                applied += 1
    elapsed = time.perf_counter() - started
    if applied != len(frames):
        raise RuntimeError(f"only {applied} of {len(frames)} diffs applied: the loop is broken")
    return len(frames) / elapsed, {s: sync.book.top(20) for s, sync in syncs.items()}


def cryptofeed(snapshots: dict[str, bytes], frames: list[bytes], expected: Tops) -> float:
    """cryptofeed Binance.message_handler over every frame; msgs/s."""
    texts = [frame.decode() for frame in frames]  # its WebSocket client hands on str
    return asyncio.run(_drive(snapshots, texts, expected))


async def _drive(snapshots: dict[str, bytes], frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import BINANCE, SPOT
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {}
    for s in snapshots:
        quote = next(q for q in QUOTES if s.endswith(q))
        names[Symbol(s.removesuffix(quote), quote, type=SPOT).normalized] = s
    info = {"tick_size": dict.fromkeys(names, "0.00000001"),
            "instrument_type": dict.fromkeys(names, SPOT)}  # fmt: skip
    Symbols.set(BINANCE, names, info)  # instead of GET /api/v3/exchangeInfo
    return await drive(Binance, names, snapshots, frames, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    snapshots, frames = looped_spot_frames(args.messages)
    ours, theirs = [], []
    expected: Tops = {}
    for _ in range(args.runs):  # alternated, so drift hits both alike
        rate, expected = core(snapshots, frames)
        ours.append(rate)
        if available():
            theirs.append(cryptofeed(snapshots, frames, expected))
    print(f"{len(frames):,} real Binance spot depth frames (capture looped), {args.runs} runs")
    print(f"{'case':<36} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    cases = [("core: spot parse + sync + apply", ours), (f"peer: {PIN} Binance spot", theirs)]
    for name, rates in cases:
        if rates:
            print(f"{name:<36} {statistics.median(rates):>14,.0f} {min(rates):>10,.0f} "
                  f"{max(rates):>10,.0f}")  # fmt: skip
    if theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"core: {1e6 / statistics.median(ours):.2f} us/msg, {ratio:.2f}x cryptofeed")
    else:
        print("peer: cryptofeed is not installed (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
