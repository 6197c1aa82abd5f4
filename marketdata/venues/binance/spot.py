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

from typing import Any, ClassVar

from marketdata.continuity import ConsecutiveIds
from marketdata.events import DepthDiff
from marketdata.venues.base import MAX_ID, MalformedMessage, parse_levels, to_int, to_update_id
from marketdata.venues.binance.common import (
    BinanceAdapter,
    Handler,
    agg_trade_handler,
    book_ticker_handler,
    symbol_of,
)

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


def snapshot_weight(limit: int) -> int:
    """Request weight of one GET /api/v3/depth of `limit` levels (1..5000)."""
    if not MIN_SNAPSHOT_LIMIT <= limit <= MAX_SNAPSHOT_LIMIT:
        raise ValueError(f"snapshot limit {limit} is outside 1..5000")
    return next(weight for top, weight in _SNAPSHOT_WEIGHT_STEPS if limit <= top)


def _depth(data: dict[str, Any], recv_ts: float) -> DepthDiff:
    symbol, first_id, last_id = data["s"], data["U"], data["u"]
    # One test for the usual frame; the named checks below only when it fails.
    if not (type(symbol) is str and symbol and type(first_id) is int
            and type(last_id) is int and 0 < first_id <= last_id < MAX_ID):  # fmt: skip
        symbol = symbol_of(data)
        first_id, last_id = to_update_id(first_id, "U"), to_update_id(last_id, "u")
        raise MalformedMessage("bad_ids", f"{symbol} U {first_id} u {last_id}")
    try:
        bids, asks = parse_levels(data["b"], "depth bids"), parse_levels(data["a"], "depth asks")
    except MalformedMessage as e:
        raise MalformedMessage(e.reason, f"{symbol} {e.detail}") from None
    exchange_ts = data["E"]
    if type(exchange_ts) is not int:
        to_int(exchange_ts, "E")
    return DepthDiff(NAME, symbol, first_id, last_id, None, bids, asks, exchange_ts, recv_ts)


class BinanceSpot(BinanceAdapter):
    name = NAME
    continuity = ConsecutiveIds()
    weight_limit_per_min = WEIGHT_LIMIT_PER_MIN
    agg_trades_weight = AGG_TRADES_WEIGHT
    agg_trades_limit = AGG_TRADES_MAX_LIMIT
    rest_path = "/api/v3"
    ticker_keys = ("B", "A")  # spot bookTicker has no "e"
    snapshot_has_time = False  # `{"lastUpdateId", "bids", "asks"}`: no event time
    handlers: ClassVar[dict[str, Handler]] = {
        "depthUpdate": _depth,
        "aggTrade": agg_trade_handler(NAME),
        "bookTicker": book_ticker_handler(NAME, has_time=False),  # it carries no "E"
    }

    def __init__(
        self,
        ws_url: str = DEFAULT_WS_URL,
        rest_url: str = DEFAULT_REST_URL,
        snapshot_limit: int = 1000,
    ) -> None:
        super().__init__(ws_url, rest_url, snapshot_limit)
        self.snapshot_weight = snapshot_weight(snapshot_limit)

    def stream_urls(self, symbol: str) -> list[str]:
        s = symbol.lower()
        return [
            f"{self.ws_url}/stream?streams={s}@{DEPTH_STREAM}/{s}@bookTicker",
            f"{self.ws_url}/stream?streams={s}@aggTrade",
        ]
