"""Spool entries decoded into the rows the sinks write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import orjson

Entry = tuple[bytes, dict[bytes, bytes]]  # (stream id, fields) as redis-py returns them


class BadEntry(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TradeRow:
    entry_id: bytes
    time: datetime  # exchange trade time
    exchange: str
    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    side: str
    recv_time: datetime
    recv_ts_ms: float


@dataclass(frozen=True, slots=True)
class BookRow:
    entry_id: bytes
    time: datetime  # when the service sampled the book
    exchange: str
    symbol: str
    last_update_id: int
    exchange_time: datetime
    recv_time: datetime
    bids: str  # JSON [[price, qty], ...], the exchange's strings
    asks: str


def trade_row(entry: Entry) -> TradeRow:
    entry_id, f = entry
    try:
        recv_ms = float(f[b"recv_ts"])
        return TradeRow(
            entry_id=entry_id,
            time=_time(int(f[b"exchange_ts"])),
            exchange=f[b"exchange"].decode(),
            symbol=f[b"symbol"].decode(),
            trade_id=int(f[b"trade_id"]),
            price=Decimal(f[b"price"].decode()),
            qty=Decimal(f[b"qty"].decode()),
            side=f[b"side"].decode(),
            recv_time=_time(recv_ms),
            recv_ts_ms=recv_ms,
        )
    except (KeyError, ValueError, InvalidOperation, UnicodeDecodeError, OverflowError) as e:
        raise BadEntry(f"trade entry {entry_id!r}: {e!r}") from None


def book_row(entry: Entry) -> BookRow:
    entry_id, f = entry
    try:
        bids, asks = f[b"bids"].decode(), f[b"asks"].decode()
        orjson.loads(bids), orjson.loads(asks)
        return BookRow(
            entry_id=entry_id,
            time=_time(int(f[b"time"])),
            exchange=f[b"exchange"].decode(),
            symbol=f[b"symbol"].decode(),
            last_update_id=int(f[b"last_update_id"]),
            exchange_time=_time(int(f[b"exchange_ts"])),
            recv_time=_time(float(f[b"recv_ts"])),
            bids=bids,
            asks=asks,
        )
    except (KeyError, ValueError, UnicodeDecodeError, OverflowError, orjson.JSONDecodeError) as e:
        raise BadEntry(f"book entry {entry_id!r}: {e!r}") from None


def _time(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
