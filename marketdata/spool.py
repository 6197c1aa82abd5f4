"""The durable spool: two Redis Streams the service appends to and `marketdata persist`
drains. Entries are flat string fields, readable with `redis-cli XRANGE spool:trades - +`.

spool:trades  one entry per trade: exchange, symbol, trade_id, price, qty, side,
              exchange_ts (ms), recv_ts (ms, with microseconds); backfilled "1" on a
              trade fetched over REST to fill a gap in the stream
spool:books   one top-N snapshot per symbol every snapshot_interval_ms: exchange, symbol,
              last_update_id ("" on a venue without update ids), time (ms, when
              sampled), exchange_ts, recv_ts, bids, asks
              (JSON [[price, qty], ...])

Capacity: the two streams together hold at most `max_entries`. Book snapshots are refused
once they would fill past `books_refuse_fraction` of it, trades only at the cap; every
refusal is counted. Entries leave the spool only when every consumer group has
acknowledged them (the persist process trims with XTRIM MINID).

On a Redis Cluster (redis_cluster: true) the spool is `spool.partitions` pairs of streams,
spool:trades:{p0} and spool:books:{p0}, ...: the hash tag puts a pair in one slot (one
XREADGROUP reads both, one node's XLENs tell its fill), and different pairs spread over
the masters. A symbol's entries always go to the same pair (partition_of), so its trades
stay in order; each pair holds at most max_entries / partitions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson

from marketdata.book import PriceLevel
from marketdata.events import Trade

TRADES_STREAM = "spool:trades"
BOOKS_STREAM = "spool:books"
STREAMS = (TRADES_STREAM, BOOKS_STREAM)


@dataclass(frozen=True, slots=True)
class SpoolStreams:
    """One partition of the spool: its trades stream and its books stream."""

    trades: str
    books: str

    @property
    def both(self) -> tuple[str, str]:
        return self.trades, self.books


PLAIN = SpoolStreams(TRADES_STREAM, BOOKS_STREAM)


def spool_partitions(cluster: bool, partitions: int = 1) -> list[SpoolStreams]:
    """The spool's stream pairs: spool:trades and spool:books on one Redis; hash-tagged
    spool:trades:{p<i>} and spool:books:{p<i>} on a cluster."""
    if not cluster:
        return [PLAIN]
    return [
        SpoolStreams(f"{TRADES_STREAM}:{{p{i}}}", f"{BOOKS_STREAM}:{{p{i}}}")
        for i in range(partitions)
    ]


def partition_of(exchange: str, symbol: str, partitions: int) -> int:
    """The partition of a symbol's entries: the same in every process and every run."""
    return zlib.crc32(f"{exchange}:{symbol}".encode()) % partitions


Fields = dict[bytes | str, bytes | str]


def trade_entry(trade: Trade) -> dict[str, str]:
    entry = {
        "exchange": trade.exchange,
        "symbol": trade.symbol,
        "trade_id": trade.trade_id,
        "price": trade.price_text,
        "qty": trade.qty_text,
        "side": trade.side,
        "exchange_ts": str(trade.exchange_ts),
        "recv_ts": f"{trade.recv_ts * 1000:.3f}",
    }
    if trade.backfilled:
        entry["backfilled"] = "1"
    return entry


def book_entry(
    exchange: str,
    symbol: str,
    last_update_id: int | None,
    time_ms: int,
    exchange_ts: int,
    recv_ts: float,
    bids: list[PriceLevel],
    asks: list[PriceLevel],
) -> dict[str, str | bytes]:
    return {
        "exchange": exchange,
        "symbol": symbol,
        "last_update_id": "" if last_update_id is None else str(last_update_id),
        "time": str(time_ms),
        "exchange_ts": str(exchange_ts),
        "recv_ts": f"{recv_ts * 1000:.3f}",
        "bids": orjson.dumps(bids),
        "asks": orjson.dumps(asks),
    }


@dataclass
class SpoolCapacity:
    """Decides what may still be appended, from the lengths Redis last reported."""

    max_entries: int
    books_refuse_fraction: float = 0.8
    length: int = 0  # both streams, as of the last flush, plus what was admitted since

    def admit(self, trades: int, books: int) -> tuple[int, int]:
        """How many of the offered trades and books may be appended now."""
        room = max(0, self.max_entries - self.length)
        admitted_trades = min(trades, room)
        book_room = max(0, int(self.max_entries * self.books_refuse_fraction) - self.length)
        book_room = max(0, min(book_room, room - admitted_trades))
        admitted_books = min(books, book_room)
        self.length += admitted_trades + admitted_books
        return admitted_trades, admitted_books
