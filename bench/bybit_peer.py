"""Peer: cryptofeed's Bybit handler (v5 public) on the same capture, with no network.

Its message_handler does what bench/bybit_core.py does, less the checks: JSON parse
(Decimal numbers), the book apply (a snapshot replaces the book; it follows no `u` chain
and does not look for a crossed book) and the trades. Its callbacks only keep the book and
count the trades.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from marketdata.book import PriceLevel

PIN = "cryptofeed 2.4.1"  # as pinned by the bench extra in pyproject.toml
URL = "wss://stream.bybit.com/v5/public/linear"  # its handler reads the category from it
Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


def available() -> bool:
    try:
        import cryptofeed  # noqa: F401
    except ImportError:
        return False
    return True


def cryptofeed_parse_apply(frames: list[bytes], expected: Tops) -> float:
    """cryptofeed Bybit.message_handler over every frame; msgs/s. Its final books must
    equal `expected` (ours) level for level, or the figure means nothing."""
    texts = [frame.decode() for frame in frames]
    return asyncio.run(_drive(sorted(expected), texts, expected))


async def _drive(symbols: list[str], frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import BYBIT, L2_BOOK, PERPETUAL, TRADES
    from cryptofeed.exchanges import Bybit
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {}
    for symbol in symbols:  # its own mapping (_parse_symbol_data), instead of the REST list
        names[Symbol(symbol.removesuffix("USDT"), "USDT", type=PERPETUAL).normalized] = symbol
    Symbols.set(BYBIT, names, {"instrument_type": dict.fromkeys(names, PERPETUAL)})
    books: dict[str, Any] = {}
    trades = 0

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        books[names[book.symbol]] = book

    async def on_trade(trade: Any, receipt_timestamp: float) -> None:
        nonlocal trades
        trades += 1

    feed = Bybit(
        symbols=list(names),
        channels=[L2_BOOK, TRADES],
        callbacks={L2_BOOK: on_book, TRADES: on_trade},
    )
    handle = feed.message_handler
    conn = SimpleNamespace(address=URL, uuid="bench")
    started = time.perf_counter()
    for frame in frames:
        await handle(frame, conn, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    if trades == 0:
        raise RuntimeError("cryptofeed published no trade")
    for symbol, (bids, asks) in expected.items():
        theirs = books[symbol].book
        for name, ours, side in (("bids", bids, theirs.bids), ("asks", asks, theirs.asks)):
            got = [side.index(i) for i in range(min(len(ours), len(side)))]
            want = [(Decimal(p), Decimal(q)) for p, q in ours]
            if got != want:
                raise RuntimeError(f"cryptofeed's {symbol} {name} differ from ours")
    return len(frames) / elapsed
