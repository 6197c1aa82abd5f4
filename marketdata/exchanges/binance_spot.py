"""Binance spot: combined WebSocket streams, the REST depth snapshot and aggTrades.

Depth and bookTicker share one connection, aggTrade has its own (as on futures):

    {"stream": "ftmusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1628952395768,
     "s": "FTMUSDT", "U": 717720856, "u": 717720857, "b": [], "a": [["0.57", "31.2"]]}}
    {"stream": "ftmusdt@bookTicker", "data": {"u": 717720857, "s": "FTMUSDT",
     "b": "0.5690", "B": "12.0", "a": "0.5700", "A": "31.2"}}

A spot depthUpdate has no `pu`: its ids are consecutive, so a diff follows the book when
`U == previous u + 1` (marketdata.continuity.ConsecutiveIds). bookTicker has no `e` or `E`
and is recognised by its shape.

Trades come from `@aggTrade`, not `@trade`: aggregate trade ids (`a`) are contiguous per
symbol, so a skipped id is a lost trade. That lets the service's gap detection and its REST
backfill (`GET /api/v3/aggTrades?fromId=`) work here as they do on futures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from marketdata.continuity import ConsecutiveIds
from marketdata.events import BookSnapshot, BookTicker, DepthDiff, Event, Trade
from marketdata.exchanges.base import (
    MalformedMessage,
    parse_levels,
    to_int,
    to_number,
    to_update_id,
)
from marketdata.logs import describe

NAME = "binance_spot"
DEFAULT_WS_URL = "wss://stream.binance.com:9443"
DEFAULT_REST_URL = "https://api.binance.com"
DEPTH_STREAM = "depth@100ms"
MIN_SNAPSHOT_LIMIT, MAX_SNAPSHOT_LIMIT = 1, 5000  # GET /api/v3/depth accepts any limit in it
# GET /api/v3/depth weight by limit: up to 100, 500, 1000, 5000.
_SNAPSHOT_WEIGHT_STEPS = ((100, 5), (500, 25), (1000, 50), (5000, 250))
AGG_TRADES_WEIGHT = 4  # GET /api/v3/aggTrades, whatever its limit
AGG_TRADES_MAX_LIMIT = 1000
WEIGHT_LIMIT_PER_MIN = 6000  # exchangeInfo's REQUEST_WEIGHT per minute, per IP
MAX_TRADE_ID = 2**53  # as on futures: past it an id is corruption, not a trade

_EMPTY: tuple[Event, ...] = ()


def snapshot_weight(limit: int) -> int:
    """Request weight of one GET /api/v3/depth of `limit` levels (1..5000)."""
    if not MIN_SNAPSHOT_LIMIT <= limit <= MAX_SNAPSHOT_LIMIT:
        raise ValueError(f"snapshot limit {limit} is outside 1..5000")
    return next(weight for top, weight in _SNAPSHOT_WEIGHT_STEPS if limit <= top)


class BinanceSpot:
    name = NAME
    continuity = ConsecutiveIds()
    weight_limit_per_min = WEIGHT_LIMIT_PER_MIN

    def __init__(
        self,
        ws_url: str = DEFAULT_WS_URL,
        rest_url: str = DEFAULT_REST_URL,
        snapshot_limit: int = 1000,
    ) -> None:
        self.ws_url = ws_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self.snapshot_limit = snapshot_limit
        self.snapshot_weight = snapshot_weight(snapshot_limit)
        self.agg_trades_weight = AGG_TRADES_WEIGHT
        self.agg_trades_limit = AGG_TRADES_MAX_LIMIT

    def stream_urls(self, symbol: str) -> list[str]:
        s = symbol.lower()
        return [
            f"{self.ws_url}/stream?streams={s}@{DEPTH_STREAM}/{s}@bookTicker",
            f"{self.ws_url}/stream?streams={s}@aggTrade",
        ]

    def snapshot_url(self, symbol: str) -> str:
        query = urlencode({"symbol": symbol.upper(), "limit": self.snapshot_limit})
        return f"{self.rest_url}/api/v3/depth?{query}"

    def instruments_url(self) -> str:
        return f"{self.rest_url}/api/v3/exchangeInfo"

    def parse_instruments(self, body: bytes) -> dict[str, str]:
        try:
            data = orjson.loads(body)
            return {str(s["symbol"]): str(s["status"]) for s in data["symbols"]}
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise MalformedMessage("bad_shape", f"exchangeInfo: {describe(e)}") from None

    def agg_trades_url(self, symbol: str, from_id: int, limit: int) -> str:
        query = urlencode({"symbol": symbol.upper(), "fromId": from_id, "limit": limit})
        return f"{self.rest_url}/api/v3/aggTrades?{query}"

    def parse_agg_trades(self, symbol: str, body: bytes, recv_ts: float) -> list[Trade]:
        """The GET /api/v3/aggTrades body: `[{"a","p","q","f","l","T","m","M"}, ...]`,
        oldest first. The trades are marked backfilled. Raises MalformedMessage."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise MalformedMessage("bad_json", f"{symbol} aggTrades: {e}") from None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise MalformedMessage("bad_shape", f"{symbol} aggTrades is not a list of objects")
        try:
            return [_trade(symbol, d, recv_ts, True) for d in data]
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
        if kind is None and "u" in data and "B" in data and "A" in data:
            kind = "bookTicker"  # spot bookTicker has no "e"
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            if "result" in message and "id" in message:
                return _EMPTY  # reply to a SUBSCRIBE request
            raise MalformedMessage("unknown_event", f"event type {kind!r}")
        try:
            return (handler(data, recv_ts),)
        except KeyError as e:
            raise MalformedMessage("missing_field", f"{kind} has no {e.args[0]!r}") from None

    def parse_snapshot(self, symbol: str, body: bytes, recv_ts: float) -> BookSnapshot:
        """`{"lastUpdateId", "bids", "asks"}` (spot's snapshot has no event time)."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise MalformedMessage("bad_json", f"{symbol} snapshot: {e}") from None
        if not isinstance(data, dict):
            raise MalformedMessage("bad_shape", f"{symbol} snapshot is not an object")
        try:
            return BookSnapshot(
                exchange=NAME,
                symbol=symbol,
                last_id=to_update_id(data["lastUpdateId"], "lastUpdateId"),
                bids=parse_levels(data["bids"], f"{symbol} snapshot bids"),
                asks=parse_levels(data["asks"], f"{symbol} snapshot asks"),
                exchange_ts=0,
                recv_ts=recv_ts,
            )
        except KeyError as e:
            raise MalformedMessage("missing_field", f"{symbol} snapshot has no {e}") from None


def _symbol(data: dict[str, Any]) -> str:
    symbol = data["s"]
    if not isinstance(symbol, str) or not symbol:
        raise MalformedMessage("bad_type", f"symbol {symbol!r}")
    return symbol


def _depth(data: dict[str, Any], recv_ts: float) -> DepthDiff:
    symbol = _symbol(data)
    first_id, last_id = to_update_id(data["U"], "U"), to_update_id(data["u"], "u")
    if first_id > last_id:
        raise MalformedMessage("bad_ids", f"{symbol} U {first_id} u {last_id}")
    return DepthDiff(
        exchange=NAME,
        symbol=symbol,
        first_id=first_id,
        last_id=last_id,
        prev_last_id=None,  # spot sends no pu
        bids=parse_levels(data["b"], f"{symbol} depth bids"),
        asks=parse_levels(data["a"], f"{symbol} depth asks"),
        exchange_ts=to_int(data["E"], "E"),
        recv_ts=recv_ts,
    )


def _agg_trade(data: dict[str, Any], recv_ts: float) -> Trade:
    return _trade(_symbol(data), data, recv_ts, False)


def _trade(symbol: str, data: dict[str, Any], recv_ts: float, backfilled: bool) -> Trade:
    """One aggTrade's fields (`a p q T m`), from the stream or from GET /api/v3/aggTrades."""
    price_text, qty_text = data["p"], data["q"]
    price = to_number(price_text, f"{symbol} trade price")
    qty = to_number(qty_text, f"{symbol} trade qty")
    if price <= 0 or qty <= 0:
        raise MalformedMessage("bad_trade", f"{symbol} trade price {price_text} qty {qty_text}")
    buyer_is_maker = data["m"]
    if not isinstance(buyer_is_maker, bool):
        raise MalformedMessage("bad_type", f"{symbol} trade 'm' is {buyer_is_maker!r}")
    trade_id = to_int(data["a"], "a")
    if not 0 <= trade_id <= MAX_TRADE_ID:
        raise MalformedMessage("bad_ids", f"{symbol} aggTrade id {trade_id} out of range")
    return Trade(
        exchange=NAME,
        symbol=symbol,
        trade_id=trade_id,
        price=price,
        qty=qty,
        price_text=price_text,
        qty_text=qty_text,
        side="sell" if buyer_is_maker else "buy",
        exchange_ts=to_int(data["T"], "T"),
        recv_ts=recv_ts,
        backfilled=backfilled,
    )


def _book_ticker(data: dict[str, Any], recv_ts: float) -> BookTicker:
    symbol = _symbol(data)
    for key in ("b", "B", "a", "A"):
        to_number(data[key], f"{symbol} bookTicker {key}")
    return BookTicker(
        exchange=NAME,
        symbol=symbol,
        update_id=to_update_id(data["u"], "u"),
        bid_price=data["b"],
        bid_qty=data["B"],
        ask_price=data["a"],
        ask_qty=data["A"],
        exchange_ts=0,  # spot's bookTicker carries no event time
        recv_ts=recv_ts,
    )


_HANDLERS: dict[str, Callable[[dict[str, Any], float], Event]] = {
    "depthUpdate": _depth,
    "aggTrade": _agg_trade,
    "bookTicker": _book_ticker,
}
