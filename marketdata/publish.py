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

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketdata.events import Trade
from marketdata.messages import trade_message
from marketdata.metrics import Metrics
from marketdata.state import SymbolState

log = logging.getLogger(__name__)

RETRY_DELAY_S = 0.5
DEFAULT_MAX_PENDING_TRADES = 100_000


class Publisher:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        book_depth: int,
        interval_s: float,
        market_data_ttl_s: int,
        metrics: Metrics,
        max_pending_trades: int = DEFAULT_MAX_PENDING_TRADES,
    ) -> None:
        self._metrics = metrics
        self._count_trades = metrics.redis_publishes.labels("trade")
        self._count_books = metrics.redis_publishes.labels("orderbook")
        self._count_market_data = metrics.redis_publishes.labels("market_data")
        self._redis = redis
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
            if not await self.flush():
                await asyncio.sleep(RETRY_DELAY_S)

    async def flush(self, everything: bool = False) -> bool:
        """Publish the due books and all pending trades in one pipeline. False on failure."""
        now = time.monotonic()
        due = self._take_due(now, everything)
        trades = list(self._trades)
        if not due and not trades:
            return True
        pipe = self._redis.pipeline(transaction=False)
        for _, state, trade in trades:
            pipe.publish(state.channels.trades, trade_message(trade))
        books = 0
        for state, _ in due:
            book = state.render_orderbook(self._depth)
            if book is not None:
                pipe.publish(state.channels.orderbook, book)
                books += 1
            market_data = state.render_market_data()
            pipe.publish(state.channels.market_data, market_data)
            pipe.set(state.channels.market_data, market_data, ex=self._ttl)
        try:
            await pipe.execute()
        except (RedisError, OSError) as e:
            self._failed(e, due)
            return False
        self._published(due, trades, books, now)
        return True

    def _take_due(self, now: float, everything: bool) -> list[tuple[SymbolState, float | None]]:
        """Remove the symbols due to publish from the dirty set, with their pending_since."""
        last, interval = self._last_publish, self._interval
        due = [s for s in self._dirty if everything or now - last.get(s, 0.0) >= interval]
        taken = []
        for state in due:
            del self._dirty[state]
            taken.append((state, state.pending_since))
            state.pending_since = None
        return taken

    def _failed(self, error: Exception, due: list[tuple[SymbolState, float | None]]) -> None:
        self._metrics.redis_errors.inc()
        if self.healthy:
            log.error("redis publish failed, will retry: %s", error)
        self.healthy = False
        for state, pending_since in due:  # publish them again next time
            self._dirty[state] = None
            if state.pending_since is None:
                state.pending_since = pending_since

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
        wall = time.time()
        latency = self._metrics.publish_latency
        if trades:
            published_seq = trades[-1][0]
            while self._trades and self._trades[0][0] <= published_seq:
                self._trades.popleft()
            for _, _, trade in trades:
                latency.observe(wall - trade.recv_ts)
        for state, pending_since in due:
            self._last_publish[state] = now
            if pending_since is not None:
                latency.observe(wall - pending_since)
        self._count_trades.inc(len(trades))
        self.trades_published += len(trades)
        self._count_books.inc(books)
        self._count_market_data.inc(len(due))

    def _until_next_due(self) -> float | None:
        if self._trades:
            return 0.0
        if not self._dirty:
            return None
        last = self._last_publish
        earliest = min(last.get(s, 0.0) for s in self._dirty) + self._interval
        return max(0.0, earliest - time.monotonic())
