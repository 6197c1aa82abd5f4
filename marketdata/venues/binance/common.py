"""What Binance futures and spot share: the frame and REST parsers, the REST paths.

The two venues speak the same dialect: combined streams wrapping `depthUpdate`, `aggTrade`
and `bookTicker` events, the same aggTrade fields on the stream and over REST, the same
`exchangeInfo` shape. They differ in their URLs, their depth-chaining rule (futures `pu`,
spot consecutive ids), how a bookTicker without `e` is recognised, and whether snapshots and
bookTickers carry an event time `E`. Each venue's module sets those on a BinanceAdapter
subclass and builds its handlers here with its own name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson

from marketdata.continuity import ContinuityRule
from marketdata.events import BookSnapshot, BookTicker, Event, Trade
from marketdata.logs import describe
from marketdata.venues.base import (
    MalformedMessage,
    decimal_value,
    parse_levels,
    to_int,
    to_trade_id,
    to_update_id,
)

Handler = Callable[[dict[str, Any], float], Event]

_EMPTY: tuple[Event, ...] = ()


class BinanceAdapter:
    """The ExchangeAdapter parts both Binance venues share. A subclass sets the class
    attributes below and, in __init__, `snapshot_weight`."""

    name: str
    continuity: ContinuityRule
    weight_limit_per_min: int
    agg_trades_weight: int  # request weight of one page, whatever its limit
    agg_trades_limit: int
    rest_path: str  # REST prefix: "/fapi/v1", "/api/v3"
    # Two keys that, with "u", mark a bookTicker sent without "e".
    ticker_keys: tuple[str, str]
    snapshot_has_time: bool  # the REST snapshot carries "E"
    handlers: ClassVar[dict[str, Handler]]  # by event type "e"

    snapshot_weight: int

    def __init__(self, ws_url: str, rest_url: str, snapshot_limit: int) -> None:
        self.ws_url = ws_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self.snapshot_limit = snapshot_limit

    def snapshot_url(self, symbol: str) -> str:
        query = urlencode({"symbol": symbol.upper(), "limit": self.snapshot_limit})
        return f"{self.rest_url}{self.rest_path}/depth?{query}"

    def instruments_url(self) -> str:
        return f"{self.rest_url}{self.rest_path}/exchangeInfo"

    def parse_instruments(self, body: bytes) -> dict[str, str]:
        try:
            data = orjson.loads(body)
            return {str(s["symbol"]): str(s["status"]) for s in data["symbols"]}
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise MalformedMessage("bad_shape", f"exchangeInfo: {describe(e)}") from None

    def agg_trades_url(self, symbol: str, from_id: int, limit: int) -> str:
        """REST URL of up to `limit` aggTrades of one symbol, from id `from_id` on."""
        query = urlencode({"symbol": symbol.upper(), "fromId": from_id, "limit": limit})
        return f"{self.rest_url}{self.rest_path}/aggTrades?{query}"

    def parse_agg_trades(self, symbol: str, body: bytes, recv_ts: float) -> list[Trade]:
        """The GET .../aggTrades body: `[{"a","p","q","f","l","T","m"}, ...]`, oldest first.
        The trades are marked backfilled. Raises MalformedMessage."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise MalformedMessage("bad_json", f"{symbol} aggTrades: {e}") from None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise MalformedMessage("bad_shape", f"{symbol} aggTrades is not a list of objects")
        name = self.name
        try:
            return [trade(name, symbol, d, recv_ts, True) for d in data]
        except KeyError as e:
            raise MalformedMessage(
                "missing_field", f"{symbol} aggTrades entry has no {e}"
            ) from None

    def parse(self, frame: bytes | str, recv_ts: float) -> Sequence[Event]:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as e:
            raise MalformedMessage("bad_json", str(e)) from None
        if not isinstance(message, dict):
            raise MalformedMessage("bad_shape", "frame is not a JSON object")
        data = message.get("data", message)  # combined stream wrapper, or a raw stream
        if not isinstance(data, dict):
            raise MalformedMessage("bad_shape", "'data' is not an object")
        kind = data.get("e")
        if kind is None and "u" in data:
            first, second = self.ticker_keys
            if first in data and second in data:
                kind = "bookTicker"
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            if "result" in message and "id" in message:
                return _EMPTY  # reply to a SUBSCRIBE request
            raise MalformedMessage("unknown_event", f"event type {kind!r}")
        try:
            return (handler(data, recv_ts),)
        except KeyError as e:
            raise MalformedMessage("missing_field", f"{kind} has no {e.args[0]!r}") from None

    def parse_snapshot(self, symbol: str, body: bytes, recv_ts: float) -> BookSnapshot:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise MalformedMessage("bad_json", f"{symbol} snapshot: {e}") from None
        if not isinstance(data, dict):
            raise MalformedMessage("bad_shape", f"{symbol} snapshot is not an object")
        try:
            return BookSnapshot(
                exchange=self.name,
                symbol=symbol,
                last_id=to_update_id(data["lastUpdateId"], "lastUpdateId"),
                bids=parse_levels(data["bids"], f"{symbol} snapshot bids"),
                asks=parse_levels(data["asks"], f"{symbol} snapshot asks"),
                exchange_ts=to_int(data.get("E", 0), "E") if self.snapshot_has_time else 0,
                recv_ts=recv_ts,
            )
        except KeyError as e:
            raise MalformedMessage("missing_field", f"{symbol} snapshot has no {e}") from None


def symbol_of(data: dict[str, Any]) -> str:
    symbol = data["s"]
    if not isinstance(symbol, str) or not symbol:
        raise MalformedMessage("bad_type", f"symbol {symbol!r}")
    return symbol


def trade(name: str, symbol: str, data: dict[str, Any], recv_ts: float, backfilled: bool) -> Trade:
    """One aggTrade's fields (`a p q T m`), from the stream or from GET .../aggTrades."""
    price_text, qty_text = data["p"], data["q"]
    price = decimal_value(price_text, f"{symbol} trade price")
    qty = decimal_value(qty_text, f"{symbol} trade qty")
    if price <= 0 or qty <= 0:
        raise MalformedMessage("bad_trade", f"{symbol} trade price {price_text} qty {qty_text}")
    buyer_is_maker = data["m"]
    if not isinstance(buyer_is_maker, bool):
        raise MalformedMessage("bad_type", f"{symbol} trade 'm' is {buyer_is_maker!r}")
    sequence = to_trade_id(data["a"], "aggTrade id 'a'")
    return Trade(
        exchange=name,
        symbol=symbol,
        trade_id=str(sequence),
        price=price,
        qty=qty,
        price_text=price_text,
        qty_text=qty_text,
        side="sell" if buyer_is_maker else "buy",
        exchange_ts=to_int(data["T"], "T"),
        recv_ts=recv_ts,
        backfilled=backfilled,
        sequence=sequence,
    )


def agg_trade_handler(name: str) -> Handler:
    """The stream's `aggTrade` event, as a trade of venue `name`."""

    def agg_trade(data: dict[str, Any], recv_ts: float) -> Trade:
        return trade(name, symbol_of(data), data, recv_ts, False)

    return agg_trade


def book_ticker_handler(name: str, has_time: bool) -> Handler:
    """The stream's `bookTicker` event of venue `name`; `has_time`: it carries "E"."""

    def book_ticker(data: dict[str, Any], recv_ts: float) -> BookTicker:
        symbol = symbol_of(data)
        for key in ("b", "B", "a", "A"):
            decimal_value(data[key], f"{symbol} bookTicker {key}")
        return BookTicker(
            exchange=name,
            symbol=symbol,
            update_id=to_update_id(data["u"], "u"),
            bid_price=data["b"],
            bid_qty=data["B"],
            ask_price=data["a"],
            ask_qty=data["A"],
            exchange_ts=to_int(data.get("E", 0), "E") if has_time else 0,
            recv_ts=recv_ts,
        )

    return book_ticker
