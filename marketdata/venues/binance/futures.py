"""Binance USD-M futures: routed WebSocket streams, the REST depth snapshot and aggTrades.

Depth and bookTicker come on `/public/stream`, aggTrade on `/market/stream` (the unrouted
URL no longer carries trades). Combined streams wrap each event:

    {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1626992741037,
     "T": 1626992741024, "s": "BTCUSDT", "U": 600859599090, "u": 600859600917,
     "pu": 600859598061, "b": [["7.5040", "813"]], "a": [["7.6150", "1563"]]}}
"""

from __future__ import annotations

from typing import Any, ClassVar

from marketdata.continuity import FuturesChain
from marketdata.events import DepthDiff
from marketdata.venues.base import MAX_ID, MalformedMessage, parse_levels, to_int, to_update_id
from marketdata.venues.binance.common import (
    BinanceAdapter,
    Handler,
    agg_trade_handler,
    book_ticker_handler,
    symbol_of,
)

NAME = "binance_futures"
DEFAULT_WS_URL = "wss://fstream.binance.com"
DEFAULT_REST_URL = "https://fapi.binance.com"
SNAPSHOT_WEIGHTS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
SNAPSHOT_LIMITS = tuple(SNAPSHOT_WEIGHTS)
DEPTH_STREAM = "depth@100ms"
AGG_TRADES_WEIGHT = 20  # GET /fapi/v1/aggTrades, whatever its limit
AGG_TRADES_MAX_LIMIT = 1000
WEIGHT_LIMIT_PER_MIN = 2400  # REQUEST_WEIGHT per minute, per IP


def _depth(data: dict[str, Any], recv_ts: float) -> DepthDiff:
    symbol, first_id, last_id, prev_id = data["s"], data["U"], data["u"], data["pu"]
    # One test for the usual frame; the named checks below only when it fails.
    if not (type(symbol) is str and symbol and type(first_id) is int
            and type(last_id) is int and type(prev_id) is int
            and 0 <= prev_id < first_id <= last_id < MAX_ID):  # fmt: skip
        symbol = symbol_of(data)
        first_id, last_id = to_update_id(first_id, "U"), to_update_id(last_id, "u")
        prev_id = to_int(prev_id, "pu")
        raise MalformedMessage("bad_ids", f"{symbol} pu {prev_id} U {first_id} u {last_id}")
    try:
        bids, asks = parse_levels(data["b"], "depth bids"), parse_levels(data["a"], "depth asks")
    except MalformedMessage as e:
        raise MalformedMessage(e.reason, f"{symbol} {e.detail}") from None
    exchange_ts = data["E"]
    if type(exchange_ts) is not int:
        to_int(exchange_ts, "E")
    return DepthDiff(NAME, symbol, first_id, last_id, prev_id, bids, asks, exchange_ts, recv_ts)


class BinanceFutures(BinanceAdapter):
    name = NAME
    continuity = FuturesChain()
    weight_limit_per_min = WEIGHT_LIMIT_PER_MIN
    agg_trades_weight = AGG_TRADES_WEIGHT
    agg_trades_limit = AGG_TRADES_MAX_LIMIT
    rest_path = "/fapi/v1"
    ticker_keys = ("b", "B")  # some bookTicker payloads omit "e"
    snapshot_has_time = True
    handlers: ClassVar[dict[str, Handler]] = {
        "depthUpdate": _depth,
        "aggTrade": agg_trade_handler(NAME),
        "bookTicker": book_ticker_handler(NAME, has_time=True),
    }

    def __init__(
        self,
        ws_url: str = DEFAULT_WS_URL,
        rest_url: str = DEFAULT_REST_URL,
        snapshot_limit: int = 1000,
    ) -> None:
        super().__init__(ws_url, rest_url, snapshot_limit)
        self.snapshot_weight = SNAPSHOT_WEIGHTS[snapshot_limit]

    def stream_urls(self, symbol: str) -> list[str]:
        s = symbol.lower()
        return [
            f"{self.ws_url}/public/stream?streams={s}@{DEPTH_STREAM}/{s}@bookTicker",
            f"{self.ws_url}/market/stream?streams={s}@aggTrade",
        ]
