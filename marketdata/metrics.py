"""Every Prometheus instrument the service exposes, defined in one place.

Each Service owns a registry of its own, so two services (or tests) never share counts.
Instruments touched for every message are hot_metrics' lock-free ones.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from marketdata.hot_metrics import HotCounter, HotHistogram

disable_created_metrics()  # the *_created series only add noise to every scrape

SYMBOL = ("exchange", "symbol")
FAST_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075,
    0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.ws_connected = Gauge(
            "ws_connected", "1 while the WebSocket connection is open", (*SYMBOL, "stream"),
            registry=r,
        )  # fmt: skip
        self.ws_disconnects = Counter(
            "ws_disconnects", "WebSocket connections lost after they were open",
            (*SYMBOL, "stream"),
            registry=r,
        )  # fmt: skip
        self.ws_connect_failures = Counter(
            "ws_connect_failures", "WebSocket connection attempts that failed, by reason",
            (*SYMBOL, "stream", "reason"), registry=r,
        )  # fmt: skip
        self.messages_processed = HotCounter(
            "messages_processed", "Exchange messages handled, by event type", ("type",), r
        )
        self.messages_error = Counter(
            "messages_error", "Exchange messages skipped as malformed, by reason", ("reason",),
            registry=r,
        )  # fmt: skip
        self.processing_latency = HotHistogram(
            "processing_latency_seconds", "Frame received -> book applied", (), r, FAST_BUCKETS
        )
        self.exchange_lag = HotHistogram(
            "exchange_lag_seconds", "Exchange event time -> received (includes clock skew)",
            (), r, LAG_BUCKETS,
        )  # fmt: skip
        self.orderbook_updates = HotCounter(
            "orderbook_updates", "Diffs applied to synced books", SYMBOL, r
        )
        self.sequence_gaps = Counter(
            "sequence_gaps", "Continuity breaks detected (gap or crossed book)", SYMBOL, registry=r
        )
        self.resyncs = Counter(
            "resyncs", "Books discarded and rebuilt from a new snapshot", SYMBOL, registry=r
        )
        self.snapshot_requests = Counter(
            "snapshot_requests", "REST snapshot requests, by HTTP status or error", ("status",),
            registry=r,
        )  # fmt: skip
        self.diffs_dropped = HotCounter(
            "diffs_dropped", "Diffs ignored as already contained in the book (by id)", SYMBOL, r
        )
        self.trades_processed = HotCounter(
            "trades_processed", "Trades accepted for publishing", (), r
        )
        self.trades_duplicate = HotCounter(
            "trades_duplicate", "Trades skipped as repeats of an id already seen", (), r
        )
        self.trade_gaps = Counter(
            "trade_gaps", "Gaps found in a symbol's trade ids (each fetched, or counted lost)",
            SYMBOL, registry=r,
        )  # fmt: skip
        self.trades_backfilled = Counter(
            "trades_backfilled", "Missing trades fetched over REST and published", SYMBOL,
            registry=r,
        )  # fmt: skip
        self.trades_lost = Counter(
            "trades_lost", "Trade ids in gaps that could not be fetched", SYMBOL, registry=r
        )
        self.trades_out_of_sequence = Counter(
            "trades_out_of_sequence",
            "Trades whose id left the sequence: an outlier the next trade went back from, or "
            "a restart far below",
            SYMBOL, registry=r,
        )  # fmt: skip
        self.trade_backfill_requests = Counter(
            "trade_backfill_requests", "REST requests for missing trades, by HTTP status or error",
            ("status",), registry=r,
        )  # fmt: skip
        self.trades_dropped = Counter(
            "trades_dropped", "Trades dropped because the pending buffer was full", registry=r
        )
        self.redis_publishes = HotCounter(
            "redis_publishes", "Messages published to Redis", ("kind",), r
        )
        self.redis_errors = Counter("redis_errors", "Failed Redis publish batches", registry=r)
        self.redis_command_refusals = Counter(
            "redis_command_refusals", "Commands Redis refused, by command and error prefix",
            ("command", "reason"), registry=r,
        )  # fmt: skip
        self.publish_latency = HotHistogram(
            "publish_latency_seconds",
            "Received -> PUBLISH acknowledged: a trade; a book, from its newest diff or the end "
            "of its conflation interval, whichever came later",
            ("kind",), r, FAST_BUCKETS,
        )  # fmt: skip
        self.book_age_at_publish = HotHistogram(
            "book_age_at_publish_seconds",
            "Age of the newest diff a published book holds (includes the conflation hold)",
            (), r, LAG_BUCKETS,
        )  # fmt: skip
        self.spool_appended = Counter(
            "spool_appended", "Entries appended to the spool", ("stream",), registry=r
        )
        self.spool_dropped = Counter(
            "spool_dropped", "Entries refused because the spool was (nearly) full", ("stream",),
            registry=r,
        )  # fmt: skip
        self.book_levels = Gauge(
            "book_levels", "Levels held per side", (*SYMBOL, "side"), registry=r
        )
        self.book_synced = Gauge("book_synced", "1 while the book is synced", SYMBOL, registry=r)
        self.book_limits_exceeded = Counter(
            "book_limits_exceeded", "Books or snapshots refused for their size, by limit",
            (*SYMBOL, "limit"), registry=r,
        )  # fmt: skip
        self.top_of_book_checks = HotCounter(
            "top_of_book_checks", "Book's best bid/ask compared with the venue's bookTicker",
            SYMBOL, r,
        )  # fmt: skip
        self.top_of_book_mismatches = Counter(
            "top_of_book_mismatches", "Comparisons where the book's top differed from bookTicker",
            SYMBOL, registry=r,
        )  # fmt: skip
        self.checksum_mismatches = Counter(
            "checksum_mismatches", "Book messages whose checksum the book did not reproduce",
            SYMBOL, registry=r,
        )  # fmt: skip
        self.subscription_failures = Counter(
            "subscription_failures", "Subscribe requests rejected or unanswered, by reason",
            (*SYMBOL, "channel", "reason"), registry=r,
        )  # fmt: skip

        # leases (README: Several hosts: leased instances)
        self.lease_changes = Counter(
            "lease_changes", "Lease ownership changes of this instance: acquired, lost, released",
            (*SYMBOL, "change"), registry=r,
        )  # fmt: skip
        self.leases_owned = Gauge("leases_owned", "Leases this instance holds", registry=r)
        self.lease_instances = Gauge(
            "lease_instances", "Live instances sharing the leases, at the last round", registry=r
        )
        self.lease_fenced_commands = Counter(
            "lease_fenced_commands",
            "Commands of a symbol not published for want of its lease: dropped here (local) "
            "or refused by Redis's token check (redis)",
            (*SYMBOL, "where"), registry=r,
        )  # fmt: skip


class PersistMetrics:
    """Instruments of `marketdata persist` (its own process, its own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.rows_written = Counter(
            "rows_written", "Rows newly stored (redeliveries not counted)", ("sink", "table"),
            registry=r,
        )  # fmt: skip
        self.rows_rejected = Counter(
            "rows_rejected", "Rows the sink refused (moved to spool:dead)", ("sink",), registry=r
        )
        self.entries_dead = Counter(
            "entries_dead", "Spool entries that could not be decoded (moved to spool:dead)",
            ("stream",), registry=r,
        )  # fmt: skip
        self.batch_latency = Histogram(
            "batch_latency_seconds", "One batch: write to the sink and XACK", ("sink",),
            buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.commit_latency = Histogram(
            "commit_latency_seconds", "Trade received by the service -> committed in the sink",
            ("sink",), buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.spool_pending = Gauge(
            "spool_pending", "Entries delivered to the group but not acknowledged",
            ("group", "stream"), registry=r,
        )  # fmt: skip
        self.spool_lag = Gauge(
            "spool_lag_seconds", "Age of the oldest entry the group has not acknowledged",
            ("group", "stream"), registry=r,
        )  # fmt: skip
        self.sink_errors = Counter(
            "sink_errors", "Failed sink calls (connect, schema, write), each retried", ("sink",),
            registry=r,
        )  # fmt: skip
        self.housekeeping_ok = Gauge(
            "housekeeping_ok", "1 while spool housekeeping (figures, XTRIM) succeeds", registry=r
        )
        self.housekeeping_errors = Counter(
            "housekeeping_errors", "Housekeeping rounds Redis refused (the spool is not trimmed)",
            registry=r,
        )  # fmt: skip
        self.sink_state = Gauge(
            "sink_state", "0 OK, 1 DEGRADED (catching up), 2 UNAVAILABLE", ("sink",), registry=r
        )
