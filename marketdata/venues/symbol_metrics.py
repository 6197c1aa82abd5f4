"""One symbol's book instruments, the service's shared metrics labelled for it.

Every in-band venue's feed counts the same things per symbol; each counts only those its
protocol has (a venue without a checksum leaves checksum_mismatches at 0).
"""

from __future__ import annotations

from marketdata.metrics import Metrics


class SymbolMetrics:
    __slots__ = (
        "_levels_ask", "_levels_bid", "checksum_mismatches", "dropped", "gaps", "resyncs",
        "synced", "too_many_levels", "top_checks", "top_mismatches", "updates",
    )  # fmt: skip

    def __init__(self, metrics: Metrics, exchange: str, symbol: str) -> None:
        labels = (exchange, symbol)
        self.updates = metrics.orderbook_updates.labels(*labels)
        self.dropped = metrics.diffs_dropped.labels(*labels)
        self.gaps = metrics.sequence_gaps.labels(*labels)
        self.resyncs = metrics.resyncs.labels(*labels)
        self.checksum_mismatches = metrics.checksum_mismatches.labels(*labels)
        self.synced = metrics.book_synced.labels(*labels)
        self.too_many_levels = metrics.book_limits_exceeded.labels(*labels, "levels_per_side")
        self.top_checks = metrics.top_of_book_checks.labels(*labels)
        self.top_mismatches = metrics.top_of_book_mismatches.labels(*labels)
        self._levels_bid = metrics.book_levels.labels(*labels, "bid")
        self._levels_ask = metrics.book_levels.labels(*labels, "ask")

    def levels(self, bids: int, asks: int) -> None:
        self._levels_bid.set(bids)
        self._levels_ask.set(asks)
