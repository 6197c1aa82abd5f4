"""Coinbase Advanced Trade market data frames, as the exchange writes them. Pure.

    {"channel":"l2_data","timestamp":"2026-08-09T21:05:48.505350477Z","sequence_num":14,
     "events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid",
     "event_time":"2026-08-09T21:05:48.210883Z","price_level":"65062.5",
     "new_quantity":"0.00583"}]}]}

Prices and sizes are decimal strings with trailing zeros dropped ("65080", "0.12"); a
level's `new_quantity` is absolute, "0" deleting it; the side of an ask is "offer". The
events are built when a step happens; the envelope (with the connection's `sequence_num`)
when the frame goes out. Errors have no channel and no sequence number.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from marketdata.sim.coinbase_market import Stats, plain, rfc3339_nanos
from marketdata.sim.market import Shape, SimMarket, fixed

Event = dict[str, Any]
LevelChange = tuple[str, int, int]  # ("b"|"a", ticks, lots); lots 0: the level is gone
_SIDES = {"b": "bid", "a": "offer"}


def envelope(channel: str, sequence: int, events: list[Event]) -> bytes:
    frame = {
        "channel": channel,
        "timestamp": rfc3339_nanos(time.time_ns()),
        "sequence_num": sequence,
        "events": events,
    }
    return orjson.dumps(frame)


def error(message: str) -> bytes:
    return orjson.dumps({"type": "error", "message": message})


def listing(channels: Mapping[str, Iterable[str]]) -> Event:
    """A `subscriptions` event: everything the connection is subscribed to now (channels
    with no product left are not listed)."""
    return {"subscriptions": {c: list(p) for c, p in sorted(channels.items()) if p}}


def book(kind: str, product: str, shape: Shape, levels: Iterable[LevelChange], at: str) -> Event:
    """An `l2_data` event; `at` is every level's event_time."""
    updates = [
        {
            "side": _SIDES[side],
            "event_time": at,
            "price_level": plain(fixed(ticks, shape.price_dp)),
            "new_quantity": plain(fixed(lots, shape.qty_dp)),
        }
        for side, ticks, lots in levels
    ]
    return {"type": kind, "product_id": product, "updates": updates}


def whole_book(market: SimMarket) -> list[LevelChange]:
    """Every level of the market, bids best first, then offers best first."""
    bids = [("b", t, lots) for t, lots in reversed(market.bids.items())]
    return bids + [("a", t, lots) for t, lots in market.asks.items()]


def trades(kind: str, entries: Iterable[Event]) -> Event:
    """A `market_trades` event; `entries` oldest first, sent newest first as Coinbase does."""
    return {"type": kind, "trades": list(reversed(list(entries)))}


def ticker(kind: str, product: str, shape: Shape, market: SimMarket, stats: Stats) -> Event:
    (bid, bid_lots), (ask, ask_lots) = market.bids.peekitem(-1), market.asks.peekitem(0)
    change = (stats.last - stats.open) * 100 / stats.open if stats.open else 0.0

    def price(ticks: int) -> str:
        return plain(fixed(ticks, shape.price_dp))

    def size(lots: int) -> str:
        return plain(fixed(lots, shape.qty_dp))

    entry = {
        "type": "ticker",
        "product_id": product,
        "price": price(stats.last),
        "volume_24_h": size(stats.volume),
        "low_24_h": price(stats.low),
        "high_24_h": price(stats.high),
        "low_52_w": price(stats.low),
        "high_52_w": price(stats.high),
        "price_percent_chg_24_h": f"{change:.14f}",
        "best_bid": price(bid),
        "best_ask": price(ask),
        "best_bid_quantity": size(bid_lots),
        "best_ask_quantity": size(ask_lots),
    }
    return {"type": kind, "tickers": [entry]}


def heartbeat(counter: int, uptime_s: float) -> Event:
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    current = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return {
        "current_time": f"{current}.{nanos:09d} +0000 UTC m=+{uptime_s:.9f}",
        "heartbeat_counter": counter,
    }
