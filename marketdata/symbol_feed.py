"""One symbol of one exchange: its connections, its book sync and its snapshot fetches."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from marketdata.backoff import Backoff
from marketdata.capped_read import DEFAULT_MAX_SNAPSHOT_BYTES
from marketdata.config import ReconnectConfig
from marketdata.connect_pacer import ConnectPacer
from marketdata.events import BookSnapshot, BookTicker, DepthDiff, Event, Trade
from marketdata.feed import ConnectionPolicy, WebSocketFeed
from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.rest_fetch import Failure, RestFetch
from marketdata.rest_gate import RestGate
from marketdata.skip_log import SkipLog
from marketdata.state import SymbolState
from marketdata.sync import BREAKS, BookSync, Outcome
from marketdata.top_audit import TopAudit, Verdict
from marketdata.trade_gaps import GapLimits, TradeGaps
from marketdata.trade_history import TradeHistory
from marketdata.venues.base import ExchangeAdapter, MalformedMessage

log = logging.getLogger(__name__)


class SymbolFeed:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        state: SymbolState[BookSync],
        publisher: Publisher,
        session: aiohttp.ClientSession,
        reconnect: ReconnectConfig,
        metrics: Metrics,
        gate: RestGate,
        stale_after_s: float,
        top_audit_mismatches: int = 0,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
        pacer: ConnectPacer | None = None,
        shared: Sequence[WebSocketFeed] | None = None,
    ) -> None:
        """`shared`: the book and trade connections of a group of symbols (see
        binance_group), which hand this feed its events; None: this feed's own two."""
        self.adapter = adapter
        self.state = state
        self.key = f"{adapter.name}:{state.symbol}"
        self._gate = gate
        self.last_frame_at: float | None = None  # monotonic time of the last frame
        self._publisher = publisher
        self._session = session
        self._reconnect = reconnect
        self._metrics = metrics
        self._snapshot_task: asyncio.Task[None] | None = None
        self._synced_flag = False
        self._skip_log = SkipLog()
        labels = (adapter.name, state.symbol)
        self._updates = metrics.orderbook_updates.labels(*labels)
        self._gaps = metrics.sequence_gaps.labels(*labels)
        self._resyncs = metrics.resyncs.labels(*labels)
        self._synced_gauge = metrics.book_synced.labels(*labels)
        self._levels_bid = metrics.book_levels.labels(*labels, "bid")
        self._levels_ask = metrics.book_levels.labels(*labels, "ask")
        self._dropped = metrics.diffs_dropped.labels(*labels)
        self._too_many_levels = metrics.book_limits_exceeded.labels(*labels, "levels_per_side")
        self._snapshots = RestFetch(
            self.key, "snapshot", session, gate, metrics.snapshot_requests,
            metrics.messages_error, log, max_snapshot_bytes,
            metrics.book_limits_exceeded.labels(*labels, "snapshot_bytes"),
        )  # fmt: skip
        # None: the venue's bookTicker is not checked against the book.
        self._audit = TopAudit(
            metrics.top_of_book_checks.labels(*labels),
            metrics.top_of_book_mismatches.labels(*labels),
            top_audit_mismatches,
        ) if top_audit_mismatches else None  # fmt: skip
        self._diffs_seen = metrics.messages_processed.labels("depth")
        self._trades_seen = metrics.messages_processed.labels("trade")
        self._tickers_seen = metrics.messages_processed.labels("book_ticker")
        self._trades_accepted = metrics.trades_processed.labels()
        history = TradeHistory(adapter, self.key, state.symbol, session, gate, metrics)
        self._trade_gaps = TradeGaps(
            adapter.name, state.symbol, state.trade_ids, self._publish_trade, history.page,
            metrics, GapLimits(page_limit=adapter.agg_trades_limit),
        )  # fmt: skip
        self._latency = metrics.processing_latency
        self._lag = metrics.exchange_lag
        if shared is not None:
            self.connections = list(shared)
            return
        book_url, trades_url = adapter.stream_urls(state.symbol)
        book_policy, trades_policy = connection_policies(reconnect, stale_after_s)
        self.connections = [
            WebSocketFeed(
                f"{self.key}:{kind}",
                url,
                session,
                self.on_frame,
                self.connection_state(kind),
                Backoff(reconnect.initial_delay_s, reconnect.max_delay_s),
                policy,
                self._count_error,
                self._connect_failure_counter(kind),
                pacer,
            )  # fmt: skip
            for kind, url, policy in (
                ("book", book_url, book_policy),
                ("trades", trades_url, trades_policy),
            )
        ]

    @property
    def states(self) -> list[SymbolState[BookSync]]:
        return [self.state]

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [c.run() for c in self.connections]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        problems = self.readiness_problems(now, stale_after_s)
        return {self.key: problems} if problems else {}

    async def close(self) -> None:
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
        await self._trade_gaps.close()

    def readiness_problems(self, now: float, stale_after_s: float) -> list[str]:
        """Why this symbol is not ready ([] when it is)."""
        problems = [_disconnected(c) for c in self.connections if not c.connected]
        if not self.state.sync.synced:
            problems.append(f"book not synced ({self.state.sync.state.value})")
        if self._snapshots.outage.active:
            problems.append(f"snapshot failing: {self._snapshots.outage.cause}")
        if self.last_frame_at is None:
            problems.append("no message yet")
        elif now - self.last_frame_at > stale_after_s:
            problems.append(f"no message for {now - self.last_frame_at:.1f}s")
        return problems

    def update_gauges(self) -> None:
        bids, asks = self.state.sync.book.level_counts()
        self._levels_bid.set(bids)
        self._levels_ask.set(asks)

    def _connect_failure_counter(self, kind: str) -> Callable[[str], None]:
        failures = self._metrics.ws_connect_failures
        labels = (self.adapter.name, self.state.symbol, kind)
        return lambda reason: failures.labels(*labels, reason).inc()

    def _count_error(self, reason: str) -> None:
        self._metrics.messages_error.labels(reason).inc()

    def on_frame(self, frame: bytes, recv_ts: float) -> None:
        self.last_frame_at = time.monotonic()
        try:
            events = self.adapter.parse(frame, recv_ts)
        except MalformedMessage as e:
            self._skipped(e, frame)
            return
        state = self.state
        for event in events:
            if event.symbol != state.symbol:
                self._unexpected(event.symbol)
            else:
                self.on_event(event)

    def on_event(self, event: Event) -> None:
        """One event of this symbol."""
        if type(event) is DepthDiff:
            self._on_diff(event)
        elif type(event) is Trade:
            self._on_trade(event)
        elif type(event) is BookTicker:
            self._on_ticker(event)

    def _skipped(self, error: MalformedMessage, frame: bytes) -> None:
        """Count every malformed message; log at most one a second per symbol."""
        self._count_error(error.reason)
        more = self._skip_log.allow()
        if more is not None:
            log.warning(
                "%s: skipped malformed message (%s)%s: %.200r", self.key, error, more, frame
            )

    def _unexpected(self, symbol: str) -> None:
        """Count every message for another symbol; logged like the malformed ones."""
        self._count_error("unknown_symbol")
        more = self._skip_log.allow()
        if more is not None:
            log.warning("%s: skipped message for unexpected symbol %r%s", self.key, symbol, more)

    def _on_diff(self, diff: DepthDiff) -> None:
        self._diffs_seen.inc()
        sync = self.state.sync
        outcome = sync.on_diff(diff)
        if outcome is Outcome.APPLIED:
            self._applied(diff)
            self._latency.observe(time.time() - diff.recv_ts)
            self._lag.observe(max(0.0, diff.recv_ts - diff.exchange_ts / 1000))
        elif outcome is Outcome.DROPPED:
            self._dropped.inc()
        else:  # buffered, or a break: the only outcomes that can leave the book without one
            if outcome in BREAKS:
                self._broken(outcome, diff)
            if self._wants_snapshot():
                self._request_snapshot()

    def _applied(self, diff: DepthDiff) -> None:
        state = self.state
        self._updates.inc()
        state.last_recv_ts = diff.recv_ts
        state.book_unpublished = True
        if not self._synced_flag:
            self._set_synced(True)
        self._publisher.book_changed(state)
        if self._audit is not None:
            self._audit_top(diff.last_id, diff.recv_ts)

    def _audit_top(self, book_id: int, recv_ts: float) -> None:
        """Hand the book's top at `book_id` to the audit; rebuild the book if it says so."""
        assert self._audit is not None
        if self._audit.on_book(book_id, self.state.sync.book, recv_ts) is Verdict.SUSTAINED:
            self._top_wrong()

    def _on_ticker(self, ticker: BookTicker) -> None:
        self._tickers_seen.inc()
        audit = self._audit
        if audit is not None and audit.on_ticker(ticker, ticker.recv_ts) is Verdict.SUSTAINED:
            self._top_wrong()

    def _top_wrong(self) -> None:
        """The book's top keeps disagreeing with the venue's: rebuild it."""
        state, audit = self.state, self._audit
        assert audit is not None
        log.warning("%s %s: book's top keeps disagreeing with the venue's bookTicker (%s), "
                    "resyncing from a new snapshot", self.adapter.name, state.symbol,
                    audit.evidence)  # fmt: skip
        state.sync.discard()
        self._set_synced(False)
        self._resyncs.inc()
        self._publisher.book_changed(state)
        if self._wants_snapshot():
            self._request_snapshot()

    def _on_trade(self, trade: Trade) -> None:
        self._trades_seen.inc()
        self._trade_gaps.on_trade(trade)  # calls _publish_trade, in id order

    def _publish_trade(self, trade: Trade) -> None:
        self.state.record_trade(trade)
        self._trades_accepted.inc()
        self._publisher.trade(self.state, trade)

    def _broken(self, outcome: Outcome, diff: DepthDiff | None) -> None:
        self._set_synced(False)
        if self._audit is not None:
            self._audit.book_discarded()
        if outcome is Outcome.TOO_DEEP:
            self._too_many_levels.inc()
            self._resyncs.inc()
        elif outcome is not Outcome.SNAPSHOT_TOO_OLD:
            self._gaps.inc()
            self._resyncs.inc()
        ids = f"U={diff.first_id} u={diff.last_id} pu={diff.prev_last_id}" if diff else ""
        log.warning("%s: book out of sync (%s), resyncing from a new snapshot %s",
                    self.key, outcome.value, ids)  # fmt: skip
        self._publisher.book_changed(self.state)

    def _set_synced(self, synced: bool) -> None:
        if synced and not self._synced_flag:
            log.info("%s: book synced at update id %s", self.key, self.state.sync.last_id)
        self._synced_flag = synced
        self._synced_gauge.set(1 if synced else 0)

    def connection_state(self, kind: str) -> Callable[[bool], None]:
        """What to call when the `kind` ("book" or "trades") connection opens or drops."""
        depth_stream = kind == "book"
        gauge = self._metrics.ws_connected.labels(self.adapter.name, self.state.symbol, kind)
        drops = self._metrics.ws_disconnects.labels(self.adapter.name, self.state.symbol, kind)

        def on_state(connected: bool) -> None:
            gauge.set(1 if connected else 0)
            if not connected:
                drops.inc()
            if depth_stream:
                # A new connection starts a new diff chain: the book must be rebuilt.
                self.state.sync.reset()
                if self._audit is not None:
                    self._audit.reset()
                if self._synced_flag:
                    log.info("%s: book out of sync: its diff stream disconnected", self.key)
                    self._set_synced(False)
                    self._publisher.book_changed(self.state)
                if connected:
                    self._request_snapshot()  # diffs are being buffered from now on

        return on_state

    def _request_snapshot(self) -> None:
        if self._snapshot_task is None or self._snapshot_task.done():
            self._snapshot_task = asyncio.create_task(
                self._fetch_snapshot(), name=f"snapshot:{self.state.symbol}"
            )

    def _wants_snapshot(self) -> bool:
        """No book, and the diff stream is open (so no diff after the snapshot is missed)."""
        return self.state.sync.needs_snapshot and self.connections[0].connected

    async def _fetch_snapshot(self) -> None:
        backoff = Backoff(self._reconnect.initial_delay_s, self._reconnect.max_delay_s)
        while self._wants_snapshot():
            failure = await self._snapshot_attempt(self._wants_snapshot)
            if failure is Failure.UNWANTED:
                break  # e.g. the stream dropped while we waited; its reconnect asks again
            if self._wants_snapshot():  # the gate holds any wait the exchange imposed
                await asyncio.sleep(0.0 if failure is Failure.LIMITED else backoff.next_delay())

    async def _snapshot_attempt(self, wanted: Callable[[], bool] | None = None) -> Failure | None:
        """One GET through the gate (if still `wanted` once it lets it go): the snapshot
        applied (None), or why not."""
        adapter, symbol = self.adapter, self.state.symbol
        snapshot = await self._snapshots.get(
            adapter.snapshot_url(symbol), adapter.snapshot_weight,
            functools.partial(adapter.parse_snapshot, symbol), wanted,
        )  # fmt: skip
        if isinstance(snapshot, Failure):
            return snapshot
        self._apply_snapshot(snapshot)
        return None

    def _apply_snapshot(self, snapshot: BookSnapshot) -> None:
        outcomes = self.state.sync.on_snapshot(snapshot)
        outliers = outcomes.count(Outcome.OUTLIER)
        if outliers:
            self._metrics.messages_error.labels("out_of_order").inc(outliers)
        log.debug("%s %s: snapshot lastUpdateId=%d, %d buffered diffs replayed (%d skipped "
                  "as out of order), state %s", self.adapter.name, self.state.symbol,
                  snapshot.last_id, len(outcomes), outliers,
                  self.state.sync.state.value)  # fmt: skip
        for outcome in outcomes:
            if outcome in BREAKS:
                self._broken(outcome, None)
        sync = self.state.sync
        if sync.synced:
            self.state.last_recv_ts = snapshot.recv_ts
            self._set_synced(True)
            self._updates.inc(outcomes.count(Outcome.APPLIED))
            self._publisher.book_changed(self.state)
            if self._audit is not None and sync.last_id is not None:
                self._audit_top(sync.last_id, snapshot.recv_ts)


def connection_policies(
    reconnect: ReconnectConfig, stale_after_s: float
) -> tuple[ConnectionPolicy, ConnectionPolicy]:
    """(book, trades): the book stream must never be silent for long; a quiet trade stream
    is normal, so it is only checked by pings."""
    age = reconnect.max_connection_age_s
    return (
        ConnectionPolicy(stale_after_s, ping_interval_s=stale_after_s, max_age_s=age),
        ConnectionPolicy(None, ping_interval_s=stale_after_s, max_age_s=age),
    )


def _disconnected(connection: WebSocketFeed) -> str:
    kind = connection.name.rsplit(":", 1)[1]
    cause = connection.outage.cause
    return f"{kind} stream disconnected: {cause}" if cause else f"{kind} stream disconnected"
