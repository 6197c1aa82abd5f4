"""Kraken spot, WebSocket v2: the pure core (parse, checksum, book rules, trades once)."""

from marketdata.venues.kraken.book_state import KrakenBook, Outcome
from marketdata.venues.kraken.checksum import book_checksum, render
from marketdata.venues.kraken.trades import TradeGate
from marketdata.venues.kraken.wire import NAME, WS_URL, BookMessage, Precision, parse

__all__ = [
    "NAME",
    "WS_URL",
    "BookMessage",
    "KrakenBook",
    "Outcome",
    "Precision",
    "TradeGate",
    "book_checksum",
    "parse",
    "render",
]
