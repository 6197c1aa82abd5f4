"""Exchange adapters: one module per venue, pure functions from wire bytes to events."""

from marketdata.exchanges.base import ExchangeAdapter, MalformedMessage
from marketdata.exchanges.binance_futures import BinanceFutures

ADAPTERS: dict[str, type[ExchangeAdapter]] = {"binance_futures": BinanceFutures}

__all__ = ["ADAPTERS", "BinanceFutures", "ExchangeAdapter", "MalformedMessage"]
