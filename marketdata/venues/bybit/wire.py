"""Bybit v5 public WebSocket frames -> Bybit events. Pure, no I/O.

    {"topic": "orderbook.200.BTCUSDT", "type": "delta", "ts": 1786310818130,
     "data": {"s": "BTCUSDT", "b": [["65095.30", "0.005"]], "a": [["65116.60", "0"]],
              "u": 15076953, "seq": 753843913870}, "cts": 1786310818129}
    {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1786310819681,
     "data": [{"T": 1786310819680, "s": "BTCUSDT", "S": "Sell", "v": "0.004",
               "p": "65114.20", "L": "MinusTick", "i": "a9188a0a-...", "BT": false,
               "RPI": false, "seq": 753843954913}]}
    {"success": true, "ret_msg": "", "conn_id": "...", "req_id": "3", "op": "subscribe"}

Prices and sizes are decimal strings and stay the exchange's text; ids and times are JSON
integers. Topics this service does not subscribe (kline, allLiquidation, ...) are refused
as `unknown_topic`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from marketdata.events import Level, Side, Trade
from marketdata.venues.base import (
    MalformedMessage,
    decimal_value,
    parse_levels,
    to_int,
    to_update_id,
)

NAME = "bybit"
CATEGORIES = ("spot", "linear", "inverse")
WS_BASE = "wss://stream.bybit.com/v5/public/"


def ws_url(category: str) -> str:
    """The public stream of a category: `wss://stream.bybit.com/v5/public/linear`."""
    return WS_BASE + category


@dataclass(slots=True)
class BookMessage:
    """One `orderbook.{depth}.{symbol}` message: a snapshot replaces the book, a delta sets
    absolute sizes (size "0" deletes)."""

    symbol: str
    snapshot: bool
    bids: list[Level]
    asks: list[Level]
    update_id: int  # u: +1 on every delta; 1 again after a Bybit service restart
    seq: int  # cross sequence: orders data across depths and topics, not contiguous
    exchange_ts: int  # ts, ms
    recv_ts: float


@dataclass(slots=True)
class Trades:
    """The trades of one `publicTrade` message (its `type` is always "snapshot"; it holds
    new trades only)."""

    trades: list[Trade]


@dataclass(slots=True)
class Ticker:
    """A `tickers` message's best bid/ask: a delta carries only the fields that changed
    (None here)."""

    symbol: str
    bid_price: str | None
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None
    cross_seq: int  # cs (0 where absent)
    recv_ts: float


@dataclass(slots=True)
class Reply:
    """Reply to a subscribe or unsubscribe request. A failure may name its topic in
    `ret_msg` ("error:already subscribed,topic:orderbook.200.BTCUSDT") or not ("Params
    Error"): the request is known by its req_id."""

    op: str
    success: bool
    ret_msg: str
    req_id: str


@dataclass(slots=True)
class Pong:
    """Reply to {"op": "ping"}: `{"op": "pong", ...}` (spot) or
    `{"success": true, "ret_msg": "pong", "op": "ping"}` (derivatives)."""


BybitEvent = BookMessage | Trades | Ticker | Reply | Pong


def parse(frame: bytes | str, recv_ts: float) -> Sequence[BybitEvent]:
    """Events in one frame. Raises MalformedMessage naming what is wrong."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage("bad_json", str(e)) from None
    if type(message) is not dict:
        raise MalformedMessage("bad_shape", "frame is not a JSON object")
    topic = message.get("topic")
    try:
        if topic is not None:
            if type(topic) is not str:
                raise MalformedMessage("bad_type", f"topic {topic!r}")
            handler = _TOPICS.get(topic.partition(".")[0])
            if handler is None:
                raise MalformedMessage("unknown_topic", f"topic {topic!r}")
            return handler(message, recv_ts)
        return (_reply(message),)
    except KeyError as e:
        raise MalformedMessage("missing_field", f"{topic or 'reply'} has no {e}") from None
    except (TypeError, AttributeError) as e:
        raise MalformedMessage("bad_shape", f"{topic or 'reply'}: {e}") from None


def _book(message: dict[str, Any], recv_ts: float) -> tuple[BookMessage]:
    kind = message["type"]
    if kind != "snapshot" and kind != "delta":
        raise MalformedMessage("bad_field", f"{message['topic']} type {kind!r}")
    data = message["data"]
    symbol = _symbol(data["s"])
    return (
        BookMessage(
            symbol,
            kind == "snapshot",
            parse_levels(data["b"], f"{symbol} b"),
            parse_levels(data["a"], f"{symbol} a"),
            to_update_id(data["u"], f"{symbol} u"),
            to_int(data["seq"], f"{symbol} seq"),
            to_int(message["ts"], f"{symbol} ts"),
            recv_ts,
        ),
    )


_SIDES: dict[Any, Side] = {"Buy": "buy", "Sell": "sell"}


def _trades(message: dict[str, Any], recv_ts: float) -> tuple[Trades]:
    data = message["data"]
    if type(data) is not list:
        raise MalformedMessage("bad_shape", f"{message['topic']} 'data' is not a list")
    out = []
    for entry in data:
        symbol = _symbol(entry["s"])
        side = _SIDES.get(entry["S"])
        if side is None:
            raise MalformedMessage("bad_field", f"{symbol} trade side {entry['S']!r}")
        trade_id = entry["i"]
        if type(trade_id) is not str or not trade_id:
            raise MalformedMessage("bad_type", f"{symbol} trade id {trade_id!r}")
        price_text, qty_text = entry["p"], entry["v"]
        price = _positive(price_text, f"{symbol} trade p")
        qty = _positive(qty_text, f"{symbol} trade v")
        out.append(
            Trade(
                exchange=NAME,
                symbol=symbol,
                trade_id=trade_id,
                price=price,
                qty=qty,
                price_text=price_text,
                qty_text=qty_text,
                side=side,
                exchange_ts=to_int(entry["T"], f"{symbol} trade T"),
                recv_ts=recv_ts,
            )
        )
    return (Trades(out),)


def _ticker(message: dict[str, Any], recv_ts: float) -> tuple[Ticker]:
    data = message["data"]
    symbol = _symbol(data["symbol"])
    texts = [_opt_decimal(data.get(key), f"{symbol} ticker {key}") for key in _TICKER_KEYS]
    cross_seq = to_int(message.get("cs", 0), f"{symbol} ticker cs")
    return (Ticker(symbol, texts[0], texts[1], texts[2], texts[3], cross_seq, recv_ts),)


_TICKER_KEYS = ("bid1Price", "bid1Size", "ask1Price", "ask1Size")


def _reply(message: dict[str, Any]) -> Reply | Pong:
    op = message.get("op")
    if op == "pong" or op == "ping":
        return Pong()
    if op != "subscribe" and op != "unsubscribe":
        raise MalformedMessage("unknown_message", f"no topic, op {op!r}")
    success = message["success"]
    if type(success) is not bool:
        raise MalformedMessage("bad_type", f"{op} success {success!r}")
    ret_msg = message.get("ret_msg", "")
    req_id = message.get("req_id", "")
    if type(ret_msg) is not str or type(req_id) is not str:
        raise MalformedMessage("bad_type", f"{op} ret_msg {ret_msg!r} req_id {req_id!r}")
    return Reply(op, success, ret_msg, req_id)


def _symbol(symbol: Any) -> str:
    if type(symbol) is not str or not symbol:
        raise MalformedMessage("bad_type", f"symbol {symbol!r}")
    return symbol


def _positive(text: Any, where: str) -> float:
    value = decimal_value(text, where)
    if not value:
        raise MalformedMessage("bad_number", f"{where}: {text!r} is not positive")
    return value


def _opt_decimal(text: Any, where: str) -> str | None:
    if text is None:
        return None
    decimal_value(text, where)
    return str(text)


_Handler = Callable[[dict[str, Any], float], Sequence[BybitEvent]]
_TOPICS: dict[str, _Handler] = {
    "orderbook": _book,
    "publicTrade": _trades,
    "tickers": _ticker,
}
