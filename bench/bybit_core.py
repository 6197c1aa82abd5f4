"""Bybit core: v5 parse + book apply (u chain, crossed check) + trades, in process, no I/O.

The frames are the recorded Bybit v5 linear capture (tests/fixtures): its `orderbook.200`
and `publicTrade` frames and the subscribe replies (1,717 frames: 4 snapshots of 200
levels a side, 1,594 deltas, 102 trade frames of 327 trades, 17 replies), looped; each
loop starts again from the snapshots, which replace the books, so every delta chains.
`python -m bench` runs it as its `bybit` core case (bench/venues.py); `python -m
bench.bybit_core` prints its figure alone, and the cryptofeed peer's (bench/bybit_peer.py)
on the same frames, alternated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from marketdata.book import PriceLevel
from marketdata.venues.bybit import BookMessage, BybitBook, Outcome, Trades, parse
from tests.bybit_v5 import SERVICE_TOPICS, load

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]
_GOOD = (Outcome.SNAPSHOT, Outcome.APPLIED)


def frames() -> list[bytes]:
    return load().topic_frames(*SERVICE_TOPICS)


def looped(frames: list[bytes], total: int) -> list[bytes]:
    return (frames * (total // len(frames) + 1))[:total]


def run(messages: int = 200_000) -> float:
    """msgs/s for parse + apply over the capture, looped."""
    return parse_apply(looped(frames(), messages))[0]


def parse_apply(frames: list[bytes]) -> tuple[float, Tops]:
    """msgs/s, and each symbol's top 20 at the end. Raises if any delta broke its chain."""
    books: dict[str, BybitBook] = {}
    applied = trades = 0
    started = time.perf_counter()
    for frame in frames:
        for event in parse(frame, 0.0):
            if type(event) is BookMessage:
                book = books.get(event.symbol)
                if book is None:
                    book = books[event.symbol] = BybitBook(event.symbol)
                if book.on_message(event) not in _GOOD:
                    raise RuntimeError(f"{event.symbol}: the chain broke: the loop is wrong")
                applied += 1
            elif type(event) is Trades:
                trades += len(event.trades)
    elapsed = time.perf_counter() - started
    if applied == 0 or trades == 0:
        raise RuntimeError("no book message applied or no trade parsed")
    return len(frames) / elapsed, {symbol: b.book.top(20) for symbol, b in books.items()}


def main() -> None:
    from bench import bybit_peer

    parser = argparse.ArgumentParser(prog="python -m bench.bybit_core")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ours_frames = looped(frames(), args.messages)
    with_peer = bybit_peer.available()
    ours, theirs = [], []
    for _ in range(args.runs):  # alternate so drift hits both alike
        rate, tops = parse_apply(ours_frames)
        ours.append(rate)
        if with_peer:
            theirs.append(bybit_peer.cryptofeed_parse_apply(ours_frames, tops))
    print(f"{len(ours_frames):,} Bybit frames (v5 linear capture looped), {args.runs} runs")
    print(f"{'case':<40} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    rows = [("bybit core: v5 parse+apply+checks", ours)]
    if with_peer:
        rows.append((f"peer: {bybit_peer.PIN} Bybit (v5)", theirs))
    for name, values in rows:
        print(f"{name:<40} {statistics.median(values):>14,.0f} {min(values):>10,.0f} "
              f"{max(values):>10,.0f}")  # fmt: skip
    if with_peer:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"bybit core: {ratio:.2f}x cryptofeed")


if __name__ == "__main__":
    main()
