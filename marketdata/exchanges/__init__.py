"""Exchange adapters: one module per venue, pure functions from wire bytes to events."""

from marketdata.exchanges.base import AdapterFactory, ExchangeAdapter, MalformedMessage
from marketdata.exchanges.binance_futures import BinanceFutures

ADAPTERS: dict[str, AdapterFactory] = {"binance_futures": BinanceFutures}

__all__ = ["ADAPTERS", "AdapterFactory", "BinanceFutures", "ExchangeAdapter", "MalformedMessage"]
