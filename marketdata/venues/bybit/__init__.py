"""Bybit v5 public: the pure core (parse, book rules)."""

from marketdata.venues.bybit.book_state import BybitBook, Outcome
from marketdata.venues.bybit.wire import NAME, BookMessage, Trades, parse

__all__ = ["NAME", "BookMessage", "BybitBook", "Outcome", "Trades", "parse"]
