"""OKX v5 public: the pure core (parse, checksum, book rules, trades once) and its feed."""

from marketdata.venues.okx.book_state import OkxBook, Outcome, SnapshotOutcome
from marketdata.venues.okx.checksum import book_checksum
from marketdata.venues.okx.trades import TradeGate
from marketdata.venues.okx.wire import NAME, REST_URL, WS_URL, BookMessage, parse

__all__ = [
    "NAME",
    "REST_URL",
    "WS_URL",
    "BookMessage",
    "OkxBook",
    "Outcome",
    "SnapshotOutcome",
    "TradeGate",
    "book_checksum",
    "parse",
]
