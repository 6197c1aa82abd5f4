"""Binance USD-M futures and Binance spot: their adapters (pure, wire bytes to events)."""

from marketdata.venues.base import AdapterFactory, ExchangeAdapter, MalformedMessage
from marketdata.venues.binance.futures import BinanceFutures
from marketdata.venues.binance.spot import BinanceSpot

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
