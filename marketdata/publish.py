"""Conflating publisher: books at most once per interval per symbol, every trade, one pipeline.

A symbol that has not published for `interval` publishes at once (leading edge), later
changes wait for the interval to pass (trailing edge), so the latest book always goes out
and the first change after a quiet spell goes out without waiting. Trades are never
conflated: every one is published, in order, and kept for a retry when Redis fails.

A flush sends the due books BOOKS_PER_BATCH at a time, each batch rendered just before it
goes, so the first books are not held while the last ones render; when more are due than
a batch holds, the next renders while one is in flight (up to MAX_IN_FLIGHT, pipelined on
the one connection). Batches in flight together hold different symbols, and at most one
of them holds trades or spool appends, so neither a symbol's books nor the trades can
overtake each other whatever order they complete in. A symbol's interval counts from its
own batch, so symbols that fell due together spread out: each batch falls due again one
interval after it was built, instead of all of them waiting for one big render. The loop
sleeps on a timer armed for the next due time; a change due before that wakes it at once.

Outcomes are per command. A trade has two: its PUBLISH and its spool XADD, each pending
until Redis accepts it; what Redis accepted is never sent again, what it refused (OOM,
NOPERM, READONLY...) is counted and retried after RETRY_DELAY_S. Readiness comes from the
same connection: the last batch's failure, the commands being refused, or (when there
has been nothing to send) a PING every IDLE_PING_S.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from marketdata.cancelling import raise_if_cancelling
from marketdata.events import Trade
from marketdata.messages import trade_message
from marketdata.metrics import Metrics
from marketdata.pending import RETRY_DELAY_S, put_back, refused_items
from marketdata.redis_batch import Command, CommandSender, ReplyError
from marketdata.refusals import Refusals
from marketdata.spool import PLAIN, SpoolCapacity, SpoolStreams, trade_entry
from marketdata.spool_partitions import SpoolPartitions, SpoolTake
from marketdata.state import AnyState

log = logging.getLogger(__name__)

BOOKS_PER_BATCH = 10  # books rendered per round trip (3 commands each)
MAX_IN_FLIGHT = 2  # batches of one flush on the wire at once
IDLE_PING_S = 1.0  # with nothing to send, PING this often so readiness stays true
SILENT_AFTER_S = 3.0  # no reply for this long (a batch stuck in flight): not ready
DEFAULT_MAX_PENDING_TRADES = 100_000
NOTHING: frozenset[int] = frozenset()

PendingTrade = tuple[AnyState, Trade]


@dataclass
class Batch:
    """One flush: its commands and what each stands for, to map the replies back. It
    takes whole pending queues (what arrives meanwhile queues anew); what Redis did not
    accept is put back in front."""

    commands: list[Command]
    due: list[tuple[AnyState, float | None]] = field(default_factory=list)
    trades: deque[PendingTrade] = field(default_factory=deque)
    book_starts: list[int] = field(default_factory=list)  # first command of each due book
    spool: SpoolTake | None = None


@dataclass
class InFlight:
    batch: Batch
    built: float  # monotonic time it was built (its books' publish time)
    replies: asyncio.Future[list[Any]]

    @property
    def holds_queues(self) -> bool:
        return bool(self.batch.trades) or self.batch.spool is not None


class Publisher:
    def __init__(
        self,
        sender: CommandSender,
        *,
        book_depth: int,
        interval_s: float,
        market_data_ttl_s: int,
        metrics: Metrics,
        max_pending_trades: int = DEFAULT_MAX_PENDING_TRADES,
        spool: SpoolCapacity | None = None,
        snapshot_interval_s: float = 1.0,
        spool_partitions: list[SpoolStreams] | None = None,  # None: spool:trades, spool:books
        sharded_pubsub: bool = False,  # SPUBLISH instead of PUBLISH
    ) -> None:
        self._spool = (
            None
            if spool is None
            else SpoolPartitions(spool, metrics, max_pending_trades, spool_partitions or [PLAIN])
        )
        self._publish = "SPUBLISH" if sharded_pubsub else "PUBLISH"
        self._snapshot_interval = snapshot_interval_s
        self._next_snapshot = 0.0
        self._states: list[AnyState] = []
        self._metrics = metrics
        self._count_trades = metrics.redis_publishes.labels("trade")
        self._count_books = metrics.redis_publishes.labels("orderbook")
        self._count_market_data = metrics.redis_publishes.labels("market_data")
        self._trade_latency = metrics.publish_latency.labels("trade")
        self._book_latency = metrics.publish_latency.labels("orderbook")
        self._book_age = metrics.book_age_at_publish
        self._sender = sender  # one batch of commands per flush, one round trip
        self._depth = book_depth
        self._interval = interval_s
        self._ttl = market_data_ttl_s
        self._dirty: dict[AnyState, None] = {}  # insertion-ordered set
        self._last_publish: dict[AnyState, float] = {}
        self._trades: deque[PendingTrade] = deque()  # not yet PUBLISHed
        self._max_pending_trades = max_pending_trades
        self._trades_held_until = 0.0  # refused PUBLISHes wait until then
        self._refusals = Refusals(metrics.redis_command_refusals)
        self._batch_error: str | None = None  # why the last batch failed as a whole
        self._last_reply = float("-inf")  # monotonic time of Redis's last reply
        self._wake = asyncio.Event()
        self._timer_at = float("-inf")  # monotonic time the sleeping loop wakes (-inf: awake)
        self._stopping = False
        self._gone: weakref.WeakSet[AnyState] = weakref.WeakSet()  # see unregister()
        self._any_gone = False  # a plain flag: the hot path pays one attribute read
        self.trades_published = 0

    def register(self, state: AnyState) -> None:
        """A symbol whose book is sampled into spool:books."""
        self._states.append(state)

    def unregister(self, state: AnyState) -> None:
        """A symbol no longer published here (its lease went to another instance): nothing
        pending for it is sent, and its feed's later changes and trades are ignored."""
        self._gone.add(state)
        self._any_gone = True
        if state in self._states:
            self._states.remove(state)
        self._dirty.pop(state, None)
        self._last_publish.pop(state, None)
        self._trades = deque(t for t in self._trades if t[0] is not state)

    def book_changed(self, state: AnyState) -> None:
        if self._any_gone and state in self._gone:
            return
        if state not in self._dirty:
            self._dirty[state] = None
            # Wake the sleeping loop when this symbol is due before its timer: at once when
            # its interval has passed, or to re-arm the timer for the trailing-edge publish
            # (or a quiet market would never see its last change). An awake loop looks at
            # the dirty set before it sleeps again.
            if self._last_publish.get(state, 0.0) + self._interval < self._timer_at:
                self._wake.set()

    def trade(self, state: AnyState, trade: Trade) -> None:
        if self._any_gone and state in self._gone:
            return
        trades = self._trades
        if len(trades) >= self._max_pending_trades:
            trades.popleft()
            self._metrics.trades_dropped.inc()
        trades.append((state, trade))
        if self._spool is not None:  # bounded when put back after a refusal or failure
            self._spool.add_trade(trade_entry(trade))
        self._dirty[state] = None
        self._wake.set()

    @property
    def pending_trades(self) -> int:
        return len(self._trades)

    def pending_spool(self) -> list[Command]:
        """The spool appends Redis has not accepted yet (for the spill file)."""
        return [] if self._spool is None else self._spool.pending()

    def restore(self, entries: list[Command], done: Callable[[], None]) -> None:
        """Append spilled entries to the spool (only there: they are not published again);
        `done` is called once Redis has accepted (or the spool refused) every one."""
        if self._spool is None:
            raise ValueError("no spool to restore entries to")
        self._spool.restore(entries, done)
        self._wake.set()

    def redis_problems(self) -> list[str]:
        """Why what is published does not reach Redis now (empty: it does)."""
        if self._batch_error is not None:
            return [f"publishing fails: {self._batch_error}"]
        silent = time.monotonic() - self._last_reply
        if silent == float("inf"):
            return ["no reply from Redis yet"]
        if silent > SILENT_AFTER_S:
            return [f"no reply from Redis for {silent:.1f}s"]
        return self._refusals.problems()

    def stop(self) -> None:
        """Let run() return after the flush in flight (if any) completes."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        await self._sender.close()

    async def run(self) -> None:
        """Flush whenever something is due, until stop() or cancellation."""
        while not self._stopping:
            await self._sleep_until_due()
            if self._stopping:
                return
            self.sample_books()
            if not await self.flush() and self._batch_error is not None:
                await asyncio.sleep(RETRY_DELAY_S)

    async def _sleep_until_due(self) -> None:
        """Until the next due time or a wake(): a timer that sets the event, so the loop
        resumes one step after it fires (wait_for would add a task and its cancellation)."""
        delay = self._until_next_due()
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        self._wake.clear()
        timer = loop.call_at(loop.time() + delay, self._wake.set)
        self._timer_at = time.monotonic() + delay
        try:
            await self._wake.wait()
        finally:
            timer.cancel()
            self._timer_at = float("-inf")

    async def flush(self, everything: bool = False) -> bool:
        """Publish the due books, BOOKS_PER_BATCH per batch, each rendered as it goes (the
        next while one is in flight, when it has books due), with the pending trades and
        spool appends. True when Redis accepted every command (or there was nothing to
        send). Each batch takes what is pending when it is built; `everything` (a drain)
        sends the held trades and appends in the first batch only and every dirty book
        once, so what Redis refuses waits for the next flush."""
        sent: set[AnyState] = set()  # a refused book is dirty again: not in this flush
        flight: deque[InFlight] = deque()
        accepted, queues, more = True, everything, True
        try:
            while more or flight:
                if more and len(flight) < MAX_IN_FLIGHT:
                    now = time.monotonic()
                    books_only = any(f.holds_queues for f in flight)
                    batch = self._build(now, everything, queues, sent, books_only)
                    queues = False
                    more = batch is not None and len(batch.due) == BOOKS_PER_BATCH
                    more = more and (everything or not self._stopping)
                    more = more and self._any_due(now, everything, sent)
                    if batch is None:
                        continue
                    if not more and not flight:  # the only batch: no task needed
                        outcome = await self._complete(
                            batch, now, self._sender.send(batch.commands)
                        )
                        return accepted and outcome is True
                    replies = asyncio.ensure_future(self._sender.send(batch.commands))
                    flight.append(InFlight(batch, now, replies))
                    await asyncio.sleep(0)  # it goes on the wire before the next one renders
                    continue
                f = flight.popleft()
                outcome = await self._complete(f.batch, f.built, f.replies)
                more = more and outcome is not None  # failed as a whole: the rest waits
                accepted = accepted and outcome is True
        except BaseException:
            while flight:
                self._abandon(flight.popleft())
            raise
        return accepted

    async def _complete(
        self, batch: Batch, now: float, replies: Awaitable[list[Any]]
    ) -> bool | None:
        """Await one batch's replies and settle it: True when every command was accepted,
        False when some were refused, None when the batch failed as a whole."""
        try:
            result = await replies
        except (RedisError, OSError) as e:
            raise_if_cancelling()
            self._failed(e, batch)
            return None
        except BaseException:  # cancelled: nothing left the pending queues
            self._give_back(batch)
            raise
        return self._settle(batch, now, result)

    def _abandon(self, f: InFlight) -> None:
        """A batch in flight when the flush was cancelled: settled if its replies are in
        (what Redis accepted is never sent again), pending again otherwise."""
        if f.replies.done() and not f.replies.cancelled() and f.replies.exception() is None:
            self._settle(f.batch, f.built, f.replies.result())
            return
        f.replies.cancel()
        self._give_back(f.batch)

    def _settle(self, batch: Batch, now: float, replies: list[Any]) -> bool:
        """Map the replies back to what they stand for: True when all were accepted."""
        self._replied()
        if ReplyError in map(type, replies):
            refused: frozenset[int] | set[int] = self._refusals.record(batch.commands, replies)
        else:
            refused = NOTHING
            if self._refusals.active:
                self._refusals.accepted(batch.commands)
        self._settle_trades(batch, refused, now)
        self._settle_books(batch, refused, now)
        if batch.spool is not None and self._spool is not None:
            self._spool.settle(batch.spool, replies, refused, now)
        return not refused

    def _build(
        self, now: float, everything: bool, queues: bool, sent: set[AnyState], books_only: bool
    ) -> Batch | None:
        """The next batch: up to BOOKS_PER_BATCH books not in `sent` that are due (or
        dirty at all, with `everything`), and unless `books_only` the pending trades and
        spool appends (held ones too, with `queues`); None when there is nothing to send."""
        due = self._take_due(now, everything, sent)
        trades: deque[PendingTrade] = deque()
        if self._trades and not books_only and (queues or now >= self._trades_held_until):
            trades, self._trades = self._trades, trades
        batch = Batch(
            [(self._publish, state.channels.trades, trade_message(t)) for state, t in trades],
            due, trades,
        )  # fmt: skip
        commands = batch.commands
        for state, _ in due:
            batch.book_starts.append(len(commands))
            book = state.render_orderbook(self._depth)
            if book is not None:
                commands.append((self._publish, state.channels.orderbook, book))
            market_data = state.render_market_data()
            commands.append((self._publish, state.channels.market_data, market_data))
            commands.append(("SET", state.channels.market_data, market_data, "EX", self._ttl))
        batch.book_starts.append(len(commands))
        if books_only:
            return batch if commands else None
        if self._spool is not None:  # last: XLEN replies end the list
            batch.spool = self._spool.take(commands, now, queues)
        if commands:
            return batch
        if now - self._last_reply >= IDLE_PING_S:
            commands.append(("PING",))  # nothing to send for a while: is Redis still there?
            return batch
        return None

    def sample_books(self) -> None:
        """Every snapshot interval, take a top-N snapshot of each synced book for the spool."""
        if self._spool is None or not self._states:
            return
        now = time.monotonic()
        if now < self._next_snapshot:
            return
        self._next_snapshot = now + self._snapshot_interval
        time_ms = int(time.time() * 1000)
        for state in self._states:
            entry = state.spool_book_entry(self._depth, time_ms)
            if entry is not None:
                self._spool.add_book(entry)

    def _any_due(self, now: float, everything: bool, sent: set[AnyState]) -> bool:
        """Whether a next batch would have books (what _take_due would take)."""
        last, interval = self._last_publish, self._interval
        return any(
            s not in sent and (everything or now - last.get(s, 0.0) >= interval)
            for s in self._dirty
        )

    def _take_due(
        self, now: float, everything: bool, sent: set[AnyState]
    ) -> list[tuple[AnyState, float | None]]:
        """Remove up to BOOKS_PER_BATCH symbols due to publish from the dirty set, each with
        the receive time of the newest diff the book about to be rendered holds (None:
        unchanged since its last publish). Read now: diffs applied while the PUBLISH is in
        flight are not in it. They are added to `sent`."""
        last, interval = self._last_publish, self._interval
        due = []
        for state in self._dirty:
            if state not in sent and (everything or now - last.get(state, 0.0) >= interval):
                due.append(state)
                if len(due) == BOOKS_PER_BATCH:
                    break
        taken = []
        for state in due:
            del self._dirty[state]
            sent.add(state)
            taken.append((state, state.last_recv_ts if state.book_unpublished else None))
            state.book_unpublished = False
        return taken

    def _failed(self, error: Exception, batch: Batch) -> None:
        self._metrics.redis_errors.inc()
        cause = str(error) or type(error).__name__  # a timeout has no text of its own
        if self._batch_error is None:
            log.error("redis publish failed, will retry: %s", cause)
        self._batch_error = cause
        self._give_back(batch)

    def _give_back(self, batch: Batch) -> None:
        """A batch with no known outcome: all of it is pending again, its spool room unused."""
        for state, newest in batch.due:
            self._requeue(state, newest)
        trades = batch.trades
        if self._any_gone:  # a symbol unregistered while its batch was out stays gone
            trades = deque(t for t in trades if t[0] not in self._gone)
        self._trades = put_back(
            trades, self._trades, self._max_pending_trades, self._metrics.trades_dropped
        )
        if batch.spool is not None and self._spool is not None:
            self._spool.give_back(batch.spool)

    def _requeue(self, state: AnyState, newest: float | None) -> None:
        if self._any_gone and state in self._gone:
            return
        self._dirty[state] = None
        if newest is not None:
            state.book_unpublished = True

    def _replied(self) -> None:
        self._last_reply = time.monotonic()
        if self._batch_error is not None:
            log.info("redis publish recovered")
        self._batch_error = None

    def _settle_trades(self, batch: Batch, refused: frozenset[int] | set[int], now: float) -> None:
        trades = batch.trades
        if not trades:
            return
        if refused:
            back = refused_items(trades, 0, refused)
            if self._any_gone:
                back = [t for t in back if t[0] not in self._gone]
            if back:
                self._trades_held_until = now + RETRY_DELAY_S
                limit, drops = self._max_pending_trades, self._metrics.trades_dropped
                self._trades = put_back(back, self._trades, limit, drops)
                trades = deque(t for i, t in enumerate(trades) if i not in refused)
        wall = time.time()
        for _, trade in trades:
            self._trade_latency.observe(wall - trade.recv_ts)
        self._count_trades.inc(len(trades))
        self.trades_published += len(trades)

    def _settle_books(self, batch: Batch, refused: frozenset[int] | set[int], now: float) -> None:
        wall, mono = time.time(), time.monotonic()  # the same moment on both clocks
        starts, commands = batch.book_starts, batch.commands
        books = market_data = 0
        for k, (state, newest) in enumerate(batch.due):
            first, end = starts[k], starts[k + 1]
            if refused and any(
                i in refused and commands[i][0] == self._publish for i in range(first, end)
            ):
                self._requeue(state, newest)  # again after an interval, like a publish
            else:  # a refused SET alone is not retried: the next change sets the key
                if newest is not None:  # the book changed since its last publish
                    self._observe_book(state, newest, wall, mono)
                books += end - first == 3  # PUBLISH orderbook, PUBLISH + SET market_data
                market_data += 1
            self._last_publish[state] = now
        self._count_books.inc(books)
        self._count_market_data.inc(market_data)

    def _observe_book(self, state: AnyState, newest: float, wall: float, mono: float) -> None:
        """Latency from the moment the book could go: its newest diff received, or the end
        of its conflation interval if that came later (the hold is policy, not delay; it
        shows in book_age_at_publish_seconds, the newest diff's age when published)."""
        ready = newest
        last = self._last_publish.get(state)
        if last is not None:
            ready = max(ready, wall - (mono - last - self._interval))  # interval end, wall time
        self._book_latency.observe(max(0.0, wall - ready))  # a drain may go early
        self._book_age.observe(wall - newest)

    def _until_next_due(self) -> float:
        """Seconds until something is due (0: now)."""
        deadlines = [self._last_reply + IDLE_PING_S]
        if self._trades:
            deadlines.append(self._trades_held_until)
        spool_due = None if self._spool is None else self._spool.next_due()
        if spool_due is not None:
            deadlines.append(spool_due)
        if self._dirty:
            last = self._last_publish
            deadlines.append(min(last.get(s, 0.0) for s in self._dirty) + self._interval)
        if self._spool is not None and self._states:
            deadlines.append(self._next_snapshot)
        return max(0.0, min(deadlines) - time.monotonic())
