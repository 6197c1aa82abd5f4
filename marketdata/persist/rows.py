"""Spool entries decoded into the rows the sinks write."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import orjson

Entry = tuple[bytes, dict[bytes, bytes]]  # (stream id, fields) as redis-py returns them

MAX_TRADE_ID_CHARS = 128
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode Cc: C0, DEL, C1 (NUL included)


class BadEntry(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TradeRow:
    entry_id: bytes
    time: datetime  # exchange trade time
    exchange: str
    symbol: str
    trade_id: str  # the venue's id as text: "8270341", "abc-1", "01J9..."
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
    last_update_id: int | None  # None: the venue numbers no updates (Kraken); "" in the entry
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
            trade_id=_trade_id(entry_id, f[b"trade_id"]),
            price=Decimal(f[b"price"].decode()),
            qty=Decimal(f[b"qty"].decode()),
            side=f[b"side"].decode(),
            recv_time=_time(recv_ms),
            recv_ts_ms=recv_ms,
        )
    except BadEntry:
        raise
    except (KeyError, ValueError, InvalidOperation, UnicodeDecodeError, OverflowError) as e:
        raise BadEntry(f"trade entry {entry_id!r}: {e!r}") from None


def _trade_id(entry_id: bytes, raw: bytes) -> str:
    """The entry's trade_id as text. Refused when no store should keep it: empty, too long
    to be an id, or holding a control character (PostgreSQL text cannot hold NUL, and no
    venue's id has one)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise BadEntry(
            f"trade entry {entry_id!r}: trade_id {raw[:40]!r} is not UTF-8: {e}"
        ) from None
    why = None
    if not text:
        why = "is empty"
    elif len(text) > MAX_TRADE_ID_CHARS:
        why = f"is {len(text)} characters, over {MAX_TRADE_ID_CHARS}"
    elif (control := CONTROL.search(text)) is not None:
        why = f"holds the control character {control.group()!r}"
    if why is not None:
        raise BadEntry(f"trade entry {entry_id!r}: trade_id {text[:40]!r} {why}")
    return text


def book_row(entry: Entry) -> BookRow:
    entry_id, f = entry
    try:
        bids, asks = f[b"bids"].decode(), f[b"asks"].decode()
        orjson.loads(bids), orjson.loads(asks)
        update_id = f[b"last_update_id"]
        return BookRow(
            entry_id=entry_id,
            time=_time(int(f[b"time"])),
            exchange=f[b"exchange"].decode(),
            symbol=f[b"symbol"].decode(),
            last_update_id=int(update_id) if update_id else None,
            exchange_time=_time(int(f[b"exchange_ts"])),
            recv_time=_time(float(f[b"recv_ts"])),
            bids=bids,
            asks=asks,
        )
    except (KeyError, ValueError, UnicodeDecodeError, OverflowError, orjson.JSONDecodeError) as e:
        raise BadEntry(f"book entry {entry_id!r}: {e!r}") from None


def _time(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
