"""Kraken spot WebSocket v2 (`wss://ws.kraken.com/v2`) frames -> Kraken events. Pure, no I/O.

    {"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD",
     "bids": [{"price": 45283.5, "qty": 0.1}], "asks": [], "checksum": 3310070434,
     "timestamp": "2023-10-06T17:35:55.440295Z"}]}

Prices and quantities are JSON numbers. orjson would turn them into floats, and a float
cannot always give back the digits it was read from (a 17-digit quantity, or `0.00001`,
which comes back as `1e-05`): the checksum and the published text need the exchange's own
digits. So frames are read by the standard library's C scanner with `parse_float=str`,
which keeps each non-integer number's literal text; integers stay ints and are written
back exactly. Each level is (price_float, qty_float, price_text, qty_text) like
marketdata.events.Level; the float is only for ordering and range checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.scanner import make_scanner
from typing import Any

from marketdata.events import Level, Trade
from marketdata.venues.base import KNOWN_DECIMALS, MalformedMessage, decimal_value, to_trade_id

NAME = "kraken"
WS_URL = "wss://ws.kraken.com/v2"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The C scanner, with number texts (typeshed types its argument as the scanner itself).
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder(parse_float=str)  # type: ignore[arg-type]
)


@dataclass(slots=True)
class BookMessage:
    """One symbol's entry of a `book` frame: in-band snapshot or update, with its checksum."""

    symbol: str
    snapshot: bool  # True: replaces the book; False: levels to apply
    bids: list[Level]
    asks: list[Level]
    checksum: int  # CRC32 of the top 10 levels after this message is applied
    exchange_ts: int  # ms
    recv_ts: float


@dataclass(slots=True)
class Trades:
    """The trades of one `trade` frame. A snapshot (sent on subscribing) repeats the last
    50 trades, which may already have been seen before a resubscribe."""

    snapshot: bool
    trades: list[Trade]


@dataclass(slots=True)
class Bbo:
    """Best bid/offer from the `ticker` channel (`event_trigger: bbo`); no update id."""

    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    recv_ts: float


@dataclass(slots=True)
class Heartbeat:
    recv_ts: float


@dataclass(slots=True)
class Status:
    system: str  # "online", "maintenance", "cancel_only", "post_only"
    api_version: str
    connection_id: int | None
    version: str


@dataclass(slots=True)
class Ack:
    """Reply to a subscribe/unsubscribe request."""

    method: str
    success: bool
    req_id: int | None
    channel: str | None
    symbol: str | None
    error: str | None


@dataclass(slots=True)
class Pong:
    req_id: int | None


@dataclass(slots=True, frozen=True)
class Precision:
    price: int  # decimals of a price
    qty: int  # decimals of a quantity


@dataclass(slots=True)
class Instruments:
    """Pairs of the `instrument` channel: the precision the checksum renders at."""

    pairs: dict[str, Precision]


KrakenEvent = BookMessage | Trades | Bbo | Heartbeat | Status | Ack | Pong | Instruments


def loads(frame: bytes | str) -> Any:
    """JSON with non-integer numbers kept as their literal text. Raises MalformedMessage."""
    try:
        text = frame.decode() if isinstance(frame, bytes) else frame
    except UnicodeDecodeError:
        raise MalformedMessage("bad_json", "frame is not UTF-8") from None
    try:
        value, end = _scan(text, 0)
    except json.JSONDecodeError as e:
        raise MalformedMessage("bad_json", str(e)) from None
    except StopIteration:
        raise MalformedMessage("bad_json", f"not JSON: {text[:80]!r}") from None
    if end != len(text) and text[end:].strip():
        raise MalformedMessage("bad_json", f"extra data at {end}")
    return value


def parse(frame: bytes | str, recv_ts: float) -> Sequence[KrakenEvent]:
    """Events in one frame. Raises MalformedMessage naming what is wrong."""
    message = loads(frame)
    if type(message) is not dict:
        raise MalformedMessage("bad_shape", "frame is not a JSON object")
    channel = message.get("channel")
    try:
        if channel is not None:
            handler = _CHANNELS.get(channel)
            if handler is None:
                raise MalformedMessage("unknown_channel", f"channel {channel!r}")
            return handler(message, recv_ts)
        method = message.get("method")
        if method == "pong":
            return (Pong(_opt_int(message.get("req_id"), "req_id")),)
        if method in ("subscribe", "unsubscribe"):
            return (_ack(message),)
        raise MalformedMessage("unknown_message", f"no channel, method {method!r}")
    except KeyError as e:
        raise MalformedMessage("missing_field", f"{channel or 'reply'} has no {e}") from None
    except (TypeError, AttributeError) as e:
        raise MalformedMessage("bad_shape", f"{channel or 'reply'}: {e}") from None


def _data(message: dict[str, Any]) -> list[Any]:
    data = message["data"]
    if type(data) is not list:
        raise MalformedMessage("bad_shape", f"{message.get('channel')} 'data' is not a list")
    return data


def _is_snapshot(message: dict[str, Any]) -> bool:
    kind = message["type"]
    if kind == "update":
        return False
    if kind == "snapshot":
        return True
    raise MalformedMessage("bad_field", f"{message['channel']} type {kind!r}")


def _book(message: dict[str, Any], recv_ts: float) -> list[BookMessage]:
    snapshot = _is_snapshot(message)
    out = []
    for entry in _data(message):
        symbol = _symbol(entry)
        checksum = entry["checksum"]
        if type(checksum) is not int or not 0 <= checksum < 1 << 32:
            raise MalformedMessage("bad_checksum", f"{symbol} checksum {checksum!r}")
        out.append(
            BookMessage(
                symbol,
                snapshot,
                levels(entry["bids"], symbol, "bids"),
                levels(entry["asks"], symbol, "asks"),
                checksum,
                to_ms(entry["timestamp"], symbol),
                recv_ts,
            )
        )
    return out


def levels(raw: Any, symbol: str, side: str) -> list[Level]:
    """[{"price": n, "qty": n}, ...] -> Levels. Per level of every book message: inline.

    Each number's text must be a canonical decimal (base.decimal_value's rule: ASCII digits,
    an optional fraction), as Binance's are: the JSON scanner keeps a number's literal text,
    so `1e5` or `-1` would otherwise reach the book and the checksum. A text seen before
    costs one dict lookup (base.KNOWN_DECIMALS); an integer (Kraken may send `45280` or `0`)
    is written back as its digits first.
    """
    if type(raw) is not list:
        raise MalformedMessage("bad_field", f"{symbol} {side} is not a list")
    known = KNOWN_DECIMALS
    out = []
    for entry in raw:
        try:
            price_text, qty_text = entry["price"], entry["qty"]
        except (TypeError, KeyError):
            raise MalformedMessage("bad_level", f"{symbol} {side} entry {entry!r}") from None
        try:
            price, qty = known.get(price_text), known.get(qty_text)
        except TypeError:  # unhashable: a list or an object where a number should be
            raise MalformedMessage("bad_type", f"{symbol} {side}: {entry!r}") from None
        if price is None:
            price_text, price = _decimal(price_text, symbol, side)
        if qty is None:
            qty_text, qty = _decimal(qty_text, symbol, side)
        if not price:  # canonical decimals are never negative
            raise MalformedMessage("bad_level", f"{symbol} {side}: {entry!r} price 0")
        out.append((price, qty, price_text, qty_text))
    return out


def _decimal(value: Any, symbol: str, side: str) -> tuple[str, float]:
    """A number's text (an integer's digits) and its value; bad_type, bad_number if not a
    canonical decimal."""
    text = str(value) if type(value) is int else value  # not bool: True is no number
    return text, decimal_value(text, f"{symbol} {side}")


def _number(value: Any, where: str) -> tuple[float, str]:
    """A positive canonical decimal and its text (trade and ticker fields)."""
    text = str(value) if type(value) is int else value
    number = decimal_value(text, where)
    if not number:
        raise MalformedMessage("bad_number", f"{where}: {value!r} is not positive")
    return number, text


def _trade(message: dict[str, Any], recv_ts: float) -> list[Trades]:
    snapshot = _is_snapshot(message)
    trades = []
    for entry in _data(message):
        symbol = _symbol(entry)
        price, price_text = _number(entry["price"], f"{symbol} trade price")
        qty, qty_text = _number(entry["qty"], f"{symbol} trade qty")
        side = entry["side"]
        if side != "buy" and side != "sell":
            raise MalformedMessage("bad_field", f"{symbol} trade side {side!r}")
        trade_id = to_trade_id(entry["trade_id"], "trade_id")
        trades.append(
            Trade(
                exchange=NAME,
                symbol=symbol,
                trade_id=str(trade_id),
                price=price,
                qty=qty,
                price_text=price_text,
                qty_text=qty_text,
                side=side,
                exchange_ts=to_ms(entry["timestamp"], symbol),
                recv_ts=recv_ts,
                sequence=trade_id,
            )
        )
    return [Trades(snapshot, trades)]


def _ticker(message: dict[str, Any], recv_ts: float) -> list[Bbo]:
    _is_snapshot(message)
    out = []
    for entry in _data(message):
        symbol = _symbol(entry)
        texts = [_number(entry[key], f"{symbol} ticker {key}")[1] for key in _BBO_KEYS]
        out.append(Bbo(symbol, texts[0], texts[1], texts[2], texts[3], recv_ts))
    return out


_BBO_KEYS = ("bid", "bid_qty", "ask", "ask_qty")


def _heartbeat(message: dict[str, Any], recv_ts: float) -> list[Heartbeat]:
    return [Heartbeat(recv_ts)]


def _status(message: dict[str, Any], recv_ts: float) -> list[Status]:
    return [
        Status(
            system=_text(entry["system"], "status system"),
            api_version=_text(entry.get("api_version", ""), "status api_version"),
            connection_id=_opt_int(entry.get("connection_id"), "connection_id"),
            version=_text(entry.get("version", ""), "status version"),
        )
        for entry in _data(message)
    ]


def _instrument(message: dict[str, Any], recv_ts: float) -> list[Instruments]:
    data = message["data"]
    if type(data) is not dict:
        raise MalformedMessage("bad_shape", "instrument 'data' is not an object")
    pairs = {}
    for pair in data["pairs"]:
        symbol = _symbol(pair)
        price, qty = pair["price_precision"], pair["qty_precision"]
        if type(price) is not int or type(qty) is not int or price < 0 or qty < 0:
            raise MalformedMessage("bad_field", f"{symbol} precision {price!r}/{qty!r}")
        pairs[symbol] = Precision(price, qty)
    return [Instruments(pairs)]


def _ack(message: dict[str, Any]) -> Ack:
    success = message["success"]
    if type(success) is not bool:
        raise MalformedMessage("bad_type", f"{message['method']} success {success!r}")
    result = message.get("result")
    result = result if type(result) is dict else {}
    symbol = result.get("symbol", message.get("symbol"))
    error = message.get("error")
    return Ack(
        method=message["method"],
        success=success,
        req_id=_opt_int(message.get("req_id"), "req_id"),
        channel=_opt_text(result.get("channel"), "channel"),
        symbol=_opt_text(symbol, "symbol"),
        error=None if error is None else str(error),
    )


def _symbol(entry: Any) -> str:
    symbol = entry["symbol"]
    if type(symbol) is not str or not symbol:
        raise MalformedMessage("bad_type", f"symbol {symbol!r}")
    return symbol


def _text(value: Any, where: str) -> str:
    if type(value) is not str:
        raise MalformedMessage("bad_type", f"{where} {value!r} is not a string")
    return value


def _opt_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _opt_int(value: Any, where: str) -> int | None:
    if value is not None and type(value) is not int:
        raise MalformedMessage("bad_type", f"{where} {value!r} is not an integer")
    return value


def to_ms(timestamp: Any, symbol: str) -> int:
    """RFC 3339 ("2023-10-06T17:35:55.440295Z") -> Unix ms, in integers (no float)."""
    try:
        delta = datetime.fromisoformat(timestamp) - _EPOCH
    except (TypeError, ValueError):
        raise MalformedMessage("bad_field", f"{symbol} timestamp {timestamp!r}") from None
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_Handler = Callable[[dict[str, Any], float], Sequence[KrakenEvent]]
_CHANNELS: dict[Any, _Handler] = {
    "book": _book,
    "trade": _trade,
    "ticker": _ticker,
    "heartbeat": _heartbeat,
    "status": _status,
    "instrument": _instrument,
}
