"""One OKX v5 connection and the instruments it carries (`symbols_per_connection`).

On every new connection each instrument's `books` (400 levels) and `trades` are subscribed
(and `bbo-tbt` with `top_of_book: bbo-tbt`), in requests of up to 20 channels. Every
channel is confirmed by its own reply; one refused (`event: error`, matched to what was
sent: see subscriptions.py) or unanswered within `subscribe_timeout_s` is sent again with
backoff and stays on /ready for its instrument until it succeeds. Subscribe requests are
counted against OKX's 480 an hour per connection and held back rather than pass it.

Books are kept by book_state.OkxBook: chained on seqId where OKX sends it, checked by the
legacy checksum where it is not 0. A break resyncs that instrument alone: with
`snapshot: in_band` its `books` are unsubscribed and subscribed again (after a backoff)
for a fresh snapshot; with `snapshot: rest` updates are buffered and a REST snapshot is
fetched (snapshots.py). The other instruments are untouched.

Keepalive: the text `ping` every `ping_interval_s` (< 30 s; OKX answers `pong`), and at
least twice per `stale_after_s`; the watchdog reconnects after `stale_after_s` without a
frame. Handover: `event: notice` code
64008 says OKX will cut the connection in 30 s for an upgrade: a successor connection is
opened and subscribed, and once all of its books are synced the instruments' states switch
to them and the old connection is closed, so no book is ever reported out of sync. Trades
arriving on both meanwhile are passed on once (by trade id).
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
from marketdata.feed import ConnectionPolicy, link_problems
from marketdata.rest_gate import RestGate
from marketdata.skip_log import SkipLog
from marketdata.state import SymbolState
from marketdata.venue import FeedContext
from marketdata.venues.base import MalformedMessage
from marketdata.venues.okx.book_state import OkxBook, Outcome, SnapshotOutcome
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.link import Link
from marketdata.venues.okx.snapshots import SnapshotFetcher, okx_gate
from marketdata.venues.okx.subscriptions import Subscription
from marketdata.venues.okx.trades import TradeGate
from marketdata.venues.okx.wire import (
    NAME,
    Bbo,
    BookMessage,
    ErrorReply,
    Notice,
    RestBook,
    Trades,
    parse,
)
from marketdata.venues.okx.wire import Reply as SubscribeReply
from marketdata.venues.symbol_metrics import SymbolMetrics
from marketdata.waits import wait_event

log = logging.getLogger(__name__)

NO_AGE_LIMIT_S = 10 * 365 * 86400.0  # OKX announces its cuts (64008) instead
MAX_FRAME_BYTES = 1024 * 1024  # a 400-level snapshot is about 40 kB
UPGRADE_NOTICE = "64008"


class OkxFeed:
    def __init__(
        self,
        config: OkxConfig,
        symbols: Sequence[str],
        context: FeedContext,
        name: str,
        pacer: ConnectPacer | None = None,
        gate: RestGate | None = None,
    ) -> None:
        self.key = name
        self.config = config
        self.context = context
        self.symbols = list(symbols)
        self.pacer = pacer
        # At least twice per stale_after_s, so that the pongs keep a quiet connection from
        # being taken for a dead one.
        self.ping_every = min(config.ping_interval_s, max(0.5, context.stale_after_s / 2))
        self.channels = ["books", "trades"]
        if config.top_of_book == "bbo-tbt":
            self.channels.append("bbo-tbt")
        self.policy = ConnectionPolicy(
            context.stale_after_s, ping_interval_s=context.stale_after_s,
            max_age_s=NO_AGE_LIMIT_S, max_frame_bytes=MAX_FRAME_BYTES,
        )  # fmt: skip
        self._publisher = context.publisher
        self._metrics = metrics = context.metrics
        self._metrics_of = {s: SymbolMetrics(metrics, NAME, s) for s in self.symbols}
        self._trades = TradeGate()
        self._skip_log = SkipLog()
        self._wake = asyncio.Event()
        self._resync_backoff = {s: self.backoff() for s in self.symbols}
        self._links = 0
        self.active = self._new_link()
        self.successor: Link | None = None
        self._states = {s: SymbolState(NAME, s, book) for s, book in self.active.books.items()}
        self._tasks: dict[Link, asyncio.Task[None]] = {}
        self._failed: asyncio.Future[None] | None = None
        self.snapshots: SnapshotFetcher | None = None
        if config.snapshot == "rest":
            self.snapshots = SnapshotFetcher(
                config.rest_url, context.session, gate or okx_gate(), metrics, self.backoff,
                self._apply_snapshot,
            )  # fmt: skip
        self._seen = {
            kind: metrics.messages_processed.labels(kind) for kind in ("depth", "trade", "bbo")
        }
        self._trades_accepted = metrics.trades_processed.labels()
        self._duplicates = metrics.trades_duplicate.labels()

    def backoff(self) -> Backoff:
        reconnect = self.context.reconnect
        return Backoff(reconnect.initial_delay_s, reconnect.max_delay_s)

    def _new_link(self) -> Link:
        self._links += 1
        return Link(self, self.key if self._links == 1 else f"{self.key}#{self._links}")

    # -- the Feed protocol --------------------------------------------------------------

    @property
    def states(self) -> list[SymbolState[OkxBook]]:
        return list(self._states.values())

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._run(), self._maintain()]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        link = self.active
        shared = link_problems(link.connection, link.last_frame_at, now, stale_after_s)
        held = link.subs.refused_until > time.monotonic()
        limit = link.subs.budget.limit
        out: dict[str, list[str]] = {}
        for symbol, book in link.books.items():
            problems = list(shared)
            if link.connection.connected:
                problems += link.subs.problems(symbol)
                if held and not book.synced:
                    problems.append(
                        f"subscribes held back: {limit} sent on this connection in an hour"
                    )
            snapshot = self.snapshots.problem(symbol) if self.snapshots is not None else None
            if snapshot is not None:
                problems.append(snapshot)
            if not book.synced:
                problems.append("book not synced")
            if problems:
                out[f"{NAME}:{symbol}"] = problems
        return out

    def update_gauges(self) -> None:
        for symbol, book in self.active.books.items():
            bids, asks = book.book.level_counts()
            self._metrics_of[symbol].levels(bids, asks)

    async def close(self) -> None:
        if self.snapshots is not None:
            await self.snapshots.close()

    # -- connections --------------------------------------------------------------------

    async def _run(self) -> None:
        """Run the active connection, and a successor during a handover, until cancelled;
        an unexpected error in one of them is raised here."""
        self._failed = asyncio.get_running_loop().create_future()
        self._start(self.active)
        try:
            await self._failed
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, link: Link) -> None:
        task = asyncio.create_task(link.connection.run(), name=f"{link.connection.name}:run")
        self._tasks[link] = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._failed is None or self._failed.done():
            return
        error = task.exception()
        if error is not None:
            self._failed.set_exception(error)

    def _stop(self, link: Link) -> None:
        task = self._tasks.pop(link, None)
        if task is not None:
            task.cancel()

    def on_state(self, link: Link, connected: bool) -> None:
        if link is self.active and self.successor is not None and not connected:
            self._switch("the old connection closed first")  # the successor takes over now
            return
        if link is self.active:
            gauge = self._metrics.ws_connected
            for symbol, book in link.books.items():
                gauge.labels(NAME, symbol, "ws").set(1 if connected else 0)
                if not connected:
                    self._metrics.ws_disconnects.labels(NAME, symbol, "ws").inc()
                was_synced = book.synced
                book.discard()
                if was_synced:
                    self._metrics_of[symbol].synced.set(0)
                    self._publisher.book_changed(self._states[symbol])
            if not connected:
                log.info("%s: books out of sync: the connection was lost", self.key)
        else:
            for book in link.books.values():
                book.discard()
        link.subs.reset()
        link.last_frame_at = None
        link.next_ping = time.monotonic() + self.ping_every
        self._wake.set()

    def _begin_handover(self, link: Link, notice: Notice) -> None:
        if link is not self.active or self.successor is not None:
            return
        log.info("%s: OKX will close the connection for an upgrade (%s %s); opening its "
                 "successor", self.key, notice.code, notice.msg)  # fmt: skip
        self.successor = self._new_link()
        if self._failed is not None:  # running (a test hands frames in without tasks)
            self._start(self.successor)

    def _switch(self, why: str) -> None:
        """The successor becomes the active connection; the old one is closed."""
        old, new = self.active, self.successor
        assert new is not None
        self.active, self.successor = new, None
        self._stop(old)
        gauge = self._metrics.ws_connected
        for symbol, state in self._states.items():
            state.sync = new.books[symbol]
            gauge.labels(NAME, symbol, "ws").set(1 if new.connection.connected else 0)
            self._metrics_of[symbol].synced.set(1 if state.sync.synced else 0)
            self._publisher.book_changed(state)
        log.info("%s: handed over to the new connection (%s)", self.key, why)

    def connect_failed(self, reason: str) -> None:
        for symbol in self.symbols:
            self._metrics.ws_connect_failures.labels(NAME, symbol, "ws", reason).inc()

    def count_error(self, reason: str) -> None:
        self._metrics.messages_error.labels(reason).inc()

    def subscription_failed(self, sub: Subscription, reason: str, cause: str) -> None:
        self._metrics.subscription_failures.labels(NAME, sub.inst_id, sub.channel, reason).inc()
        self._wake.set()

    # -- frames -------------------------------------------------------------------------

    def on_frame(self, link: Link, frame: bytes, recv_ts: float) -> None:
        link.last_frame_at = time.monotonic()
        try:
            events = parse(frame, recv_ts)
        except MalformedMessage as e:
            self._skipped(str(e), e.reason, frame)
            return
        for event in events:
            if isinstance(event, BookMessage):
                self._on_book(link, event)
            elif isinstance(event, Trades):
                self._on_trades(event)
            elif isinstance(event, Bbo):
                self._seen["bbo"].inc()
            elif isinstance(event, SubscribeReply):
                link.subs.on_reply(event)
            elif isinstance(event, ErrorReply):
                log.warning("%s: OKX refused a request: %s %s", link.connection.name,
                            event.code, event.msg)  # fmt: skip
                link.subs.on_error(event)
            elif isinstance(event, Notice):
                if event.code == UPGRADE_NOTICE:
                    self._begin_handover(link, event)
                else:
                    log.info("%s: OKX notice %s %s", self.key, event.code, event.msg)

    def _skipped(self, error: str, reason: str, frame: bytes) -> None:
        self.count_error(reason)
        self._skip_log.warn(log, self.key, error, frame)

    def _on_book(self, link: Link, message: BookMessage) -> None:
        self._seen["depth"].inc()
        inst = message.inst_id
        book = link.books.get(inst)
        if book is None:
            self._skipped(f"books message for unexpected {inst!r}", "unknown_symbol", b"")
            return
        was_synced = book.synced
        outcome = book.on_message(message)
        active = link is self.active
        if outcome is Outcome.APPLIED:
            self._applied(link, book, message.recv_ts, was_synced)
        elif outcome is Outcome.WAITING:
            if self.snapshots is not None:
                self.snapshots.request(book)
            elif active:
                self._metrics_of[inst].dropped.inc()
        elif outcome is Outcome.DROPPED:
            if active:
                self._metrics_of[inst].dropped.inc()
        else:
            self._failed_book(link, book, outcome)

    def _applied(self, link: Link, book: OkxBook, recv_ts: float, was_synced: bool) -> None:
        inst = book.inst_id
        if link is not self.active:
            if link is self.successor and link.synced:
                self._switch("all its books are synced")
            return
        state = self._states[inst]
        state.last_recv_ts = recv_ts
        state.book_unpublished = True
        metrics = self._metrics_of[inst]
        metrics.updates.inc()
        if not was_synced:
            self._resync_backoff[inst].reset()
            metrics.synced.set(1)
            log.info("%s: %s book synced (seqId %s)", self.key, inst, book.last_seq)
        self._publisher.book_changed(state)

    def _failed_book(self, link: Link, book: OkxBook, outcome: Outcome) -> None:
        inst = book.inst_id
        metrics = self._metrics_of[inst]
        if outcome is Outcome.MISMATCH:
            metrics.checksum_mismatches.inc()
        elif outcome is Outcome.GAP:
            metrics.gaps.inc()
        else:
            metrics.too_many_levels.inc()
        metrics.resyncs.inc()
        mode = "fetching a REST snapshot" if self.snapshots is not None else "resubscribing"
        log.warning("%s: %s book out of sync (%s); %s", link.connection.name, inst,
                    book.failure, mode)  # fmt: skip
        if link is self.active:
            metrics.synced.set(0)
            self._publisher.book_changed(self._states[inst])
        if self.snapshots is None:
            retry_at = time.monotonic() + self._resync_backoff[inst].next_delay()
            link.subs.resubscribe(("books", inst), retry_at)
            self._wake.set()

    def _apply_snapshot(self, book: OkxBook, snapshot: RestBook) -> SnapshotOutcome:
        link = next((k for k in (self.active, self.successor) if k and k.books.get(
            book.inst_id) is book), None)  # fmt: skip
        if link is None:
            return SnapshotOutcome.UNWANTED  # its connection was handed over meanwhile
        outcome = book.on_snapshot(snapshot)
        inst = book.inst_id
        if book.dropped and link is self.active:
            self._metrics_of[inst].dropped.inc(book.dropped)
        if outcome is SnapshotOutcome.SYNCED:
            self._applied(link, book, snapshot.recv_ts, False)
        elif outcome is SnapshotOutcome.TOO_OLD:
            log.info("%s: %s %s; fetching again", self.key, inst, book.failure)
        elif outcome is SnapshotOutcome.BROKEN:
            self._metrics_of[inst].gaps.inc()
            self._metrics_of[inst].resyncs.inc()
            log.warning("%s: %s buffered updates do not follow the snapshot (%s); fetching "
                        "again", self.key, inst, book.failure)  # fmt: skip
        return outcome

    def _on_trades(self, batch: Trades) -> None:
        fresh = self._trades.fresh(batch)
        self._seen["trade"].inc(len(batch.trades))
        if len(fresh) < len(batch.trades):
            self._duplicates.inc(len(batch.trades) - len(fresh))
        for gap in self._trades.gaps:
            lost = gap.last - gap.first + 1
            self._metrics.trade_gaps.labels(NAME, gap.symbol).inc()
            self._metrics.trades_lost.labels(NAME, gap.symbol).inc(lost)
            log.warning("%s: %s trade ids %d..%d never came (%d trades)", self.key,
                        gap.symbol, gap.first, gap.last, lost)  # fmt: skip
        for trade in fresh:
            state = self._states.get(trade.symbol)
            if state is None:
                self._skipped(f"trade for unexpected {trade.symbol!r}", "unknown_symbol", b"")
                continue
            state.record_trade(trade)
            self._trades_accepted.inc()
            self._publisher.trade(state, trade)

    # -- subscriptions and pings --------------------------------------------------------

    async def _maintain(self) -> None:
        """Send due subscribes and pings on every connection; wake on anything new."""
        while True:
            now = time.monotonic()
            wake_at = min(now + 1.0, await self._send_due(now))
            self._wake.clear()
            await wait_event(self._wake, max(0.005, wake_at - now))

    async def _send_due(self, now: float) -> float:
        """Send what is due on each connection; when the next thing falls due."""
        next_at = now + 1.0
        for link in (self.active, self.successor):
            if link is None or not link.connection.connected:
                continue
            requests, due_at = link.subs.due(now)
            next_at = min(next_at, due_at)
            for request in requests:
                if not await self._send(link, request.frame()):
                    link.subs.not_sent(request)
            if now >= link.next_ping:
                link.next_ping = now + self.ping_every
                await link.connection.send("ping")
            next_at = min(next_at, link.next_ping)
        return next_at

    async def _send(self, link: Link, message: dict[str, Any]) -> bool:
        return await link.connection.send(orjson.dumps(message).decode())
