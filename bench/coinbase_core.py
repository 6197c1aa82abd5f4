"""Coinbase core: parse + sequence check + level2 book apply + crossed check, in process.

The frames are the recorded Advanced Trade connection (tests/fixtures, 1,030 frames: two
whole-book snapshots of 5.1 and 2.5 MB, 773 level2 updates, tickers, trades, heartbeats),
looped; each loop is taken as a new connection (its count starts at 0 again and its
snapshots replace the books). The snapshots dominate a loop, so the updates alone (the
steady state) and one snapshot are timed apart as well. `python -m bench` runs both as
core cases (`coinbase_l2`, `coinbase_all`, bench/venues.py); `python -m bench.coinbase_core`
prints these figures alone, and cryptofeed's (bench/coinbase_peer.py) on the same frames,
alternated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from marketdata.book import PriceLevel
from marketdata.venues.coinbase import BookEvent, CoinbaseBook, Outcome, SequenceCheck, parse
from tests.coinbase_capture import PRODUCTS, load

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def looped(frames: list[bytes], total: int) -> list[bytes]:
    return (frames * (total // len(frames) + 1))[:total]


def parse_apply(frames: list[bytes]) -> tuple[float, Tops]:
    """msgs/s, and each product's top 20 at the end. Raises on a gap or a crossed book."""
    books = {p: CoinbaseBook(p) for p in PRODUCTS}
    sequence = SequenceCheck()
    applied = 0
    started = time.perf_counter()
    for frame in frames:
        parsed = parse(frame, 0.0)
        number = parsed.sequence
        if number is not None:
            if number == 0:
                sequence.reset()  # the loop starts over: a new connection
            if sequence.check(number) is not None:
                raise RuntimeError(f"sequence gap at {number}: the loop is broken")
        for event in parsed.events:
            if type(event) is BookEvent:
                if books[event.symbol].on_event(event) is not Outcome.APPLIED:
                    raise RuntimeError(f"{event.symbol}: book not applied: the loop is broken")
                applied += 1
    elapsed = time.perf_counter() - started
    if applied == 0:
        raise RuntimeError("no book event applied")
    return len(frames) / elapsed, {p: b.book.top(20) for p, b in books.items()}


def updates_only(frames: list[bytes], loops: int) -> float:
    """msgs/s over the level2 updates alone: each loop loads the snapshots again outside
    the timing (an old update applied to a later book could cross it)."""
    return updates_only_tops(frames, loops)[0]


def updates_only_tops(frames: list[bytes], loops: int) -> tuple[float, Tops]:
    """`updates_only`, and each product's top 20 at the end."""
    snapshots, updates = _split(frames)
    books = {p: CoinbaseBook(p) for p in PRODUCTS}
    elapsed = 0.0
    for _ in range(loops):
        for snapshot in snapshots:
            books[snapshot.symbol].on_event(snapshot)
        started = time.perf_counter()
        for frame in updates:
            for event in parse(frame, 0.0).events:
                if type(event) is BookEvent and books[event.symbol].on_event(event) is not (
                    Outcome.APPLIED
                ):
                    raise RuntimeError(f"{event.symbol}: update not applied")
        elapsed += time.perf_counter() - started
    return loops * len(updates) / elapsed, {p: b.book.top(20) for p, b in books.items()}


def update_frames(frames: list[bytes]) -> list[bytes]:
    """The level2 update frames after the snapshots, as `updates_only` times them."""
    return _split(frames)[1]


def _split(frames: list[bytes]) -> tuple[list[BookEvent], list[bytes]]:
    """The snapshots, and the level2 update frames after them."""
    snapshots: list[BookEvent] = []
    updates: list[bytes] = []
    for frame in frames:
        for event in parse(frame, 0.0).events:
            if type(event) is not BookEvent:
                continue
            if event.snapshot:
                snapshots.append(event)
            elif any(s.symbol == event.symbol for s in snapshots):
                updates.append(frame)
    return snapshots, updates


def snapshot_seconds(frames: list[bytes]) -> float:
    """Parse + load of the BTC-USD snapshot (5.1 MB, 46,000 levels), in seconds."""
    frame = next(f for f in frames if b'"type":"snapshot","product_id":"BTC-USD"' in f[:200])
    book = CoinbaseBook("BTC-USD")
    started = time.perf_counter()
    (event,) = parse(frame, 0.0).events
    assert type(event) is BookEvent
    book.on_event(event)
    return time.perf_counter() - started


def main() -> None:
    from bench import coinbase_peer

    parser = argparse.ArgumentParser(prog="python -m bench.coinbase_core")
    parser.add_argument("--messages", type=int, default=20_600)  # 20 loops
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    capture = load()
    frames = looped(capture.frames, args.messages)
    texts = [f.decode() for f in frames]
    with_peer = coinbase_peer.available()
    ours, theirs, steady, theirs_steady, snapshot = [], [], [], [], []
    for _ in range(args.runs):  # alternate so drift hits both alike
        rate, tops = parse_apply(frames)
        ours.append(rate)
        steady.append(updates_only(capture.frames, 20))
        snapshot.append(snapshot_seconds(capture.frames) * 1000)
        if with_peer:
            theirs.append(coinbase_peer.cryptofeed_parse_apply(texts, tops))
            recorded = [f.decode() for f in capture.frames]
            theirs_steady.append(coinbase_peer.cryptofeed_updates_only(recorded, 20))
    print(f"{len(frames):,} Coinbase frames (the recording looped), {args.runs} runs")
    print(f"{'case':<50} {'median':>12} {'min':>10} {'max':>10}")
    rows = [
        ("coinbase core: all frames, msgs/s", ours),
        ("coinbase core: level2 updates only, msgs/s", steady),
        ("coinbase core: BTC-USD snapshot, ms", snapshot),
    ]
    if with_peer:
        rows.append((f"peer: {coinbase_peer.PIN}: all frames, msgs/s", theirs))
        rows.append((f"peer: {coinbase_peer.PIN}: updates only, msgs/s", theirs_steady))
    for name, values in rows:
        print(f"{name:<50} {statistics.median(values):>12,.1f} {min(values):>10,.1f} "
              f"{max(values):>10,.1f}")  # fmt: skip
    if with_peer:
        ratio = statistics.median(ours) / statistics.median(theirs)
        steady_ratio = statistics.median(steady) / statistics.median(theirs_steady)
        print(
            f"coinbase core: {ratio:.2f}x cryptofeed (all frames: its snapshots drop the "
            f"asks), {steady_ratio:.2f}x (level2 updates only)"
        )


if __name__ == "__main__":
    main()
