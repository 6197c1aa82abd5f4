"""The JSON published on Redis: a stable contract, documented in the README.

Prices and quantities are the exchange's own decimal strings; computed values (mid, spread,
volume) are exact Decimal arithmetic on those strings. Timestamps are Unix milliseconds:
`exchange_ts` is the exchange's event time, `ts` our receive time, `updated_at` the time
the message was built.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from marketdata.book import PriceLevel
from marketdata.events import Trade
from marketdata.market_stats import WindowStats


def orderbook_message(
    exchange: str,
    symbol: str,
    bids: list[PriceLevel],
    asks: list[PriceLevel],
    last_update_id: int | None,
    exchange_ts: int,
    recv_ts: float,
) -> bytes:
    return orjson.dumps(
        {
            "exchange": exchange,
            "symbol": symbol,
            "bids": bids,
            "asks": asks,
            "last_update_id": last_update_id,
            "exchange_ts": exchange_ts,
            "ts": int(recv_ts * 1000),
        }
    )


def trade_message(trade: Trade) -> bytes:
    message: dict[str, object] = {
        "exchange": trade.exchange,
        "symbol": trade.symbol,
        "trade_id": trade.trade_id,
        "price": trade.price_text,
        "qty": trade.qty_text,
        "side": trade.side,
        "exchange_ts": trade.exchange_ts,
        "ts": int(trade.recv_ts * 1000),
    }
    if trade.backfilled:  # fetched over REST after a gap; `ts` is when that reply came
        message["backfilled"] = True
    return orjson.dumps(message)


def market_data_message(
    exchange: str,
    symbol: str,
    best_bid: PriceLevel | None,
    best_ask: PriceLevel | None,
    last_price: str | None,
    last_qty: str | None,
    window: WindowStats | None,
    updated_at_ms: int,
) -> bytes:
    mid = spread = None
    if best_bid is not None and best_ask is not None:
        bid, ask = Decimal(best_bid[0]), Decimal(best_ask[0])
        mid, spread = format((bid + ask) / 2, "f"), format(ask - bid, "f")
    return orjson.dumps(
        {
            "exchange": exchange,
            "symbol": symbol,
            "last_price": last_price,
            "last_qty": last_qty,
            "best_bid": best_bid[0] if best_bid else None,
            "best_bid_qty": best_bid[1] if best_bid else None,
            "best_ask": best_ask[0] if best_ask else None,
            "best_ask_qty": best_ask[1] if best_ask else None,
            "mid": mid,
            "spread": spread,
            "volume_24h": window.volume if window else None,
            "high_24h": window.high if window else None,
            "low_24h": window.low if window else None,
            "trades_24h": window.trades if window else 0,
            "window_start": window.since_ms if window else None,
            "updated_at": updated_at_ms,
        }
    )
