"""Binance USD-M futures: routed WebSocket streams, the REST depth snapshot and aggTrades.

Depth and bookTicker come on `/public/stream`, aggTrade on `/market/stream` (the unrouted
URL no longer carries trades). Combined streams wrap each event:

    {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1626992741037,
     "T": 1626992741024, "s": "BTCUSDT", "U": 600859599090, "u": 600859600917,
     "pu": 600859598061, "b": [["7.5040", "813"]], "a": [["7.6150", "1563"]]}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, BookTicker, DepthDiff, Event, Trade
from marketdata.exchanges.base import (
    MalformedMessage,
    parse_levels,
    to_int,
    to_number,
    to_update_id,
)
from marketdata.logs import describe

NAME = "binance_futures"
DEFAULT_WS_URL = "wss://fstream.binance.com"
DEFAULT_REST_URL = "https://fapi.binance.com"
SNAPSHOT_WEIGHTS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
SNAPSHOT_LIMITS = tuple(SNAPSHOT_WEIGHTS)
DEPTH_STREAM = "depth@100ms"
AGG_TRADES_WEIGHT = 20  # GET /fapi/v1/aggTrades, whatever its limit
AGG_TRADES_MAX_LIMIT = 1000
WEIGHT_LIMIT_PER_MIN = 2400  # REQUEST_WEIGHT per minute, per IP
# aggTrade ids count a symbol's trades from 0: the busiest symbols are in the billions after
# years. 2**53 is where the venue's own JSON (read as doubles by most clients) stops being
# exact; at a million trades a second it would take 285 years to reach. An id past it is a
# corrupt frame, not a trade, and must not become the sequence's high-water mark.
MAX_TRADE_ID = 2**53

_EMPTY: tuple[Event, ...] = ()


class BinanceFutures:
    name = NAME
    continuity = FuturesChain()
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
        self.snapshot_weight = SNAPSHOT_WEIGHTS[snapshot_limit]
        self.agg_trades_weight = AGG_TRADES_WEIGHT
        self.agg_trades_limit = AGG_TRADES_MAX_LIMIT

    def stream_urls(self, symbol: str) -> list[str]:
        s = symbol.lower()
        return [
            f"{self.ws_url}/public/stream?streams={s}@{DEPTH_STREAM}/{s}@bookTicker",
            f"{self.ws_url}/market/stream?streams={s}@aggTrade",
        ]

    def snapshot_url(self, symbol: str) -> str:
        query = urlencode({"symbol": symbol.upper(), "limit": self.snapshot_limit})
        return f"{self.rest_url}/fapi/v1/depth?{query}"

    def instruments_url(self) -> str:
        return f"{self.rest_url}/fapi/v1/exchangeInfo"

    def parse_instruments(self, body: bytes) -> dict[str, str]:
        try:
            data = orjson.loads(body)
            return {str(s["symbol"]): str(s["status"]) for s in data["symbols"]}
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise MalformedMessage("bad_shape", f"exchangeInfo: {describe(e)}") from None

    def agg_trades_url(self, symbol: str, from_id: int, limit: int) -> str:
        """REST URL of up to `limit` aggTrades of one symbol, from id `from_id` on."""
        query = urlencode({"symbol": symbol.upper(), "fromId": from_id, "limit": limit})
        return f"{self.rest_url}/fapi/v1/aggTrades?{query}"

    def parse_agg_trades(self, symbol: str, body: bytes, recv_ts: float) -> list[Trade]:
        """The GET /fapi/v1/aggTrades body: `[{"a","p","q","f","l","T","m"}, ...]`, oldest
        first. The trades are marked backfilled. Raises MalformedMessage."""
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
        if kind is None and "u" in data and "b" in data and "B" in data:
            kind = "bookTicker"  # some bookTicker payloads omit "e"
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
                exchange_ts=to_int(data.get("E", 0), "E"),
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
    prev_id = to_int(data["pu"], "pu")
    if not 0 <= prev_id < first_id <= last_id:  # pu, the previous event's u, comes before U
        raise MalformedMessage("bad_ids", f"{symbol} pu {prev_id} U {first_id} u {last_id}")
    return DepthDiff(
        exchange=NAME,
        symbol=symbol,
        first_id=first_id,
        last_id=last_id,
        prev_last_id=prev_id,
        bids=parse_levels(data["b"], f"{symbol} depth bids"),
        asks=parse_levels(data["a"], f"{symbol} depth asks"),
        exchange_ts=to_int(data["E"], "E"),
        recv_ts=recv_ts,
    )


def _agg_trade(data: dict[str, Any], recv_ts: float) -> Trade:
    return _trade(_symbol(data), data, recv_ts, False)


def _trade(symbol: str, data: dict[str, Any], recv_ts: float, backfilled: bool) -> Trade:
    """One aggTrade's fields (`a p q T m`), from the stream or from GET /fapi/v1/aggTrades."""
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
        exchange_ts=to_int(data.get("E", 0), "E"),
        recv_ts=recv_ts,
    )


_HANDLERS: dict[str, Callable[[dict[str, Any], float], Event]] = {
    "depthUpdate": _depth,
    "aggTrade": _agg_trade,
    "bookTicker": _book_ticker,
}
