"""Peer: cryptofeed's Binance futures handler on the same frames, with no network.

Its own message_handler does what our core case does: JSON parse, the U/u/pu continuity
check and the book apply (its books are the order_book C extension). It does less checking
than ours: no crossed-book check (see `drive`), and Decimal() takes any number form where
ours takes only canonical decimal strings and range-checks every id. The REST snapshot it
asks for is answered from the same capture before the clock starts (ours is loaded before
it too); its book callback only keeps the book. `drive` serves the spot case as well.
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


def cryptofeed_parse_sync_apply(
    snapshots: dict[str, bytes], frames: list[bytes], expected: Tops
) -> float:
    """cryptofeed BinanceFutures.message_handler over every frame; msgs/s. Its final books
    must equal `expected` (ours) level for level, or the figure means nothing."""
    texts = [frame.decode() for frame in frames]  # its WebSocket client hands on str
    return asyncio.run(_drive(snapshots, texts, expected))


async def _drive(snapshots: dict[str, bytes], frames: list[str], expected: Tops) -> float:
    from cryptofeed.defines import BINANCE_FUTURES, PERPETUAL
    from cryptofeed.exchanges import BinanceFutures
    from cryptofeed.symbols import Symbol, Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    names = {Symbol(s.removesuffix("USDT"), "USDT", type=PERPETUAL).normalized: s
             for s in snapshots}  # fmt: skip
    info = {"tick_size": dict.fromkeys(names, "0.0001"),
            "instrument_type": dict.fromkeys(names, PERPETUAL)}  # fmt: skip
    Symbols.set(BINANCE_FUTURES, names, info)  # instead of GET /fapi/v1/exchangeInfo
    return await drive(BinanceFutures, names, snapshots, frames, expected)


async def drive(
    feed_class: Any, names: dict[str, str], snapshots: dict[str, bytes], frames: list[str],
    expected: Tops,
) -> float:  # fmt: skip
    """A cryptofeed Binance feed over `frames`, timed; msgs/s. `names`: its symbol -> ours.

    Like our core case, it starts from the snapshots already loaded: its own `_snapshot`,
    which its handler calls on a symbol's first diff, is called before the clock starts.
    Its `cross_check` stays off (the default), though ours checks every applied diff for a
    crossed book: its check reads the best levels with `SortedDict.index(0)`, which sorts the
    side again after any price came or went (21 us on a 1000-level side, 111 us on 5000),
    so with it on the peer ran at 11,000 msgs/s instead of 130,000 on the spot books."""
    from cryptofeed.defines import L2_BOOK

    books: dict[str, Any] = {}
    calls = 0

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        nonlocal calls
        calls += 1
        books[names[book.symbol]] = book

    async def read_snapshot(url: str, **_: Any) -> bytes:  # instead of GET .../depth
        return snapshots[url.split("symbol=")[1].split("&")[0]]

    feed = feed_class(symbols=list(names), channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
    feed.http_conn.read = read_snapshot
    for symbol in snapshots:
        await feed._snapshot(symbol)
    calls = 0
    handle = feed.message_handler
    started = time.perf_counter()
    for frame in frames:
        await handle(frame, None, 0.0)
    elapsed = time.perf_counter() - started
    await feed.http_conn.close()
    if calls < len(frames):
        raise RuntimeError(f"cryptofeed handled {calls} of {len(frames)} frames")
    for symbol, (bids, asks) in expected.items():
        theirs = books[symbol].book
        for name, ours, side in (("bids", bids, theirs.bids), ("asks", asks, theirs.asks)):
            got = [side.index(i) for i in range(min(len(ours), len(side)))]
            want = [(Decimal(p), Decimal(q)) for p, q in ours]
            if got != want:
                raise RuntimeError(f"cryptofeed's {symbol} {name} differ from ours: the "
                                   f"frames were not all applied")  # fmt: skip
    return len(frames) / elapsed
