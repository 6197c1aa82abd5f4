"""Kraken spot WebSocket v2 frames, as the exchange writes them. Pure.

    {"channel":"book","type":"update","data":[{"symbol":"BTC/USD",
     "bids":[{"price":60000.1,"qty":0.0152}],"asks":[],"checksum":3310070434,
     "timestamp":"2026-11-22T06:07:00.440295Z"}]}

Prices and quantities are JSON numbers with the pair's decimals, trailing zeros dropped;
times are RFC 3339 with microseconds. Replies to requests carry `time_in` (when the
request arrived) and `time_out`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from marketdata.sim.kraken_book import Levels, number, plain
from marketdata.sim.kraken_market import Pair, Stats, now_rfc3339
from marketdata.sim.market import SimMarket

HEARTBEAT = b'{"channel":"heartbeat"}'
API_VERSION = "v2"
VERSION = "2.0.0"


def status(connection_id: int) -> bytes:
    entry = {
        "system": "online", "api_version": API_VERSION,
        "connection_id": connection_id, "version": VERSION,
    }  # fmt: skip
    return orjson.dumps({"channel": "status", "type": "update", "data": [entry]})


def ack(method: str, result: dict[str, Any], req_id: int | None, time_in: str) -> bytes:
    reply = {"method": method, "result": result, "success": True}
    return _stamped(reply, req_id, time_in)


def refusal(
    method: str, error: str, req_id: int | None, time_in: str, symbol: str | None = None
) -> bytes:
    """A failed request; `symbol` when it is that symbol's part of the request that failed."""
    reply: dict[str, Any] = {"method": method, "error": error, "success": False}
    if symbol is not None:
        reply["symbol"] = symbol
    return _stamped(reply, req_id, time_in)


def pong(req_id: int | None, time_in: str) -> bytes:
    return _stamped({"method": "pong"}, req_id, time_in)


def _stamped(reply: dict[str, Any], req_id: int | None, time_in: str) -> bytes:
    if req_id is not None:
        reply["req_id"] = req_id
    reply["time_in"] = time_in
    reply["time_out"] = now_rfc3339()
    return orjson.dumps(reply)


def book(kind: str, pair: Pair, bids: Levels, asks: Levels, checksum: int, timestamp: str) -> bytes:
    entry = {
        "symbol": pair.symbol,
        "bids": _levels(bids, pair),
        "asks": _levels(asks, pair),
        "checksum": checksum,
        "timestamp": timestamp,
    }
    return orjson.dumps({"channel": "book", "type": kind, "data": [entry]})


def _levels(levels: Levels, pair: Pair) -> list[dict[str, orjson.Fragment]]:
    price_dp, qty_dp = pair.shape.price_dp, pair.shape.qty_dp
    return [{"price": number(p, price_dp), "qty": number(q, qty_dp)} for p, q in levels]


def trades(kind: str, entries: Iterable[dict[str, Any]]) -> bytes:
    """`entries` as kraken_market.trade_entry makes them."""
    data = [
        {
            **entry,
            "price": orjson.Fragment(plain(entry["price"])),
            "qty": orjson.Fragment(plain(entry["qty"])),
        }
        for entry in entries
    ]
    return orjson.dumps({"channel": "trade", "type": kind, "data": data})


def ticker(kind: str, pair: Pair, market: SimMarket, stats: Stats) -> bytes:
    price_dp, qty_dp = pair.shape.price_dp, pair.shape.qty_dp
    (bid, bid_qty), (ask, ask_qty) = market.bids.peekitem(-1), market.asks.peekitem(0)
    vwap = stats.notional // stats.volume if stats.volume else stats.last
    change = stats.last - stats.open
    entry = {
        "symbol": pair.symbol,
        "bid": number(bid, price_dp), "bid_qty": number(bid_qty, qty_dp),
        "ask": number(ask, price_dp), "ask_qty": number(ask_qty, qty_dp),
        "last": number(stats.last, price_dp), "volume": number(stats.volume, qty_dp),
        "vwap": number(vwap, price_dp),
        "low": number(stats.low, price_dp), "high": number(stats.high, price_dp),
        "change": number(change, price_dp),
        "change_pct": orjson.Fragment(f"{100 * change / stats.open:.2f}".encode()),
    }  # fmt: skip
    return orjson.dumps({"channel": "ticker", "type": kind, "data": [entry]})


def instruments(pairs: Iterable[Pair]) -> bytes:
    listed = list(pairs)
    assets = sorted({a for p in listed for a in (p.base, p.quote)})
    data = {
        "assets": [
            {"id": a, "status": "enabled", "precision": 10, "precision_display": 5,
             "borrowable": False, "collateral_value": 0.0, "margin_rate": 0.0}
            for a in assets
        ],
        "pairs": [_instrument(p) for p in listed],
    }  # fmt: skip
    return orjson.dumps({"channel": "instrument", "type": "snapshot", "data": data})


def _instrument(pair: Pair) -> dict[str, Any]:
    shape = pair.shape
    return {
        "symbol": pair.symbol, "base": pair.base, "quote": pair.quote, "status": "online",
        "qty_precision": shape.qty_dp, "qty_increment": number(1, shape.qty_dp),
        "price_precision": shape.price_dp, "cost_precision": 5, "marginable": False,
        "has_index": True, "cost_min": orjson.Fragment(pair.cost_min.encode()),
        "tick_size": number(1, shape.price_dp), "price_increment": number(1, shape.price_dp),
        "qty_min": orjson.Fragment(pair.qty_min.encode()),
    }  # fmt: skip
