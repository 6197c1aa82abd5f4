"""Every Redis name the service writes, in one place."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_EXCHANGE = "binance_futures"


@dataclass(frozen=True, slots=True)
class Channels:
    orderbook: str
    trades: str
    market_data: str  # both the pub/sub channel and the key


def channels_for(exchange: str, symbol: str) -> Channels:
    """`orderbook:BTCUSDT` for the default exchange, `orderbook:{exchange}:BTCUSDT` for others."""
    suffix = symbol if exchange == DEFAULT_EXCHANGE else f"{exchange}:{symbol}"
    return Channels(f"orderbook:{suffix}", f"trades:{suffix}", f"market_data:{suffix}")
