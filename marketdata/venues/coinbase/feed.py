"""One Coinbase Advanced Trade connection and the products it carries
(`symbols_per_connection`).

On every new connection one subscribe per channel goes out at once (Coinbase closes a
connection that has not subscribed within 5 s): `level2`, `market_trades` and `ticker` for
the connection's products, and `heartbeats`, without which a quiet channel is closed.
Each is confirmed by the `subscriptions` listing Coinbase sends after every request; one
rejected (an `error` frame) or unconfirmed within `subscribe_timeout_s` is sent again, alone,
with backoff, and stays on /ready for its product until it is confirmed.

Books: level2 sends each product's whole book as a snapshot, then updates. `sequence_num`
counts every frame of the connection, over all channels and products, so a gap cannot say
whose message was lost: every product of the connection is resynced, and no other. A
resync withdraws the book from publishing and unsubscribes and subscribes its level2 again,
on the same connection, for a fresh snapshot. The resubscribe goes on with the connection's
counter (its snapshot is just the next frame), so the sequence check carries on from the
frame that showed the gap; only a new connection starts a new count. A crossed or oversized
book, or a book whose top keeps disagreeing with Coinbase's own `ticker` (TopCheck), is
resynced alone the same way.

Trades: `side` on the wire is the maker's; the parser publishes the taker's. A subscribe's
snapshot repeats recent trades: repeats are dropped by id (TradeGate).

Keepalive: the heartbeats channel sends a frame every second; the watchdog reconnects
after `stale_after_s` without one, and WebSocket pings find a dead TCP connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import orjson

from marketdata.backoff import Backoff
from marketdata.connect_pacer import ConnectPacer
from marketdata.events import Trade
from marketdata.feed import ConnectionPolicy, WebSocketFeed, link_problems
from marketdata.outage import Outage
from marketdata.skip_log import SkipLog
from marketdata.state import SymbolState
from marketdata.venue import FeedContext
from marketdata.venues.base import MalformedMessage
from marketdata.venues.coinbase.book_state import CoinbaseBook, Outcome
from marketdata.venues.coinbase.config import CoinbaseConfig
from marketdata.venues.coinbase.sequence import Gap, SequenceCheck
from marketdata.venues.coinbase.subscriber import Subscriber
from marketdata.venues.coinbase.subscriptions import SendBudget
from marketdata.venues.coinbase.top_check import TopCheck, Verdict
from marketdata.venues.coinbase.trades import TradeGate
from marketdata.venues.coinbase.wire import (
    NAME,
    BookEvent,
    Error,
    Subscriptions,
    Ticker,
    Trades,
    parse,
)
from marketdata.venues.symbol_metrics import SymbolMetrics
from marketdata.waits import wait_event

log = logging.getLogger(__name__)

# Coinbase allows 750 connections per second per IP, but 8 messages: each connection sends
# 4 subscribes within 5 s of opening, so connections open one per second.
CONNECTIONS_PER_IP = (1, 1.0)
# Resyncs closer together than this back off further, even with a snapshot between them:
# were Coinbase to answer every resubscribe with a gap, they would slow down, not storm.
RESYNC_CALM_S = 60.0
NO_HANDOVER_S = 10 * 365 * 86400.0  # a new connection would need subscribing and resyncing


class CoinbaseFeed:
    def __init__(
        self,
        config: CoinbaseConfig,
        symbols: Sequence[str],
        context: FeedContext,
        name: str,
        pacer: ConnectPacer | None = None,
        budget: SendBudget | None = None,
    ) -> None:
        self.key = name
        self._config = config
        self._publisher = context.publisher
        self._metrics = metrics = context.metrics
        reconnect = context.reconnect
        self._books = {s: CoinbaseBook(s, config.max_levels) for s in symbols}
        self._states = {s: SymbolState(NAME, s, book) for s, book in self._books.items()}
        self._metrics_of = {s: SymbolMetrics(metrics, NAME, s) for s in symbols}
        self._checks = {
            s: TopCheck(m.top_checks, m.top_mismatches, config.top_check_reach,
                        config.top_check_mismatches)
            for s, m in self._metrics_of.items()
        }  # fmt: skip
        self._sequence = SequenceCheck()
        self._trades = TradeGate()
        self._skip_log = SkipLog()
        self._wake = asyncio.Event()
        self._last_frame_at: float | None = None
        self._clock = time.monotonic

        def backoff() -> Backoff:
            return Backoff(reconnect.initial_delay_s, reconnect.max_delay_s)

        self.subscriber = Subscriber(
            name, symbols, backoff, budget or SendBudget(config.messages_per_second),
            config.subscribe_timeout_s, self._send, metrics.subscription_failures,
            lambda symbol: self._books[symbol].synced, lambda: self._clock(), self._wake.set,
        )  # fmt: skip
        self._resync_backoff = {s: backoff() for s in symbols}
        self._last_resync_at = dict.fromkeys(symbols, -RESYNC_CALM_S)
        self._diffs_seen = metrics.messages_processed.labels("depth")
        self._trades_seen = metrics.messages_processed.labels("trade")
        self._tickers_seen = metrics.messages_processed.labels("ticker")
        self._trades_accepted = metrics.trades_processed.labels()
        self._duplicates = metrics.trades_duplicate.labels()
        self._latency = metrics.processing_latency
        policy = ConnectionPolicy(
            context.stale_after_s, ping_interval_s=context.stale_after_s,
            max_age_s=NO_HANDOVER_S, max_frame_bytes=config.max_frame_bytes,
        )  # fmt: skip
        self.connection = WebSocketFeed(
            name, config.ws_url, context.session, self.on_frame, self._on_state, backoff(),
            policy, self._count_error, self._connect_failed, pacer,
        )  # fmt: skip

    # -- the Feed protocol --------------------------------------------------------------

    @property
    def states(self) -> list[SymbolState[CoinbaseBook]]:
        return list(self._states.values())

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.connection.run(), self._maintain()]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        shared = self._connection_problems(now, stale_after_s)
        out: dict[str, list[str]] = {}
        for symbol, book in self._books.items():
            problems = list(shared)
            if not shared:  # a subscription waits for the connection first
                problems += self.subscriber.problems(symbol)
            if not book.synced:
                problems.append("book not synced")
            if problems:
                out[f"{NAME}:{symbol}"] = problems
        return out

    def _connection_problems(self, now: float, stale_after_s: float) -> list[str]:
        """What keeps every product of this connection from being ready."""
        return link_problems(self.connection, self._last_frame_at, now, stale_after_s)

    def update_gauges(self) -> None:
        for symbol, book in self._books.items():
            bids, asks = book.book.level_counts()
            self._metrics_of[symbol].levels(bids, asks)

    async def close(self) -> None:
        pass  # nothing runs beside the connection and the maintenance task

    # -- frames -------------------------------------------------------------------------

    def on_frame(self, frame: bytes, recv_ts: float) -> None:
        self._last_frame_at = self._clock()
        try:
            parsed = parse(frame, recv_ts)
        except MalformedMessage as e:
            # Its sequence_num cannot be read: the next frame's shows the gap, if it counted.
            self._skipped(str(e), e.reason, frame)
            return
        if parsed.sequence is not None:
            gap = self._sequence.check(parsed.sequence)
            if gap is not None:
                self._on_gap(gap)
        for event in parsed.events:
            if isinstance(event, BookEvent):
                self._on_book(event)
            elif isinstance(event, Trades):
                self._on_trades(event)
            elif isinstance(event, Ticker):
                self._on_ticker(event)
            elif isinstance(event, Subscriptions):
                self.subscriber.on_listing(event.channels)
            elif isinstance(event, Error):
                self.subscriber.on_error(event.message)

    def _skipped(self, error: str, reason: str, frame: bytes) -> None:
        self._count_error(reason)
        self._skip_log.warn(log, self.key, error, frame)

    def _connect_failed(self, reason: str) -> None:
        for symbol in self._books:
            self._metrics.ws_connect_failures.labels(NAME, symbol, "ws", reason).inc()

    def _count_error(self, reason: str) -> None:
        self._metrics.messages_error.labels(reason).inc()

    def _on_gap(self, gap: Gap) -> None:
        log.warning("%s: %s; resyncing every product of the connection: %s",
                    self.key, gap, ", ".join(self._books))  # fmt: skip
        for symbol in self._books:
            self._metrics_of[symbol].gaps.inc()
            self._resync(symbol)

    def _on_book(self, event: BookEvent) -> None:
        self._diffs_seen.inc()
        symbol = event.symbol
        book = self._books.get(symbol)
        if book is None:
            self._skipped(f"level2 for unexpected product {symbol!r}", "unknown_symbol", b"")
            return
        was_synced = book.synced
        outcome = book.on_event(event)
        metrics = self._metrics_of[symbol]
        if outcome is Outcome.APPLIED:
            state = self._states[symbol]
            state.last_recv_ts = event.recv_ts
            state.book_unpublished = True
            metrics.updates.inc()
            self._latency.observe(time.time() - event.recv_ts)
            if event.snapshot:
                self._snapshot_loaded(symbol, was_synced)
            self._publisher.book_changed(state)
            if self._checks[symbol].on_book(book.book) is Verdict.SUSTAINED:
                self._top_disagrees(symbol)
        elif outcome is Outcome.WAITING:
            metrics.dropped.inc()
        else:
            if outcome is Outcome.CROSSED:
                metrics.gaps.inc()  # sequence_gaps counts crossed books too
                cause = "crossed (best bid at or above best ask)"
            else:
                metrics.too_many_levels.inc()
                cause = f"over {self._config.max_levels} levels on a side"
            log.warning("%s: %s book %s after %s, resyncing it", self.key, symbol, cause,
                        "its snapshot" if event.snapshot else "an update")  # fmt: skip
            self._resync(symbol)

    def _snapshot_loaded(self, symbol: str, was_synced: bool) -> None:
        self.subscriber.snapshot_came(symbol)
        self._metrics_of[symbol].synced.set(1)
        self._checks[symbol].book_discarded()
        bids, asks = self._books[symbol].book.level_counts()
        log.info("%s: %s book %s from its snapshot (%d bids, %d asks)", self.key, symbol,
                 "replaced" if was_synced else "synced", bids, asks)  # fmt: skip

    def _on_ticker(self, ticker: Ticker) -> None:
        self._tickers_seen.inc()
        book = self._books.get(ticker.symbol)
        if book is None or not book.synced:
            return
        if self._checks[ticker.symbol].on_ticker(ticker) is Verdict.SUSTAINED:
            self._top_disagrees(ticker.symbol)

    def _top_disagrees(self, symbol: str) -> None:
        log.warning("%s: %s book top keeps disagreeing with Coinbase's ticker (%s), "
                    "resyncing it", self.key, symbol, self._checks[symbol].evidence)  # fmt: skip
        self._resync(symbol)

    def _resync(self, symbol: str) -> None:
        """Withdraw the product's book and ask for a fresh snapshot (after a backoff)."""
        self._books[symbol].discard()
        self._checks[symbol].book_discarded()
        metrics = self._metrics_of[symbol]
        metrics.resyncs.inc()
        metrics.synced.set(0)
        self._publisher.book_changed(self._states[symbol])
        now = self._clock()
        backoff = self._resync_backoff[symbol]
        if now - self._last_resync_at[symbol] >= RESYNC_CALM_S:
            backoff.reset()  # the last one held: this is no storm
        self._last_resync_at[symbol] = now
        at = now + backoff.next_delay()
        self.subscriber.resubscribe_level2(symbol, at)

    def _on_trades(self, batch: Trades) -> None:
        fresh = self._trades.fresh(batch)
        self._trades_seen.inc(len(batch.trades))
        if len(fresh) < len(batch.trades):
            self._duplicates.inc(len(batch.trades) - len(fresh))
        for trade in fresh:
            state = self._states.get(trade.symbol)
            if state is None:
                self._skipped(f"trade for unexpected product {trade.symbol!r}",
                              "unknown_symbol", b"")  # fmt: skip
                continue
            self._publish_trade(state, trade)

    def _publish_trade(self, state: SymbolState[CoinbaseBook], trade: Trade) -> None:
        state.record_trade(trade)
        self._trades_accepted.inc()
        self._publisher.trade(state, trade)

    # -- connection state and subscriptions ---------------------------------------------

    def _on_state(self, connected: bool) -> None:
        gauge = self._metrics.ws_connected
        self._sequence.reset()
        for symbol, book in self._books.items():
            gauge.labels(NAME, symbol, "ws").set(1 if connected else 0)
            if not connected:
                self._metrics.ws_disconnects.labels(NAME, symbol, "ws").inc()
            self._checks[symbol].book_discarded()
            if book.synced:
                book.discard()
                self._metrics_of[symbol].synced.set(0)
                self._publisher.book_changed(self._states[symbol])
        if not connected:
            log.info("%s: books out of sync: the connection was lost", self.key)
        self.subscriber.start_over()

    async def _maintain(self) -> None:
        """Send due requests, time out unconfirmed ones; wake on anything new. A failure
        here is logged (once while it lasts) and retried: it must not end the service, nor
        leave the products silently unsubscribed."""
        trouble = Outage(f"{self.key}: subscription upkeep", log, level=logging.ERROR)
        while True:
            self._wake.clear()  # before the work: a wake during it is not lost
            now = self._clock()
            wake_at = now + 1.0
            try:
                if self.connection.connected:
                    wake_at = min(wake_at, await self._send_due(now))
                trouble.ok()
            except Exception as e:  # noqa: BLE001 - a bug here must not stop the feeds
                trouble.fail(e)
            await wait_event(self._wake, max(0.005, wake_at - now))

    async def _send_due(self, now: float) -> float:
        return await self.subscriber.send_due(now)

    async def _send(self, kind: str, channel: str, products: list[str]) -> bool:
        message = {"type": kind, "product_ids": products, "channel": channel}
        return await self.connection.send(orjson.dumps(message).decode())


def feeds_for(config: CoinbaseConfig, context: FeedContext) -> list[CoinbaseFeed]:
    """The configured products in groups of `symbols_per_connection`, one feed each; they
    share the per-IP connection pace and message budget."""
    size = config.symbols_per_connection
    groups = [config.symbols[i : i + size] for i in range(0, len(config.symbols), size)]
    pacer = ConnectPacer(*CONNECTIONS_PER_IP)
    budget = SendBudget(config.messages_per_second)
    return [
        CoinbaseFeed(config, group, context, _name(group, i), pacer, budget)
        for i, group in enumerate(groups)
    ]


def _name(group: Sequence[str], index: int) -> str:
    return f"{NAME}:{group[0]}" if len(group) == 1 else f"{NAME}:connection{index + 1}"
