"""Exchange adapters: one module per venue, pure functions from wire bytes to events."""

from marketdata.exchanges.base import AdapterFactory, ExchangeAdapter, MalformedMessage
from marketdata.exchanges.binance_futures import BinanceFutures
from marketdata.exchanges.binance_spot import BinanceSpot

ADAPTERS: dict[str, AdapterFactory] = {
    "binance_futures": BinanceFutures,
    "binance_spot": BinanceSpot,
}

__all__ = [
    "ADAPTERS",
    "AdapterFactory",
    "BinanceFutures",
    "BinanceSpot",
    "ExchangeAdapter",
    "MalformedMessage",
]
