"""Floor and core: orjson.loads alone, then parse + sync + book apply, in process."""

from __future__ import annotations

import time

import orjson

from marketdata.book import PriceLevel
from marketdata.sync import BookSync, Outcome
from marketdata.venues.binance import BinanceFutures

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def floor_loads(frames: list[bytes]) -> float:
    """orjson.loads of every frame; msgs/s."""
    loads = orjson.loads
    started = time.perf_counter()
    for frame in frames:
        loads(frame)
    return len(frames) / (time.perf_counter() - started)


def core_parse_sync_apply(snapshots: dict[str, bytes], frames: list[bytes]) -> float:
    """Adapter parse + BookSync (continuity checks) + SortedDict apply; msgs/s."""
    return _replay(snapshots, frames)[0]


def core_tops(snapshots: dict[str, bytes], frames: list[bytes], depth: int) -> Tops:
    """The best `depth` levels per side of each book after every frame (for cross-checks)."""
    return {s: sync.book.top(depth) for s, sync in _replay(snapshots, frames)[1].items()}


def parse_sync_apply(snapshots: dict[str, bytes], frames: list[bytes]) -> tuple[float, Tops]:
    """msgs/s, and each book's top 20 levels a side at the end (what the peer must match)."""
    rate, syncs = _replay(snapshots, frames)
    return rate, {s: sync.book.top(20) for s, sync in syncs.items()}


def _replay(snapshots: dict[str, bytes], frames: list[bytes]) -> tuple[float, dict[str, BookSync]]:
    adapter = BinanceFutures()
    syncs = {s: BookSync(adapter.continuity) for s in snapshots}
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
    if applied < len(frames) - len(snapshots):
        raise RuntimeError(f"only {applied} of {len(frames)} diffs applied: the loop is broken")
    return len(frames) / elapsed, syncs
