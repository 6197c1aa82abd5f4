"""Coinbase Advanced Trade market data: the pure core (parse, sequence, book, ticker check,
trades once)."""

from marketdata.venues.coinbase.book_state import CoinbaseBook, Outcome
from marketdata.venues.coinbase.sequence import Gap, SequenceCheck
from marketdata.venues.coinbase.top_check import TopCheck, Verdict
from marketdata.venues.coinbase.trades import TradeGate
from marketdata.venues.coinbase.wire import NAME, WS_URL, BookEvent, Frame, parse

__all__ = [
    "NAME",
    "WS_URL",
    "BookEvent",
    "CoinbaseBook",
    "Frame",
    "Gap",
    "Outcome",
    "SequenceCheck",
    "TopCheck",
    "TradeGate",
    "Verdict",
    "parse",
]
