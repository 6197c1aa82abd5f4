"""One OKX instrument's book metrics (the service's shared instruments, labelled)."""

from __future__ import annotations

from marketdata.metrics import Metrics
from marketdata.venues.okx.wire import NAME


class SymbolMetrics:
    __slots__ = (
        "_levels_ask", "_levels_bid", "checksum_mismatches", "dropped", "gaps", "resyncs",
        "synced", "updates",
    )  # fmt: skip

    def __init__(self, metrics: Metrics, symbol: str) -> None:
        labels = (NAME, symbol)
        self.updates = metrics.orderbook_updates.labels(*labels)
        self.dropped = metrics.diffs_dropped.labels(*labels)
        self.gaps = metrics.sequence_gaps.labels(*labels)
        self.resyncs = metrics.resyncs.labels(*labels)
        self.checksum_mismatches = metrics.checksum_mismatches.labels(*labels)
        self.synced = metrics.book_synced.labels(*labels)
        self._levels_bid = metrics.book_levels.labels(*labels, "bid")
        self._levels_ask = metrics.book_levels.labels(*labels, "ask")

    def levels(self, bids: int, asks: int) -> None:
        self._levels_bid.set(bids)
        self._levels_ask.set(asks)
