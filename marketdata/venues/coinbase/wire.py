"""Coinbase Advanced Trade market data (`wss://advanced-trade-ws.coinbase.com`) frames ->
Coinbase events. Pure, no I/O.

Every data frame has one envelope:

    {"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.505350477Z",
     "sequence_num": 14, "events": [{"type": "update", "product_id": "BTC-USD",
     "updates": [{"side": "bid", "event_time": "2026-08-09T21:05:48.210883Z",
                  "price_level": "65062.5", "new_quantity": "0.00583"}]}]}

`sequence_num` counts every frame of the connection (all channels, all products), so it is
kept on the Frame, not on the events. Prices and sizes are decimal strings and stay text;
each level is a marketdata.events.Level. Errors come as `{"type": "error", "message": ...}`
with no sequence number. Channels this client does not use (`candles`, `status`, ...) are
passed over, as Coinbase asks clients to ignore what they do not support.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

from marketdata.events import Level, Side, Trade
from marketdata.venues.base import KNOWN_DECIMALS, MAX_ID, MalformedMessage, decimal_value

NAME = "coinbase"
WS_URL = "wss://advanced-trade-ws.coinbase.com"

# market_trades `side` is the maker's: a trade printed at the best ask comes as SELL (the
# resting offer sold), one at the best bid as BUY; in the recording, 48 SELLs at the ask,
# 23 BUYs at the bid and none the other way, and a BUY batch walks down the bids. The
# taker's side is the other one.
_TAKER_SIDE: dict[Any, Side] = {"SELL": "buy", "BUY": "sell"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INF = float("inf")
_MANY = 256  # levels in a snapshot from which they are checked in bulk


@dataclass(slots=True)
class BookEvent:
    """One product's `l2_data` event: a full snapshot, or levels to set (qty 0 deletes)."""

    symbol: str
    snapshot: bool
    bids: list[Level]
    asks: list[Level]  # Coinbase's side "offer"
    exchange_ts: int  # ms: the event_time of the event's last update (0: none given)
    recv_ts: float


@dataclass(slots=True)
class Trades:
    """The trades of one `market_trades` event, oldest first. A snapshot (sent on
    subscribing) repeats recent trades, which may have been seen already."""

    snapshot: bool
    trades: list[Trade]


@dataclass(slots=True)
class Ticker:
    """One product's `ticker`: the venue's own best bid and ask, no update id."""

    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str


@dataclass(slots=True)
class Subscriptions:
    """Everything the connection is subscribed to now: channel -> product ids."""

    channels: dict[str, frozenset[str]]


@dataclass(slots=True)
class Heartbeat:
    counter: int


@dataclass(slots=True)
class Error:
    message: str


CoinbaseEvent = BookEvent | Trades | Ticker | Subscriptions | Heartbeat | Error


@dataclass(slots=True)
class Frame:
    """One frame: its place in the connection's sequence (None on an error) and events."""

    sequence: int | None
    channel: str
    events: list[CoinbaseEvent]


def parse(frame: bytes | str, recv_ts: float) -> Frame:
    """The events of one frame. Raises MalformedMessage naming what is wrong."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage("bad_json", str(e)) from None
    if type(message) is not dict:
        raise MalformedMessage("bad_shape", "frame is not a JSON object")
    channel = message.get("channel")
    if channel is None:
        return _no_channel(message)
    try:
        sequence = message["sequence_num"]
        if type(sequence) is not int or not 0 <= sequence < MAX_ID:
            raise MalformedMessage("bad_ids", f"{channel} sequence_num {sequence!r}")
        events = message["events"]
        if type(events) is not list:
            raise MalformedMessage("bad_shape", f"{channel} 'events' is not a list")
        handler = _CHANNELS.get(channel)
        if handler is None:
            return Frame(sequence, str(channel), [])  # a channel this client does not use
        out: list[CoinbaseEvent] = []
        for event in events:
            out += handler(event, recv_ts)
        return Frame(sequence, channel, out)
    except KeyError as e:
        raise MalformedMessage("missing_field", f"{channel} has no {e}") from None
    except (TypeError, AttributeError) as e:
        raise MalformedMessage("bad_shape", f"{channel}: {e}") from None


def _no_channel(message: dict[str, Any]) -> Frame:
    """`{"type": "error", "message": ...}` (no sequence_num); anything else is unknown."""
    kind = message.get("type")
    if kind != "error":
        raise MalformedMessage("unknown_message", f"no channel, type {kind!r}")
    text = message.get("message") or message.get("reason") or "no reason given"
    return Frame(None, "error", [Error(str(text))])


def _is_snapshot(event: dict[str, Any], channel: str) -> bool:
    kind = event["type"]
    if kind == "update":
        return False
    if kind == "snapshot":
        return True
    raise MalformedMessage("bad_field", f"{channel} event type {kind!r}")


def _book(event: dict[str, Any], recv_ts: float) -> list[BookEvent]:
    symbol = event["product_id"]
    if type(symbol) is not str or not symbol:
        raise MalformedMessage("bad_type", f"product_id {symbol!r}")
    kind = event["type"]  # _is_snapshot, inline: this runs for every level2 frame
    if kind == "update":
        snapshot = False
    elif kind == "snapshot":
        snapshot = True
    else:
        raise MalformedMessage("bad_field", f"l2_data event type {kind!r}")
    updates = event["updates"]
    if type(updates) is not list:
        raise MalformedMessage("bad_field", f"{symbol} updates is not a list")
    if snapshot and len(updates) > _MANY:
        bids, asks = _many_levels(updates, symbol)
    else:
        bids, asks = _levels(updates, symbol)
    exchange_ts = to_ms(updates[-1]["event_time"], symbol) if updates else 0
    return [BookEvent(symbol, snapshot, bids, asks, exchange_ts, recv_ts)]


def _levels(updates: list[Any], symbol: str) -> tuple[list[Level], list[Level]]:
    """Per level of every update: the checks are inline (decimal_value's rule), and a text
    seen before costs one dict lookup (base.KNOWN_DECIMALS)."""
    known = KNOWN_DECIMALS.get
    bids: list[Level] = []
    asks: list[Level] = []
    for update in updates:
        side = update["side"]
        price_text = update["price_level"]
        qty_text = update["new_quantity"]
        try:
            price = known(price_text)
            qty = known(qty_text)
        except TypeError:  # unhashable: a list or an object where a string should be
            raise MalformedMessage("bad_type", f"{symbol} level {update!r}") from None
        if price is None:
            price = decimal_value(price_text, f"{symbol} price_level")
        if qty is None:
            qty = decimal_value(qty_text, f"{symbol} new_quantity")
        if not price:
            raise MalformedMessage("bad_level", f"{symbol} level {update!r}: price 0")
        if side == "bid":
            bids.append((price, qty, price_text, qty_text))
        elif side == "offer":
            asks.append((price, qty, price_text, qty_text))
        else:
            raise MalformedMessage("bad_field", f"{symbol} level side {side!r}")
    return bids, asks


def _many_levels(updates: list[Any], symbol: str) -> tuple[list[Level], list[Level]]:
    """A whole-book snapshot (46,000 levels on BTC-USD), checked in bulk: the fields taken
    out by itemgetter, every text's form checked over them all joined (_all_canonical),
    then float() by map, and the sides cut apart by slicing when Coinbase sent every bid
    before every offer (as it does), with no per-level Python step. Its prices (nearly all
    distinct, far from the top) stay out of KNOWN_DECIMALS, which they would flush.
    Anything refused is found again by the per-level loop, for its error."""
    try:
        prices = list(map(_PRICE, updates))
        qtys = list(map(_QTY, updates))
        sides = list(map(_SIDE, updates))
        canonical = _all_canonical(prices) and _all_canonical(qtys)
        values = list(map(float, prices)) if canonical else []
        sizes = list(map(float, qtys)) if canonical else []
    except (TypeError, ValueError):  # not text, or not one number (float refuses "1.2.3")
        canonical = False
    if not canonical or 0.0 in values or _INF in values or _INF in sizes:
        _levels(updates, symbol)  # raises, naming the level
        raise MalformedMessage("bad_number", f"{symbol} snapshot has a level out of range")
    levels = list(zip(values, sizes, prices, qtys, strict=True))
    n_bids = sides.count("bid")
    if sides[n_bids:].count("offer") == len(sides) - n_bids:  # bids first, then offers
        return levels[:n_bids], levels[n_bids:]
    bids = [level for level, side in zip(levels, sides, strict=True) if side == "bid"]
    asks = [level for level, side in zip(levels, sides, strict=True) if side == "offer"]
    if len(bids) + len(asks) != len(levels):
        _levels(updates, symbol)  # raises bad_field, naming the side
    return bids, asks


_SIDE = itemgetter("side")
_PRICE = itemgetter("price_level")
_QTY = itemgetter("new_quantity")
_NO_DOTS_OR_SEPARATORS = str.maketrans("", "", ".\n")


def _all_canonical(texts: list[str]) -> bool:
    """Whether every text that float() also takes is `[0-9]+(\\.[0-9]+)?` (decimal_value's
    form), by string methods over them all joined with "\\n": no text holds a "\\n", and
    there are only ASCII digits, dots and the separators, with no dot at either end of a
    text. float() refuses the rest ("1.2.3", "", "."): the caller maps them all. Raises
    TypeError when one is not a str."""
    joined = "\n".join(texts)
    return (
        joined.count("\n") == len(texts) - 1
        and joined.isascii()
        and joined.translate(_NO_DOTS_OR_SEPARATORS).isdigit()
        and joined[0] != "."
        and joined[-1] != "."
        and "\n." not in joined
        and ".\n" not in joined
    )


def _trades(event: dict[str, Any], recv_ts: float) -> list[Trades]:
    snapshot = _is_snapshot(event, "market_trades")
    raw = event["trades"]
    if type(raw) is not list:
        raise MalformedMessage("bad_field", "market_trades trades is not a list")
    trades = [_trade(entry, recv_ts) for entry in raw]
    # Newest first on the wire (a snapshot's 100 and an update's batch alike): id order.
    if all(t.sequence is not None for t in trades):
        trades.sort(key=lambda t: t.sequence or 0)
    else:
        trades.reverse()
    return [Trades(snapshot, trades)]


def _trade(entry: dict[str, Any], recv_ts: float) -> Trade:
    symbol = _symbol(entry["product_id"])
    price_text, qty_text = entry["price"], entry["size"]
    price = _positive(price_text, f"{symbol} trade price")
    qty = _positive(qty_text, f"{symbol} trade size")
    side = _TAKER_SIDE.get(entry["side"])
    if side is None:
        raise MalformedMessage("bad_field", f"{symbol} trade side {entry['side']!r}")
    trade_id = entry["trade_id"]
    if type(trade_id) is not str or not trade_id:
        raise MalformedMessage("bad_type", f"{symbol} trade_id {trade_id!r}")
    # The ids are integers counting each product's trades in the recording (no gap in 147
    # and 132 of them); an id that is not one is kept as text, with no sequence.
    sequence = int(trade_id) if trade_id.isascii() and trade_id.isdigit() else None
    if sequence is not None and sequence >= MAX_ID:
        sequence = None
    return Trade(
        exchange=NAME,
        symbol=symbol,
        trade_id=trade_id,
        price=price,
        qty=qty,
        price_text=price_text,
        qty_text=qty_text,
        side=side,
        exchange_ts=to_ms(entry["time"], symbol),
        recv_ts=recv_ts,
        sequence=sequence,
    )


def _ticker(event: dict[str, Any], recv_ts: float) -> list[Ticker]:
    _is_snapshot(event, "ticker")
    out = []
    for entry in event["tickers"]:
        symbol = _symbol(entry["product_id"])
        texts = []
        for key in _TICKER_KEYS:
            text = entry[key]
            decimal_value(text, f"{symbol} ticker {key}")
            texts.append(text)
        out.append(Ticker(symbol, texts[0], texts[1], texts[2], texts[3]))
    return out


_TICKER_KEYS = ("best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity")


def _subscriptions(event: dict[str, Any], recv_ts: float) -> list[Subscriptions]:
    listed = event["subscriptions"]
    if type(listed) is not dict:
        raise MalformedMessage("bad_field", "subscriptions is not an object")
    channels = {}
    for channel, products in listed.items():
        if type(products) is not list or not all(type(p) is str for p in products):
            raise MalformedMessage("bad_field", f"subscriptions {channel!r}: {products!r}")
        channels[channel] = frozenset(products)
    return [Subscriptions(channels)]


def _heartbeat(event: dict[str, Any], recv_ts: float) -> list[Heartbeat]:
    counter = event["heartbeat_counter"]
    if type(counter) is not int:
        raise MalformedMessage("bad_type", f"heartbeat_counter {counter!r}")
    return [Heartbeat(counter)]


def _symbol(value: Any) -> str:
    if type(value) is not str or not value:
        raise MalformedMessage("bad_type", f"product_id {value!r}")
    return value


def _positive(text: Any, where: str) -> float:
    value = decimal_value(text, where)
    if not value:
        raise MalformedMessage("bad_number", f"{where}: {text!r} is not positive")
    return value


def to_ms(timestamp: Any, symbol: str) -> int:
    """RFC 3339 with up to 9 fraction digits ("2026-08-09T21:05:48.210883Z") -> Unix ms."""
    try:
        delta = datetime.fromisoformat(timestamp) - _EPOCH
    except (TypeError, ValueError):
        raise MalformedMessage("bad_field", f"{symbol} time {timestamp!r}") from None
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_Handler = Callable[[dict[str, Any], float], Sequence[CoinbaseEvent]]
_CHANNELS: dict[Any, _Handler] = {
    "l2_data": _book,
    "market_trades": _trades,
    "ticker": _ticker,
    "subscriptions": _subscriptions,
    "heartbeats": _heartbeat,
}
