"""Peer: cryptofeed's Coinbase handler (Advanced Trade) on the same frames, no network.

Its message_handler does what bench/coinbase_core.py does, and less: JSON parse (Decimal
numbers) and the book apply (the order_book C extension), with no sequence_num check and
no crossed check. Its book callback only keeps the book, its trade callback counts.

Its books are not ours: its snapshot reads the ask side as `side == "ask"`, but Coinbase
writes `offer`, so every snapshot ask is dropped and its ask side holds only the levels
that updates touched since. The bids are compared level for level, and the asks are
checked to be that broken subset, so the figure is for the same work.
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


def cryptofeed_parse_apply(frames: list[str], expected: Tops) -> float:
    """cryptofeed Coinbase.message_handler over every frame; msgs/s. Its final bids must
    equal `expected` (ours), or the figure means nothing."""
    return asyncio.run(_drive(frames, expected))


async def _drive(frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import COINBASE, L2_BOOK, TRADES
    from cryptofeed.exchanges import Coinbase
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {}
    for product in expected:  # its own mapping, instead of the signed GET /products
        base, quote = product.split("-")
        names[Symbol(base, quote).normalized] = product
    Symbols.set(COINBASE, names, {"instrument_type": dict.fromkeys(names, "spot")})
    books: dict[str, Any] = {}
    trades = 0

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        books[names[book.symbol]] = book

    async def on_trade(trade: Any, receipt_timestamp: float) -> None:
        nonlocal trades
        trades += 1

    feed = Coinbase(
        symbols=list(names), channels=[L2_BOOK, TRADES],
        callbacks={L2_BOOK: on_book, TRADES: on_trade},
    )  # fmt: skip
    handle = feed.message_handler
    started = time.perf_counter()
    for frame in frames:
        await handle(frame, None, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    if trades == 0:
        raise RuntimeError("cryptofeed passed on no trade")
    _check(books, expected)
    return len(frames) / elapsed


def _check(books: dict[str, Any], expected: Tops) -> None:
    """Its bids equal ours level for level, and its asks (the broken subset) do not go
    below our best ask; RuntimeError otherwise."""
    for product, (bids, asks) in expected.items():
        theirs = books[product].book
        got = [theirs.bids.index(i) for i in range(min(len(bids), len(theirs.bids)))]
        if got != [(Decimal(p), Decimal(q)) for p, q in bids]:
            raise RuntimeError(f"cryptofeed's {product} bids differ from ours")
        if len(theirs.asks) and theirs.asks.index(0)[0] < Decimal(asks[0][0]):
            raise RuntimeError(f"cryptofeed's {product} asks differ from ours: below our best")


def cryptofeed_updates_only(frames: list[str], loops: int, expected: Tops | None = None) -> float:
    """msgs/s over the level2 update frames alone (the snapshots fed once, untimed). With
    `expected` (ours, after as many loops), its final books are checked against it."""
    return asyncio.run(_drive_updates(frames, loops, expected))


async def _drive_updates(frames: list[str], loops: int, expected: Tops | None) -> float:
    from cryptofeed.defines import COINBASE, L2_BOOK
    from cryptofeed.exchanges import Coinbase
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {Symbol(*p.split("-")).normalized: p for p in ("BTC-USD", "ETH-USD")}
    Symbols.set(COINBASE, names, {"instrument_type": dict.fromkeys(names, "spot")})
    applied = 0
    books: dict[str, Any] = {}

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        nonlocal applied
        applied += 1
        books[names[book.symbol]] = book

    feed = Coinbase(symbols=list(names), channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
    handle = feed.message_handler
    updates = []
    for frame in frames:  # the snapshots load its books; the updates after them are timed
        await handle(frame, None, 0.0)
        if frame.startswith('{"channel":"l2_data"') and '"type":"update"' in frame[:200]:
            updates.append(frame)
    started = time.perf_counter()
    for _ in range(loops):
        for frame in updates:
            await handle(frame, None, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    if applied < loops * len(updates):
        raise RuntimeError(f"cryptofeed applied {applied} of {loops * len(updates)} updates")
    if expected is not None:
        _check(books, expected)
    return loops * len(updates) / elapsed
