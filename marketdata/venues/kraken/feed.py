"""One Kraken v2 connection and the symbols it carries (`symbols_per_connection`).

On every new connection:
1. subscribe `instrument` (snapshot): each pair's price and qty precision, which the book
   checksum renders at. A configured pair Kraken does not list is reported, not subscribed.
2. subscribe `book` (the configured depth, with its in-band snapshot) and `trade` (with the
   last 50 trades, which fill what a reconnect missed; repeats are dropped by trade id).
Every subscribe is confirmed: one rejected, or unanswered within `subscribe_timeout_s`, is
sent again with backoff, and stays on /ready for its symbol until it succeeds.

Kraken sends no sequence numbers: every book message carries a CRC32 of the top 10 levels,
which the book must reproduce after applying it. On a mismatch that pair alone is resynced:
its book is withdrawn from publishing, then unsubscribed and subscribed again for a fresh
snapshot. The other pairs on the connection are untouched.

Keepalive: Kraken sends a heartbeat every second while anything is subscribed (the
watchdog reconnects after `stale_after_s` without a frame), and this feed sends the
application ping every `ping_interval_s`.
"""

from __future__ import annotations

import asyncio
import enum
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
from marketdata.venues.kraken.book_state import KrakenBook, Outcome
from marketdata.venues.kraken.config import KrakenConfig
from marketdata.venues.kraken.trades import TradeGate
from marketdata.venues.kraken.wire import (
    NAME,
    Ack,
    BookMessage,
    Instruments,
    Precision,
    Status,
    Trades,
    parse,
)
from marketdata.venues.symbol_metrics import SymbolMetrics
from marketdata.waits import wait_event

log = logging.getLogger(__name__)

# Kraken documents no connection-rate figure in what we follow (exchanges.md §3): Binance
# spot's 300 per 5 minutes per IP is kept as a conservative bound.
CONNECTIONS_PER_IP = (300, 300.0)
NO_HANDOVER_S = 10 * 365 * 86400.0  # Kraken does not cut connections at an age
INSTRUMENT = ""  # the instrument channel's "symbol": it is one subscription per connection
# Kraken's book snapshots and instrument lists are large; the oversize guard stays.
MAX_FRAME_BYTES = 16 * 1024 * 1024


class SubState(enum.Enum):
    IDLE = "idle"  # to be sent (at retry_at)
    SENT = "sent"  # waiting for its reply
    CONFIRMED = "confirmed"


class Subscription:
    """One channel of one pair (or the instrument channel), kept subscribed."""

    __slots__ = ("backoff", "channel", "outage", "retry_at", "sent_at", "state", "symbol")

    def __init__(self, channel: str, symbol: str, feed_name: str, backoff: Backoff) -> None:
        self.channel = channel
        self.symbol = symbol
        self.state = SubState.IDLE
        self.sent_at = 0.0
        self.retry_at = 0.0
        self.backoff = backoff
        what = f"{feed_name}: {channel} subscription" + (f" of {symbol}" if symbol else "")
        self.outage = Outage(what, log)

    def problem(self) -> str | None:
        if self.outage.active:
            return f"{self.channel} subscribe failing: {self.outage.cause}"
        if self.state is not SubState.CONFIRMED:
            return f"{self.channel} subscription not confirmed yet"
        return None


class KrakenFeed:
    def __init__(
        self,
        config: KrakenConfig,
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
        self._books = {s: KrakenBook(s, config.depth, Precision(0, 0)) for s in symbols}
        self._states = {s: SymbolState(NAME, s, book) for s, book in self._books.items()}
        self._listed: dict[str, bool] = {}  # pair -> listed, once the instruments came
        self._trades = TradeGate()
        self._status: Outage = Outage(f"{name}: Kraken system status", log)
        self._skip_log = SkipLog()
        self._req_id = 0
        self._requests: dict[int, list[Subscription]] = {}
        self._wake = asyncio.Event()
        self._last_frame_at: float | None = None
        self._unsubscribe_first: set[str] = set()  # pairs whose book is resubscribed

        def backoff() -> Backoff:
            return Backoff(reconnect.initial_delay_s, reconnect.max_delay_s)

        self._instrument = Subscription("instrument", INSTRUMENT, name, backoff())
        self._subs: dict[tuple[str, str], Subscription] = {("instrument", ""): self._instrument}
        for symbol in symbols:
            for channel in ("book", "trade"):
                self._subs[(channel, symbol)] = Subscription(channel, symbol, name, backoff())
        self._resync_backoff = {s: backoff() for s in symbols}
        self._metrics_of = {s: SymbolMetrics(metrics, NAME, s) for s in symbols}
        self._diffs_seen = metrics.messages_processed.labels("depth")
        self._trades_seen = metrics.messages_processed.labels("trade")
        self._trades_accepted = metrics.trades_processed.labels()
        self._duplicates = metrics.trades_duplicate.labels()
        self._latency = metrics.processing_latency
        policy = ConnectionPolicy(
            context.stale_after_s, ping_interval_s=context.stale_after_s,
            max_age_s=NO_HANDOVER_S, max_frame_bytes=MAX_FRAME_BYTES,
        )  # fmt: skip
        self.connection = WebSocketFeed(
            name, config.ws_url, context.session, self.on_frame, self._on_state, backoff(),
            policy, self._count_error, self._connect_failed, pacer,
        )  # fmt: skip

    # -- the Feed protocol --------------------------------------------------------------

    @property
    def states(self) -> list[SymbolState[KrakenBook]]:
        return list(self._states.values())

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.connection.run(), self._maintain()]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        shared = self._connection_problems(now, stale_after_s)
        out: dict[str, list[str]] = {}
        for symbol, book in self._books.items():
            problems = list(shared)
            if self._listed.get(symbol) is False:
                problems.append("not listed by Kraken's instrument channel")
            else:
                if not shared:  # a subscription waits for the connection first
                    subs = (self._subs[(channel, symbol)] for channel in ("book", "trade"))
                    problems += [p for sub in subs if (p := sub.problem()) is not None]
                if not book.synced:
                    problems.append("book not synced")
            if problems:
                out[f"{NAME}:{symbol}"] = problems
        return out

    def _connection_problems(self, now: float, stale_after_s: float) -> list[str]:
        """What keeps every pair of this connection from being ready."""
        shared = link_problems(self.connection, self._last_frame_at, now, stale_after_s)
        if self._status.active:
            shared.append(f"Kraken system status: {self._status.cause}")
        if (instrument := self._instrument.problem()) is not None:
            shared.append(instrument)
        return shared

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
            elif isinstance(event, Ack):
                self._on_ack(event)
            elif isinstance(event, Instruments):
                self._on_instruments(event)
            elif isinstance(event, Status):
                self._on_status(event)

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
            self._skipped(f"book message for unexpected pair {symbol!r}", "unknown_symbol", b"")
            return
        if self._listed.get(symbol) is not True:
            return  # before its precision is known nothing can be checked
        was_synced = book.synced
        outcome = book.on_message(message)
        metrics = self._metrics_of[symbol]
        if outcome is Outcome.APPLIED:
            state = self._states[symbol]
            state.last_recv_ts = message.recv_ts
            state.book_unpublished = True
            metrics.updates.inc()
            self._latency.observe(time.time() - message.recv_ts)
            if not was_synced:
                self._resync_backoff[symbol].reset()
                metrics.synced.set(1)
                log.info("%s: %s book synced from its snapshot (checksum %d)",
                         self.key, symbol, message.checksum)  # fmt: skip
            self._publisher.book_changed(state)
        elif outcome is Outcome.WAITING:
            metrics.dropped.inc()
        else:
            metrics.checksum_mismatches.inc()
            metrics.resyncs.inc()
            metrics.synced.set(0)
            log.warning("%s: %s book checksum mismatch (Kraken %d, book %d after a %s), "
                        "resubscribing that pair", self.key, symbol, book.expected, book.got,
                        "snapshot" if message.snapshot else "update")  # fmt: skip
            self._publisher.book_changed(self._states[symbol])
            self._resubscribe_book(symbol)

    def _on_trades(self, batch: Trades) -> None:
        fresh = self._trades.fresh(batch)
        self._trades_seen.inc(len(batch.trades))
        if len(fresh) < len(batch.trades):
            self._duplicates.inc(len(batch.trades) - len(fresh))
        for trade in fresh:
            state = self._states.get(trade.symbol)
            if state is None:
                self._skipped(f"trade for unexpected pair {trade.symbol!r}", "unknown_symbol", b"")
                continue
            self._publish_trade(state, trade)

    def _publish_trade(self, state: SymbolState[KrakenBook], trade: Trade) -> None:
        state.record_trade(trade)
        self._trades_accepted.inc()
        self._publisher.trade(state, trade)

    def _on_instruments(self, instruments: Instruments) -> None:
        for symbol, book in self._books.items():
            precision = instruments.pairs.get(symbol)
            listed = precision is not None
            if self._listed.get(symbol) is not listed:
                if not listed:
                    log.error("%s: %s is not listed by Kraken's instrument channel; not "
                              "subscribing it", self.key, symbol)  # fmt: skip
                elif symbol in self._listed:
                    log.info("%s: %s is listed again", self.key, symbol)
            self._listed[symbol] = listed
            if precision is not None and precision != book.precision:
                was_synced = book.synced
                book.set_precision(precision)
                if was_synced:  # its checksums were rendered at the old precision
                    self._metrics_of[symbol].synced.set(0)
                    self._publisher.book_changed(self._states[symbol])
                    self._resubscribe_book(symbol)
        self._wake.set()

    def _on_status(self, status: Status) -> None:
        if status.system == "online":
            self._status.ok()
        else:
            self._status.fail(status.system)

    def _on_ack(self, ack: Ack) -> None:
        if ack.method != "subscribe":
            return  # unsubscribe replies: a failure means it was gone already
        requested = self._requests.get(ack.req_id) if ack.req_id is not None else None
        if requested is None:
            return
        if ack.symbol is not None:
            subs = [s for s in requested if s.symbol == ack.symbol]
        else:
            subs = list(requested)  # instrument, or a reply for the whole request
        for sub in subs:
            requested.remove(sub)
            if sub.state is not SubState.SENT:
                continue
            if ack.success:
                sub.state = SubState.CONFIRMED
                sub.backoff.reset()
                sub.outage.ok()
            else:
                self._failed(sub, "rejected", f"rejected: {ack.error or 'no reason given'}")
        if not requested and ack.req_id is not None:
            del self._requests[ack.req_id]

    def _failed(self, sub: Subscription, reason: str, cause: str) -> None:
        sub.state = SubState.IDLE
        sub.retry_at = time.monotonic() + sub.backoff.next_delay()
        sub.outage.fail(cause)
        symbols = list(self._books) if sub.symbol == INSTRUMENT else [sub.symbol]
        failures = self._metrics.subscription_failures
        for symbol in symbols:
            failures.labels(NAME, symbol, sub.channel, reason).inc()
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
        for sub in self._subs.values():
            sub.state = SubState.IDLE
            sub.retry_at = 0.0
        self._wake.set()

    def _resubscribe_book(self, symbol: str) -> None:
        """Withdraw the pair's book and ask for a fresh snapshot (after a backoff)."""
        sub = self._subs[("book", symbol)]
        if sub.state is SubState.CONFIRMED:
            sub.state = SubState.IDLE
            sub.retry_at = time.monotonic() + self._resync_backoff[symbol].next_delay()
            self._unsubscribe_first.add(symbol)
            self._wake.set()

    async def _maintain(self) -> None:
        """Send due subscribes, time out unanswered ones, ping; wake on anything new. A
        failure here is logged (once while it lasts) and retried: it must not end the
        service, nor leave the pairs silently unsubscribed."""
        ping_every = self._config.ping_interval_s
        next_ping = time.monotonic() + ping_every
        trouble = Outage(f"{self.key}: subscription upkeep", log, level=logging.ERROR)
        while True:
            self._wake.clear()  # before the work: a wake during it is not lost
            now = time.monotonic()
            wake_at = now + 1.0
            try:
                if self.connection.connected:
                    wake_at = min(wake_at, await self._send_due(now))
                    if now >= next_ping:
                        next_ping = now + ping_every
                        await self._send({"method": "ping", "req_id": self._next_id()})
                    wake_at = min(wake_at, next_ping)
                trouble.ok()
            except Exception as e:  # noqa: BLE001 - a bug here must not stop the feeds
                trouble.fail(e)
            await wait_event(self._wake, max(0.005, wake_at - now))

    async def _send_due(self, now: float) -> float:
        """Send what is due; the time the next one falls due (or times out)."""
        timeout = self._config.subscribe_timeout_s
        next_at = now + timeout
        due: dict[str, list[Subscription]] = {}
        for sub in self._subs.values():
            if sub.state is SubState.SENT:
                if now - sub.sent_at >= timeout:
                    self._failed(sub, "timeout", f"no reply within {timeout:g}s")
                else:
                    next_at = min(next_at, sub.sent_at + timeout)
                continue
            if sub.state is SubState.CONFIRMED:
                continue
            if sub.symbol != INSTRUMENT and self._listed.get(sub.symbol) is not True:
                continue  # waits for the instrument list (or is not listed)
            if sub.retry_at > now:
                next_at = min(next_at, sub.retry_at)
                continue
            due.setdefault(sub.channel, []).append(sub)
        for channel, subs in due.items():
            await self._subscribe(channel, subs, now)
        return next_at

    async def _subscribe(self, channel: str, subs: list[Subscription], now: float) -> None:
        symbols = [s.symbol for s in subs if s.symbol != INSTRUMENT]
        params: dict[str, Any] = {"channel": channel, "snapshot": True}
        if symbols:
            params["symbol"] = symbols
        if channel == "book":
            params["depth"] = self._config.depth
            again = [s for s in symbols if s in self._unsubscribe_first]
            if again:
                self._unsubscribe_first.difference_update(again)
                unsubscribe = {"channel": "book", "symbol": again, "depth": self._config.depth}
                await self._send(
                    {"method": "unsubscribe", "params": unsubscribe, "req_id": self._next_id()}
                )
        req_id = self._next_id()
        for sub in subs:
            sub.state, sub.sent_at = SubState.SENT, now
        self._requests[req_id] = list(subs)
        if not await self._send({"method": "subscribe", "params": params, "req_id": req_id}):
            for sub in subs:  # the connection went: its on_state starts them over
                sub.state = SubState.IDLE

    async def _send(self, message: dict[str, Any]) -> bool:
        return await self.connection.send(orjson.dumps(message).decode())

    def _next_id(self) -> int:
        self._req_id += 1
        return self._req_id


def feeds_for(config: KrakenConfig, context: FeedContext) -> list[KrakenFeed]:
    """The configured pairs in groups of `symbols_per_connection`, one feed each."""
    size = config.symbols_per_connection
    groups = [config.symbols[i : i + size] for i in range(0, len(config.symbols), size)]
    pacer = ConnectPacer(*CONNECTIONS_PER_IP)
    return [
        KrakenFeed(config, group, context, _name(group, i), pacer) for i, group in enumerate(groups)
    ]


def _name(group: Sequence[str], index: int) -> str:
    return f"{NAME}:{group[0]}" if len(group) == 1 else f"{NAME}:connection{index + 1}"
