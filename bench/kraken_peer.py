"""Peer: cryptofeed's Kraken handler (WebSocket v1) on the same capture, with no network.

Its message_handler does what bench/kraken_core.py does: JSON parse (Decimal numbers),
the book apply and, with checksum_validation on, the CRC32 check (its books are the
order_book C extension). It reads the v1 frames as recorded; ours reads the same
messages rewritten as v2. Its book callback only keeps the book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from marketdata.book import PriceLevel
from tests.kraken_v2 import V2Capture

PIN = "cryptofeed 2.4.1"  # as pinned by the bench extra in pyproject.toml
Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def available() -> bool:
    try:
        import cryptofeed  # noqa: F401
    except ImportError:
        return False
    return True


def looped_v1(capture: V2Capture, total: int) -> list[str]:
    frames = capture.v1_frames
    return (frames * (total // len(frames) + 1))[:total]


def cryptofeed_parse_apply_verify(capture: V2Capture, frames: list[str], expected: Tops) -> float:
    """cryptofeed Kraken.message_handler over every frame, checksums on; msgs/s. Its final
    books must equal `expected` (ours) level for level, or the figure means nothing."""
    return asyncio.run(_drive(list(capture.precisions), frames, expected))


async def _drive(pairs: list[str], frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import KRAKEN, L2_BOOK
    from cryptofeed.exchanges import Kraken
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {}
    for pair in pairs:  # its own mapping (_parse_symbol_data), instead of GET AssetPairs
        base, quote = pair.replace("XBT", "BTC").split("/")
        names[Symbol(base, quote).normalized] = pair
    Symbols.set(KRAKEN, names, {"instrument_type": dict.fromkeys(names, "spot")})
    books: dict[str, Any] = {}
    calls = 0

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        nonlocal calls
        calls += 1
        books[names[book.symbol]] = book

    feed = Kraken(
        symbols=list(names),
        channels=[L2_BOOK],
        callbacks={L2_BOOK: on_book},
        checksum_validation=True,
    )
    handle = feed.message_handler
    started = time.perf_counter()
    for frame in frames:
        await handle(frame, None, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    book_frames = sum(1 for f in frames if f.startswith("["))
    if calls != book_frames:
        raise RuntimeError(f"cryptofeed handled {calls} of {book_frames} book frames")
    for pair, (bids, asks) in expected.items():
        theirs = books[pair].book
        for name, ours, side in (("bids", bids, theirs.bids), ("asks", asks, theirs.asks)):
            got = [side.index(i) for i in range(min(len(ours), len(side)))]
            want = [(Decimal(p), Decimal(q)) for p, q in ours]
            if got != want:
                raise RuntimeError(f"cryptofeed's {pair} {name} differ from ours")
    return len(frames) / elapsed
