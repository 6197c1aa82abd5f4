"""Peer: cryptofeed's OKX handler on the same recording, with no network.

Its message_handler does what bench/okx_core.py does for `books`: JSON parse (Decimal
numbers), the book apply and, with checksum_validation on, the legacy CRC32 check (its
books are the order_book C extension). It is given the book frames only (its trades and
tickers handlers would need more of its symbol metadata); its book callback only keeps
the book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from marketdata.book import PriceLevel

PIN = "cryptofeed 2.4.1"  # as pinned by the bench extra in pyproject.toml
Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def available() -> bool:
    try:
        import cryptofeed  # noqa: F401
    except ImportError:
        return False
    return True


def cryptofeed_parse_apply_verify(frames: list[bytes], expected: Tops) -> float:
    """cryptofeed OKX.message_handler over every book frame, checksums on; msgs/s. Its
    final books must equal `expected` (ours) level for level, or the figure means nothing."""
    return asyncio.run(_drive([f.decode() for f in frames], expected))


def _names() -> dict[str, str]:
    from cryptofeed.defines import FUTURES, PERPETUAL, SPOT
    from cryptofeed.symbols import Symbol

    # its own mapping (_parse_symbol_data), instead of GET /api/v5/public/instruments
    return {
        Symbol("BTC", "USD", type=FUTURES, expiry_date="220527").normalized: "BTC-USD-220527",
        Symbol("UNI", "USD", type=PERPETUAL).normalized: "UNI-USD-SWAP",
        Symbol("BTC", "USDT", type=SPOT).normalized: "BTC-USDT",
    }


async def _drive(frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.defines import OKX as OKX_NAME
    from cryptofeed.exchanges import OKX
    from cryptofeed.symbols import Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = _names()
    Symbols.set(OKX_NAME, names, {"instrument_type": dict.fromkeys(names, "spot")})
    books: dict[str, Any] = {}
    calls = 0

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        nonlocal calls
        calls += 1
        books[names[book.symbol]] = book

    feed = OKX(
        symbols=list(names), channels=[L2_BOOK], callbacks={L2_BOOK: on_book},
        checksum_validation=True,
    )  # fmt: skip
    handle = feed.message_handler
    started = time.perf_counter()
    for frame in frames:
        await handle(frame, None, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    if calls != len(frames):
        raise RuntimeError(f"cryptofeed handled {calls} of {len(frames)} book frames")
    for inst, (bids, asks) in expected.items():
        theirs = books[inst].book
        for name, ours, side in (("bids", bids, theirs.bids), ("asks", asks, theirs.asks)):
            got = [side.index(i) for i in range(min(len(ours), len(side)))]
            want = [(Decimal(p), Decimal(q)) for p, q in ours]
            if got != want:
                raise RuntimeError(f"cryptofeed's {inst} {name} differ from ours")
    return len(frames) / elapsed
