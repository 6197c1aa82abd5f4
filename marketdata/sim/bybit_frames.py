"""Bybit v5 public frames, as the exchange writes them (key order included). Pure.

    {"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1786310818130,
     "data":{"s":"BTCUSDT","b":[["65095.30","0.005"]],"a":[["65116.60","0"]],
             "u":15076953,"seq":753843913870},"cts":1786310818129}
    {"success":true,"ret_msg":"","conn_id":"d8bu1olkndm7crnfs1e0-j6akw","req_id":"1",
     "op":"subscribe"}

Prices and sizes are decimal strings with the symbol's decimals; ids and times are JSON
integers (ms). The pong differs by category: spot answers {"op":"pong","args":[ms]},
the derivatives {"success":true,"ret_msg":"pong","op":"ping"}.
"""

from __future__ import annotations

from typing import Any

import orjson

from marketdata.sim.bybit_book import Levels
from marketdata.sim.bybit_market import TradeEntry, trade_id
from marketdata.sim.kraken_market import Pair, Stats
from marketdata.sim.market import SimMarket, fixed


def reply(op: str, success: bool, ret_msg: str, conn_id: str, req_id: str) -> bytes:
    return orjson.dumps(
        {"success": success, "ret_msg": ret_msg, "conn_id": conn_id, "req_id": req_id, "op": op}
    )


def pong(category: str, conn_id: str, req_id: str, now_ms: int) -> bytes:
    if category == "spot":
        return orjson.dumps(
            {"req_id": req_id, "op": "pong", "args": [str(now_ms)], "conn_id": conn_id}
        )
    return reply("ping", True, "pong", conn_id, req_id)


def book(
    depth: int, pair: Pair, kind: str, bids: Levels, asks: Levels, u: int, seq: int, ts: int
) -> bytes:
    """`kind`: "snapshot" or "delta". `cts` (the matching engine's time) is a ms before `ts`."""
    symbol = pair.symbol
    data = {"s": symbol, "b": _levels(bids, pair), "a": _levels(asks, pair), "u": u, "seq": seq}
    message = {"topic": f"orderbook.{depth}.{symbol}", "type": kind, "ts": ts, "data": data,
               "cts": ts - 1}  # fmt: skip
    return orjson.dumps(message)


def _levels(levels: Levels, pair: Pair) -> list[list[str]]:
    price_dp, qty_dp = pair.shape.price_dp, pair.shape.qty_dp
    return [[fixed(p, price_dp), "0" if not q else fixed(q, qty_dp)] for p, q in levels]


def trades(symbol: str, entries: list[TradeEntry], category: str, ts: int) -> bytes:
    """A `publicTrade` message (always "snapshot": it holds new trades only)."""
    data = [_trade(symbol, entry, category) for entry in entries]
    return orjson.dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts,
                         "data": data})  # fmt: skip


def _trade(symbol: str, entry: TradeEntry, category: str) -> dict[str, Any]:
    return {
        "T": entry.time_ms, "s": symbol, "S": entry.taker, "v": entry.qty, "p": entry.price,
        "L": entry.tick, "i": trade_id(symbol, entry.number, category), "BT": False,
        "RPI": False, "seq": entry.seq,
    }  # fmt: skip


def ticker(
    kind: str, pair: Pair, market: SimMarket, stats: Stats, cross_seq: int, ts: int
) -> bytes:
    """A `tickers` message: "snapshot" with every field, "delta" with the best bid/ask and
    last price (what changes in a generated market)."""
    price_dp, qty_dp = pair.shape.price_dp, pair.shape.qty_dp
    (bid, bid_qty), (ask, ask_qty) = market.bids.peekitem(-1), market.asks.peekitem(0)
    data: dict[str, Any] = {"symbol": pair.symbol}
    if kind == "snapshot":
        change = (stats.last - stats.open) / stats.open
        data |= {
            "lastPrice": fixed(stats.last, price_dp), "prevPrice24h": fixed(stats.open, price_dp),
            "price24hPcnt": f"{change:.6f}", "highPrice24h": fixed(stats.high, price_dp),
            "lowPrice24h": fixed(stats.low, price_dp), "volume24h": fixed(stats.volume, qty_dp),
        }  # fmt: skip
    else:
        data["lastPrice"] = fixed(stats.last, price_dp)
    data |= {
        "bid1Price": fixed(bid, price_dp), "bid1Size": fixed(bid_qty, qty_dp),
        "ask1Price": fixed(ask, price_dp), "ask1Size": fixed(ask_qty, qty_dp),
    }  # fmt: skip
    return orjson.dumps({"topic": f"tickers.{pair.symbol}", "type": kind, "data": data,
                         "cs": cross_seq, "ts": ts})  # fmt: skip
