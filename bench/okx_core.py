"""OKX core: v5 parse + book apply + legacy checksum, in process, no I/O.

The frames are the OKX v5 recording (tests/fixtures/okx_v5_2022-05-13.jsonl): 290 book
messages of three instruments (each a 400-level snapshot, then updates, every one with its
checksum), trades, tickers and subscribe replies, looped; each loop starts again from the
snapshots, so every checksum holds. `python -m bench` runs the books frames as its `okx`
core case (bench/venues.py); `python -m bench.okx_core` prints these figures alone, and the
cryptofeed peer's (bench/okx_peer.py) on the same book frames, alternated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from marketdata.book import PriceLevel
from marketdata.venues.okx import BookMessage, OkxBook, Outcome, parse
from tests.okx_capture import INSTRUMENTS, load

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def looped(frames: list[bytes], total: int) -> list[bytes]:
    return (frames * (total // len(frames) + 1))[:total]


def run(messages: int = 100_000) -> float:
    """msgs/s for parse + apply + checksum over the recording, looped."""
    return parse_apply_verify(looped(load().frames, messages))[0]


def parse_apply_verify(frames: list[bytes]) -> tuple[float, Tops]:
    """msgs/s, and each instrument's top 20 at the end. Raises if any checksum failed."""
    books = {inst: OkxBook(inst) for inst in INSTRUMENTS}
    verified = 0
    started = time.perf_counter()
    for frame in frames:
        for event in parse(frame, 0.0):
            if type(event) is BookMessage:
                if books[event.inst_id].on_message(event) is not Outcome.APPLIED:
                    raise RuntimeError(f"{event.inst_id}: {books[event.inst_id].failure}")
                verified += 1
    elapsed = time.perf_counter() - started
    if verified == 0:
        raise RuntimeError("no book message verified")
    return len(frames) / elapsed, {inst: b.book.top(20) for inst, b in books.items()}


def main() -> None:
    from bench import okx_peer

    parser = argparse.ArgumentParser(prog="python -m bench.okx_core")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    capture = load()
    frames = looped(capture.frames, args.messages)
    book_frames = looped(capture.book_frames, args.messages)
    with_peer = okx_peer.available()
    every, books, theirs = [], [], []
    for _ in range(args.runs):  # alternate so drift hits all alike
        every.append(parse_apply_verify(frames)[0])
        rate, tops = parse_apply_verify(book_frames)
        books.append(rate)
        if with_peer:
            theirs.append(okx_peer.cryptofeed_parse_apply_verify(book_frames, tops))
    print(f"{args.messages:,} OKX frames (2022 recording looped), {args.runs} runs")
    print(f"{'case':<44} {'median msgs/s':>14} {'min':>10} {'max':>10}")
    rows = [("okx core: every frame", every), ("okx core: books frames", books)]
    if with_peer:
        rows.append((f"peer: {okx_peer.PIN} OKX books frames", theirs))
    for name, values in rows:
        print(f"{name:<44} {statistics.median(values):>14,.0f} {min(values):>10,.0f} "
              f"{max(values):>10,.0f}")  # fmt: skip
    if with_peer:
        ratio = statistics.median(books) / statistics.median(theirs)
        print(f"okx core: {ratio:.2f}x cryptofeed on books frames")


if __name__ == "__main__":
    main()
