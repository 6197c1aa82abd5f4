"""Real capture frames, looped with the id chain rewritten so it stays continuous."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

CAPTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "binance_futures_2021-07-22.jsonl"
Side = dict[float, tuple[str, str]]


def looped_depth_frames(total: int) -> tuple[dict[str, bytes], list[bytes]]:
    """(snapshot body per symbol, `total` depth frames) from the capture, repeated.

    Each repetition shifts U/u/pu so every diff chains onto the previous one. The market
    moved during the capture, so before each repetition one extra diff per symbol (in the
    chain, like any other) takes that symbol's book back to its snapshot levels; without
    it the replayed diffs would cross the book.
    """
    records = [orjson.loads(line) for line in CAPTURE.read_bytes().splitlines()]
    snapshots: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["src"] == "rest":
            symbol = r["url"].split("symbol=")[1].split("&")[0]
            snapshots.setdefault(symbol, orjson.loads(r["raw"]))
    diffs = []
    for r in records:
        if r["src"] == "ws_in" and "@depth" in r["raw"]:
            message = orjson.loads(r["raw"])
            if message["data"]["u"] >= snapshots[message["data"]["s"]]["lastUpdateId"]:
                diffs.append((message["stream"], message["data"]))
    initial = {s: (_levels(v["bids"]), _levels(v["asks"])) for s, v in snapshots.items()}
    books = {s: (dict(b), dict(a)) for s, (b, a) in initial.items()}
    streams = {data["s"]: stream for stream, data in diffs}
    last_u: dict[str, int | None] = dict.fromkeys(snapshots)
    frames: list[bytes] = []
    shift = 0
    while len(frames) < total:
        if shift:
            for symbol, (bids, asks) in books.items():
                reset = {
                    "e": "depthUpdate", "E": 0, "T": 0, "s": symbol,
                    "U": last_u[symbol] + 1, "u": last_u[symbol] + 1, "pu": last_u[symbol],
                    "b": _changes(bids, initial[symbol][0]),
                    "a": _changes(asks, initial[symbol][1]),
                }  # fmt: skip
                _emit(frames, streams[symbol], reset, books, last_u)
        for stream, data in diffs:
            d = dict(data, U=data["U"] + shift, u=data["u"] + shift)
            d["pu"] = last_u[d["s"]] if last_u[d["s"]] is not None else d["pu"]
            _emit(frames, stream, d, books, last_u)
        shift += 10**9
    return {s: orjson.dumps(v) for s, v in snapshots.items()}, frames[:total]


def _emit(
    frames: list[bytes],
    stream: str,
    data: dict[str, Any],
    books: dict[str, tuple[Side, Side]],
    last_u: dict[str, int | None],
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
    """Levels that turn `now` into `target`: removals as qty 0, the rest absolute."""
    changes = [[now[p][0], "0"] for p in now if p not in target]
    changes += [list(level) for p, level in target.items() if now.get(p) != level]
    return changes
