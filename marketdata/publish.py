"""Conflating publisher: books at most once per interval per symbol, every trade, one pipeline.

A symbol that has not published for `interval` publishes at once (leading edge), later
changes wait for the interval to pass (trailing edge), so the latest book always goes out
and the first change after a quiet spell goes out without waiting. Trades are never
conflated: every one is published, in order, and kept for a retry when Redis fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from redis.exceptions import RedisError

from marketdata.cancelling import raise_if_cancelling
from marketdata.events import Trade
from marketdata.messages import trade_message
from marketdata.metrics import Metrics
from marketdata.redis_batch import Command, CommandSender
from marketdata.spool import BOOKS_STREAM, TRADES_STREAM, SpoolCapacity, trade_entry
from marketdata.state import SymbolState

log = logging.getLogger(__name__)

RETRY_DELAY_S = 0.5
DEFAULT_MAX_PENDING_TRADES = 100_000


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
    ) -> None:
        self._spool = spool
        self._snapshot_interval = snapshot_interval_s
        self._next_snapshot = 0.0
        self._states: list[SymbolState] = []
        self._book_samples: list[dict[str, str | bytes]] = []
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
        self._dirty: dict[SymbolState, None] = {}  # insertion-ordered set
        self._last_publish: dict[SymbolState, float] = {}
        self._trades: deque[tuple[int, SymbolState, Trade]] = deque()  # (seq, ...)
        self._trade_seq = 0
        self._max_pending_trades = max_pending_trades
        self._wake = asyncio.Event()
        self._stopping = False
        self.trades_published = 0
        self.healthy = True

    def register(self, state: SymbolState) -> None:
        """A symbol whose book is sampled into spool:books."""
        self._states.append(state)

    def book_changed(self, state: SymbolState) -> None:
        if state not in self._dirty:
            self._dirty[state] = None
            # Wake the loop even when the symbol is not due yet: it must arm the timer for
            # the trailing-edge publish, or a quiet market would never see its last change.
            self._wake.set()

    def trade(self, state: SymbolState, trade: Trade) -> None:
        trades = self._trades
        if len(trades) >= self._max_pending_trades:
            trades.popleft()
            self._metrics.trades_dropped.inc()
        self._trade_seq += 1
        trades.append((self._trade_seq, state, trade))
        self._dirty[state] = None
        self._wake.set()

    @property
    def pending_trades(self) -> int:
        return len(self._trades)

    def stop(self) -> None:
        """Let run() return after the flush in flight (if any) completes."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        await self._sender.close()

    async def run(self) -> None:
        """Flush whenever something is due, until stop() or cancellation."""
        while not self._stopping:
            timeout = self._until_next_due()
            if timeout is None or timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
            self._wake.clear()
            if self._stopping:
                return
            self.sample_books()
            if not await self.flush():
                await asyncio.sleep(RETRY_DELAY_S)

    async def flush(self, everything: bool = False) -> bool:
        """Publish the due books and all pending trades in one pipeline. False on failure."""
        now = time.monotonic()
        due = self._take_due(now, everything)
        trades = list(self._trades)
        samples, self._book_samples = self._book_samples, []
        if not due and not trades and not samples:
            return True
        commands: list[Command] = [
            ("PUBLISH", state.channels.trades, trade_message(trade)) for _, state, trade in trades
        ]
        books = 0
        for state, _ in due:
            book = state.render_orderbook(self._depth)
            if book is not None:
                commands.append(("PUBLISH", state.channels.orderbook, book))
                books += 1
            market_data = state.render_market_data()
            commands.append(("PUBLISH", state.channels.market_data, market_data))
            commands.append(("SET", state.channels.market_data, market_data, "EX", self._ttl))
        spooled = self._spool_into(commands, trades, samples)  # last: XLEN replies end the list
        try:
            replies = await self._sender.send(commands)
        except (RedisError, OSError) as e:
            raise_if_cancelling()
            self._failed(e, due)
            self._book_samples = samples + self._book_samples
            return False
        self._published(due, trades, books, now)
        if self._spool is not None:
            self._spool.length = int(replies[-1]) + int(replies[-2])
            self._count_spooled(spooled, len(trades), len(samples))
        return True

    def _spool_into(
        self,
        commands: list[Command],
        trades: list[tuple[int, SymbolState, Trade]],
        samples: list[dict[str, str | bytes]],
    ) -> tuple[int, int]:
        """Queue the XADDs the spool has room for, then XLEN both streams; (trades, books)."""
        if self._spool is None:
            return 0, 0
        n_trades, n_books = self._spool.admit(len(trades), len(samples))
        for _, _, trade in trades[:n_trades]:
            commands.append(_xadd(TRADES_STREAM, trade_entry(trade)))
        for entry in samples[:n_books]:
            commands.append(_xadd(BOOKS_STREAM, entry))
        commands.append(("XLEN", TRADES_STREAM))
        commands.append(("XLEN", BOOKS_STREAM))
        return n_trades, n_books

    def _count_spooled(self, spooled: tuple[int, int], trades: int, books: int) -> None:
        for stream, appended, offered in (
            ("trades", spooled[0], trades),
            ("books", spooled[1], books),
        ):
            self._metrics.spool_appended.labels(stream).inc(appended)
            if offered > appended:
                self._metrics.spool_dropped.labels(stream).inc(offered - appended)

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
                self._book_samples.append(entry)

    def _take_due(self, now: float, everything: bool) -> list[tuple[SymbolState, float | None]]:
        """Remove the symbols due to publish from the dirty set, each with the receive time
        of the newest diff the book about to be rendered holds (None: unchanged since its
        last publish). Read now: diffs applied while the PUBLISH is in flight are not in it."""
        last, interval = self._last_publish, self._interval
        due = [s for s in self._dirty if everything or now - last.get(s, 0.0) >= interval]
        taken = []
        for state in due:
            del self._dirty[state]
            taken.append((state, state.last_recv_ts if state.book_unpublished else None))
            state.book_unpublished = False
        return taken

    def _failed(self, error: Exception, due: list[tuple[SymbolState, float | None]]) -> None:
        self._metrics.redis_errors.inc()
        if self.healthy:
            log.error("redis publish failed, will retry: %s", error)
        self.healthy = False
        for state, newest in due:  # publish them again next time
            self._dirty[state] = None
            if newest is not None:
                state.book_unpublished = True

    def _published(
        self,
        due: list[tuple[SymbolState, float | None]],
        trades: list[tuple[int, SymbolState, Trade]],
        books: int,
        now: float,
    ) -> None:
        if not self.healthy:
            log.info("redis publish recovered")
        self.healthy = True
        wall, mono = time.time(), time.monotonic()  # the same moment on both clocks
        if trades:
            published_seq = trades[-1][0]
            while self._trades and self._trades[0][0] <= published_seq:
                self._trades.popleft()
            for _, _, trade in trades:
                self._trade_latency.observe(wall - trade.recv_ts)
        for state, newest in due:
            if newest is not None:  # the book changed since its last publish
                self._observe_book(state, newest, wall, mono)
            self._last_publish[state] = now
        self._count_trades.inc(len(trades))
        self.trades_published += len(trades)
        self._count_books.inc(books)
        self._count_market_data.inc(len(due))

    def _observe_book(self, state: SymbolState, newest: float, wall: float, mono: float) -> None:
        """Latency from the moment the book could go: its newest diff received, or the end
        of its conflation interval if that came later (the hold is policy, not delay; it
        shows in book_age_at_publish_seconds, the newest diff's age when published)."""
        ready = newest
        last = self._last_publish.get(state)
        if last is not None:
            ready = max(ready, wall - (mono - last - self._interval))  # interval end, wall time
        self._book_latency.observe(max(0.0, wall - ready))  # a drain may go early
        self._book_age.observe(wall - newest)

    def _until_next_due(self) -> float | None:
        """Seconds until something is due (0: now; None: nothing is scheduled)."""
        if self._trades or self._book_samples:
            return 0.0
        deadlines = []
        if self._dirty:
            last = self._last_publish
            deadlines.append(min(last.get(s, 0.0) for s in self._dirty) + self._interval)
        if self._spool is not None and self._states:
            deadlines.append(self._next_snapshot)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())


def _xadd(stream: str, fields: dict[str, str] | dict[str, str | bytes]) -> Command:
    return ("XADD", stream, "*", *(x for pair in fields.items() for x in pair))
