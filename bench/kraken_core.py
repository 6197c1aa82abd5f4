"""Kraken core: v2 parse + book apply + cut to depth + checksum, in process, no I/O.

The frames are the recorded Kraken v1 book capture rewritten as v2 (tests/kraken_v2.py):
4,321 frames (10 snapshots, 4,269 checksummed updates, heartbeats, status and acks),
looped; each loop starts again from the snapshots, so every update's checksum holds.
`python -m bench` runs it (bench/venues.py) against the cryptofeed peer (bench/kraken_peer.py)
on the same capture, alternated; `python -m bench.kraken_core` runs that case alone.
"""

from __future__ import annotations

import argparse
import statistics
import time

from marketdata.book import PriceLevel
from marketdata.venues.kraken import KrakenBook, Outcome, parse
from marketdata.venues.kraken.wire import BookMessage
from tests.kraken_v2 import DEPTH, V2Capture, convert

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def looped(frames: list[bytes], total: int) -> list[bytes]:
    return (frames * (total // len(frames) + 1))[:total]


def run(messages: int = 200_000, capture: V2Capture | None = None) -> float:
    """msgs/s for parse + apply + checksum over the converted capture, looped."""
    capture = capture or convert(trim=True)
    return parse_apply_verify(capture, looped(capture.frames, messages))[0]


def parse_apply_verify(capture: V2Capture, frames: list[bytes]) -> tuple[float, Tops]:
    """msgs/s, and each pair's top 20 at the end. Raises if any checksum failed."""
    books = {pair: KrakenBook(pair, DEPTH, p) for pair, p in capture.precisions.items()}
    verified, applied = 0, Outcome.APPLIED  # an Enum member lookup costs ~0.1 us
    started = time.perf_counter()
    for frame in frames:
        for event in parse(frame, 0.0):
            if type(event) is BookMessage:
                if books[event.symbol].on_message(event) is not applied:
                    raise RuntimeError(f"{event.symbol}: checksum mismatch: the loop is broken")
                verified += 1
    elapsed = time.perf_counter() - started
    if verified == 0:
        raise RuntimeError("no book message verified")
    return len(frames) / elapsed, {pair: b.book.top(20) for pair, b in books.items()}


def main() -> None:
    from bench import kraken_peer

    parser = argparse.ArgumentParser(prog="python -m bench.kraken_core")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    capture = convert(trim=True)
    ours_frames = looped(capture.frames, args.messages)
    v1_frames = kraken_peer.looped_v1(capture, args.messages)
    with_peer = kraken_peer.available()
    ours, theirs = [], []
    for _ in range(args.runs):  # alternate so drift hits both alike
        rate, tops = parse_apply_verify(capture, ours_frames)
        ours.append(rate)
        if with_peer:
            theirs.append(kraken_peer.cryptofeed_parse_apply_verify(capture, v1_frames, tops))
    print(f"{len(ours_frames):,} Kraken book frames (v1 capture looped), {args.runs} runs")
    print(f"{'case':<40} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    rows = [("kraken core: v2 parse+apply+checksum", ours)]
    if with_peer:
        rows.append((f"peer: {kraken_peer.PIN} Kraken (v1)", theirs))
    for name, values in rows:
        print(f"{name:<40} {statistics.median(values):>14,.0f} {min(values):>10,.0f} "
              f"{max(values):>10,.0f}")  # fmt: skip
    if with_peer:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"kraken core: {ratio:.2f}x cryptofeed")


if __name__ == "__main__":
    main()
