"""One Bybit v5 public connection and the symbols it carries (`symbols_per_connection`).

On every new connection each symbol's `orderbook.{depth}.{symbol}` (an in-band snapshot,
then deltas) and `publicTrade.{symbol}` are subscribed, in requests within Bybit's limits.
Every subscribe is confirmed by its req_id: one rejected, or unanswered within
`subscribe_timeout_s`, is sent again with backoff, and stays on /ready for its symbol until
it succeeds. A failure that names no topic fails the whole request, whose topics are then
sent one per request, so that one bad symbol cannot hold the others back; "already
subscribed" counts as confirmed.

Each delta must carry `u == previous u + 1`; on a break (or a crossed book) that symbol
alone is resynced: its book is withdrawn from publishing, its orderbook topic unsubscribed
and subscribed again for a fresh snapshot. Every snapshot replaces the book, one with
`u == 1` (a Bybit restart) without counting as a gap.

Trades are published as they come: Bybit sends no trade twice on one connection and none
again on (re)subscribing, so there is nothing to drop; `i` is a text id (a UUID on linear).

Keepalive: {"op": "ping"} every `ping_interval_s` (Bybit asks for 20 s); its reply is a
frame like any other for the watchdog, which reconnects after `stale_after_s` of silence.
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
from marketdata.feed import ConnectionPolicy, WebSocketFeed, link_problems
from marketdata.metrics import Metrics
from marketdata.skip_log import SkipLog
from marketdata.state import SymbolState
from marketdata.venue import FeedContext
from marketdata.venues.base import MalformedMessage
from marketdata.venues.bybit.book_state import BybitBook, Outcome
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.bybit.subscriptions import (
    Subscription,
    SubState,
    Verdict,
    batches,
    max_args,
    verdicts,
)
from marketdata.venues.bybit.wire import NAME, BookMessage, Reply, Trades, parse

log = logging.getLogger(__name__)

CONNECTIONS_PER_IP = (500, 300.0)  # Bybit: 500 connections per 5 minutes per domain
NO_HANDOVER_S = 10 * 365 * 86400.0  # Bybit does not cut connections at an age
MAX_FRAME_BYTES = 4 * 1024 * 1024  # orderbook.1000 snapshots and 1024-trade frames fit
CHANNELS = ("orderbook", "publicTrade")


class BybitFeed:
    def __init__(
        self,
        config: BybitConfig,
        symbols: Sequence[str],
        context: FeedContext,
        name: str,
        pacer: ConnectPacer | None = None,
    ) -> None:
        self.key = name
        self._config = config
        self._publisher = context.publisher
        self._metrics = metrics = context.metrics
        reconnect = context.reconnect
        self._books = {s: BybitBook(s) for s in symbols}
        self._states = {s: SymbolState(NAME, s, book) for s, book in self._books.items()}
        self._skip_log = SkipLog()
        self._req_id = 0
        self._requests: dict[str, list[Subscription]] = {}
        self._wake = asyncio.Event()
        self._last_frame_at: float | None = None
        self._unsubscribe_first: set[str] = set()  # book topics being resubscribed

        def backoff() -> Backoff:
            return Backoff(reconnect.initial_delay_s, reconnect.max_delay_s)

        self._subs: dict[str, Subscription] = {}
        self._book_topic: dict[str, str] = {}
        for symbol in symbols:
            for channel in CHANNELS:
                topic = self.topic(channel, symbol)
                self._subs[topic] = Subscription(channel, topic, symbol, name, backoff())
            self._book_topic[symbol] = self.topic("orderbook", symbol)
        self._resync_backoff = {s: backoff() for s in symbols}
        self._metrics_of = {s: _SymbolMetrics(metrics, s) for s in symbols}
        self._diffs_seen = metrics.messages_processed.labels("depth")
        self._trades_seen = metrics.messages_processed.labels("trade")
        self._trades_accepted = metrics.trades_processed.labels()
        self._latency = metrics.processing_latency
        policy = ConnectionPolicy(
            context.stale_after_s, ping_interval_s=context.stale_after_s,
            max_age_s=NO_HANDOVER_S, max_frame_bytes=MAX_FRAME_BYTES,
        )  # fmt: skip
        self.connection = WebSocketFeed(
            name, config.ws_url, context.session, self.on_frame, self._on_state, backoff(),
            policy, self._count_error, self._connect_failed, pacer,
        )  # fmt: skip

    def topic(self, channel: str, symbol: str) -> str:
        if channel == "orderbook":
            return f"orderbook.{self._config.depth}.{symbol}"
        return f"{channel}.{symbol}"

    # -- the Feed protocol --------------------------------------------------------------

    @property
    def states(self) -> list[SymbolState[BybitBook]]:
        return list(self._states.values())

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.connection.run(), self._maintain()]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        shared = self._connection_problems(now, stale_after_s)
        out: dict[str, list[str]] = {}
        for symbol, book in self._books.items():
            problems = list(shared)
            if not shared:  # a subscription waits for the connection first
                subs = (self._subs[self.topic(channel, symbol)] for channel in CHANNELS)
                problems += [p for sub in subs if (p := sub.problem()) is not None]
            if not book.synced:
                problems.append("book not synced")
            if problems:
                out[f"{NAME}:{symbol}"] = problems
        return out

    def _connection_problems(self, now: float, stale_after_s: float) -> list[str]:
        """What keeps every symbol of this connection from being ready."""
        return link_problems(self.connection, self._last_frame_at, now, stale_after_s)

    def update_gauges(self) -> None:
        for symbol, book in self._books.items():
            bids, asks = book.book.level_counts()
            self._metrics_of[symbol].levels(bids, asks)

    async def close(self) -> None:
        pass  # nothing runs beside the connection and the maintenance task

    # -- frames -------------------------------------------------------------------------

    def on_frame(self, frame: bytes, recv_ts: float) -> None:
        self._last_frame_at = time.monotonic()
        try:
            events = parse(frame, recv_ts)
        except MalformedMessage as e:
            self._skipped(str(e), e.reason, frame)
            return
        for event in events:
            if isinstance(event, BookMessage):
                self._on_book(event)
            elif isinstance(event, Trades):
                self._on_trades(event)
            elif isinstance(event, Reply):
                self._on_reply(event)

    def _skipped(self, error: str, reason: str, frame: bytes) -> None:
        self._count_error(reason)
        self._skip_log.warn(log, self.key, error, frame)

    def _connect_failed(self, reason: str) -> None:
        for symbol in self._books:
            self._metrics.ws_connect_failures.labels(NAME, symbol, "ws", reason).inc()

    def _count_error(self, reason: str) -> None:
        self._metrics.messages_error.labels(reason).inc()

    def _on_book(self, message: BookMessage) -> None:
        self._diffs_seen.inc()
        symbol = message.symbol
        book = self._books.get(symbol)
        if book is None:
            self._skipped(f"book message for unexpected {symbol!r}", "unknown_symbol", b"")
            return
        was_synced = book.synced
        outcome = book.on_message(message)
        metrics = self._metrics_of[symbol]
        if outcome is Outcome.WAITING:
            metrics.dropped.inc()
        elif book.synced:
            state = self._states[symbol]
            state.last_recv_ts = message.recv_ts
            state.book_unpublished = True
            metrics.updates.inc()
            self._latency.observe(time.time() - message.recv_ts)
            if outcome is Outcome.RESTART:
                log.warning("%s: %s snapshot with u=1: Bybit restarted its book service; "
                            "book replaced", self.key, symbol)  # fmt: skip
            elif not was_synced:
                self._resync_backoff[symbol].reset()
                metrics.synced.set(1)
                log.info("%s: %s book synced from its snapshot (u=%d)",
                         self.key, symbol, message.update_id)  # fmt: skip
            self._publisher.book_changed(state)
        else:
            self._broken(symbol, outcome, message)

    def _broken(self, symbol: str, outcome: Outcome, message: BookMessage) -> None:
        """A gap, a crossed or an oversized book: withdraw it and resubscribe the symbol."""
        book, metrics = self._books[symbol], self._metrics_of[symbol]
        if outcome is Outcome.GAP:
            metrics.gaps.inc()
            what = f"u {book.got} where {book.expected} was due"
        elif outcome is Outcome.CROSSED:
            metrics.gaps.inc()
            what = f"book crossed after the {'snapshot' if message.snapshot else 'delta'} " \
                   f"u={message.update_id}"  # fmt: skip
        else:
            self._metrics.book_limits_exceeded.labels(NAME, symbol, "levels_per_side").inc()
            what = f"more than {book.book.max_levels} levels a side"
        metrics.resyncs.inc()
        metrics.synced.set(0)
        log.warning("%s: %s book broken (%s), resubscribing that symbol",
                    self.key, symbol, what)  # fmt: skip
        self._publisher.book_changed(self._states[symbol])
        self._resubscribe_book(symbol)

    def _on_trades(self, batch: Trades) -> None:
        self._trades_seen.inc(len(batch.trades))
        for trade in batch.trades:
            state = self._states.get(trade.symbol)
            if state is None:
                self._skipped(f"trade for unexpected {trade.symbol!r}", "unknown_symbol", b"")
                continue
            state.record_trade(trade)
            self._trades_accepted.inc()
            self._publisher.trade(state, trade)

    def _on_reply(self, reply: Reply) -> None:
        if reply.op != "subscribe":
            return  # unsubscribe replies: a failure means it was gone already
        requested = self._requests.pop(reply.req_id, None)
        if requested is None:
            return  # not ours, or from before a reconnect
        cause = f"rejected: {reply.ret_msg or 'no reason given'}"
        for sub, verdict in verdicts(requested, reply.success, reply.ret_msg):
            if verdict is Verdict.CONFIRMED:
                sub.confirmed()
            elif verdict is Verdict.ASK_AGAIN:
                sub.state, sub.retry_at, sub.alone = SubState.IDLE, 0.0, True
            else:
                sub.alone = len(requested) > 1
                self._failed(sub, "rejected", cause)
        self._wake.set()

    def _failed(self, sub: Subscription, reason: str, cause: str) -> None:
        sub.state = SubState.IDLE
        sub.retry_at = time.monotonic() + sub.backoff.next_delay()
        sub.outage.fail(cause)
        self._metrics.subscription_failures.labels(NAME, sub.symbol, sub.channel, reason).inc()
        self._wake.set()

    # -- connection state and subscriptions ---------------------------------------------

    def _on_state(self, connected: bool) -> None:
        gauge = self._metrics.ws_connected
        for symbol, book in self._books.items():
            gauge.labels(NAME, symbol, "ws").set(1 if connected else 0)
            if not connected:
                self._metrics.ws_disconnects.labels(NAME, symbol, "ws").inc()
            if book.synced:
                book.discard()
                self._metrics_of[symbol].synced.set(0)
                self._publisher.book_changed(self._states[symbol])
        if not connected:
            log.info("%s: books out of sync: the connection was lost", self.key)
        self._requests.clear()
        self._unsubscribe_first.clear()
        for sub in self._subs.values():
            sub.state, sub.retry_at, sub.alone = SubState.IDLE, 0.0, False
        self._wake.set()

    def _resubscribe_book(self, symbol: str) -> None:
        """Ask for a fresh snapshot of the symbol's book (after a backoff)."""
        sub = self._subs[self._book_topic[symbol]]
        if sub.state is not SubState.IDLE:  # IDLE: a subscribe is already due
            sub.state = SubState.IDLE
            sub.retry_at = time.monotonic() + self._resync_backoff[symbol].next_delay()
            self._unsubscribe_first.add(sub.topic)
            self._wake.set()

    async def _maintain(self) -> None:
        """Send due subscribes, time out unanswered ones, ping; wake on anything new."""
        ping_every = self._config.ping_interval_s
        next_ping = time.monotonic() + ping_every
        while True:
            now = time.monotonic()
            wake_at = now + 1.0
            if self.connection.connected:
                wake_at = min(wake_at, await self._send_due(now))
                if now >= next_ping:
                    next_ping = now + ping_every
                    await self._send({"op": "ping", "req_id": self._next_id()})
                wake_at = min(wake_at, next_ping)
            self._wake.clear()
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(max(0.005, wake_at - now)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _send_due(self, now: float) -> float:
        """Send what is due; the time the next one falls due (or times out)."""
        timeout = self._config.subscribe_timeout_s
        next_at = now + timeout
        due: list[Subscription] = []
        for sub in self._subs.values():
            if sub.state is SubState.SENT:
                if now - sub.sent_at >= timeout:
                    self._requests.pop(sub.req_id, None)  # a late reply is not waited for
                    self._failed(sub, "timeout", f"no reply within {timeout:g}s")
                else:
                    next_at = min(next_at, sub.sent_at + timeout)
            elif sub.state is SubState.IDLE:
                if sub.retry_at > now:
                    next_at = min(next_at, sub.retry_at)
                else:
                    due.append(sub)
        again = [s.topic for s in due if s.topic in self._unsubscribe_first]
        if again:
            self._unsubscribe_first.difference_update(again)
            for args in batches(again, max_args(self._config.category)):
                await self._send({"op": "unsubscribe", "args": args, "req_id": self._next_id()})
        for group in self._requests_of(due):
            await self._subscribe(group, now)
        return next_at

    def _requests_of(self, due: list[Subscription]) -> list[list[Subscription]]:
        by_topic = {sub.topic: sub for sub in due if not sub.alone}
        most = max_args(self._config.category)
        groups = [[by_topic[topic] for topic in args] for args in batches(list(by_topic), most)]
        return groups + [[sub] for sub in due if sub.alone]

    async def _subscribe(self, subs: list[Subscription], now: float) -> None:
        req_id = self._next_id()
        for sub in subs:
            sub.state, sub.sent_at, sub.req_id = SubState.SENT, now, req_id
        self._requests[req_id] = subs
        args = [sub.topic for sub in subs]
        if not await self._send({"op": "subscribe", "args": args, "req_id": req_id}):
            for sub in subs:  # the connection went: its on_state starts them over
                sub.state = SubState.IDLE

    async def _send(self, message: dict[str, Any]) -> bool:
        return await self.connection.send(orjson.dumps(message).decode())

    def _next_id(self) -> str:
        self._req_id += 1
        return str(self._req_id)


class _SymbolMetrics:
    __slots__ = ("_levels_ask", "_levels_bid", "dropped", "gaps", "resyncs", "synced", "updates")

    def __init__(self, metrics: Metrics, symbol: str) -> None:
        labels = (NAME, symbol)
        self.updates = metrics.orderbook_updates.labels(*labels)
        self.dropped = metrics.diffs_dropped.labels(*labels)
        self.gaps = metrics.sequence_gaps.labels(*labels)
        self.resyncs = metrics.resyncs.labels(*labels)
        self.synced = metrics.book_synced.labels(*labels)
        self._levels_bid = metrics.book_levels.labels(*labels, "bid")
        self._levels_ask = metrics.book_levels.labels(*labels, "ask")

    def levels(self, bids: int, asks: int) -> None:
        self._levels_bid.set(bids)
        self._levels_ask.set(asks)


def feeds_for(config: BybitConfig, context: FeedContext) -> list[BybitFeed]:
    """The configured symbols in groups of `symbols_per_connection`, one feed each."""
    size = config.symbols_per_connection
    groups = [config.symbols[i : i + size] for i in range(0, len(config.symbols), size)]
    pacer = ConnectPacer(*CONNECTIONS_PER_IP)
    return [
        BybitFeed(config, group, context, _name(group, i), pacer) for i, group in enumerate(groups)
    ]


def _name(group: Sequence[str], index: int) -> str:
    return f"{NAME}:{group[0]}" if len(group) == 1 else f"{NAME}:connection{index + 1}"
