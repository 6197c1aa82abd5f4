"""The spool appends Redis has not accepted yet, separate from the channel publishes:
a trade's XADD is retried (after RETRY_DELAY_S) without publishing the trade again, and
a PUBLISH refused does not hold its XADD back. Entries the spool has no room for are
dropped and counted, logged once when that starts and once when it stops."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketdata.metrics import Metrics
from marketdata.pending import RETRY_DELAY_S, put_back, refused_items
from marketdata.redis_batch import Command
from marketdata.spool import PLAIN, SpoolCapacity, SpoolStreams

log = logging.getLogger(__name__)


@dataclass
class SpoolPart:
    """The spool's commands in one batch: XADDs from `start`, then XLEN of both streams,
    the last two commands before `end`."""

    start: int
    trades: deque[Command]
    books: deque[Command]
    taken: bool  # the whole queues (trades and books) are in this batch
    end: int = 0


class SpoolAppends:
    def __init__(
        self,
        capacity: SpoolCapacity,
        metrics: Metrics,
        max_pending: int,
        streams: SpoolStreams = PLAIN,
    ) -> None:
        self.capacity = capacity
        self.streams = streams
        self.trades: deque[Command] = deque()  # XADDs not yet in spool:trades
        self.books: deque[Command] = deque()  # XADDs not yet in spool:books
        self._max_pending = max_pending
        self._appended = metrics.spool_appended
        self._dropped = metrics.spool_dropped
        self._held_until = 0.0  # refused XADDs wait until then
        self._refusing: set[str] = set()  # streams the full spool refuses now
        self._restored: Callable[[], None] | None = None  # see restore()

    def add_book(self, entry: dict[str, str | bytes]) -> None:
        if len(self.books) >= self._max_pending:
            self.books.popleft()
            self._dropped.labels("books").inc()
        self.books.append(xadd(self.streams.books, entry))

    def add_trade(self, entry: dict[str, str]) -> None:
        """Bounded when put back after a refusal or failure."""
        self.trades.append(xadd(self.streams.trades, entry))

    def pending(self) -> list[Command]:
        return [*self.trades, *self.books]

    def restore(self, entries: list[Command], done: Callable[[], None]) -> None:
        """Queue spilled entries; `done` is called once Redis has taken (or the spool
        refused) every one."""
        if not entries:
            done()
            return
        for command in entries:
            (self.trades if command[1] == self.streams.trades else self.books).append(command)
        self._restored = done

    def next_due(self) -> float | None:
        """When pending appends may go (monotonic time), None if there are none."""
        return self._held_until if self.trades or self.books else None

    def take(self, commands: list[Command], now: float, everything: bool) -> SpoolPart | None:
        """Add the XADDs due and the spool has room for (dropping, counted, those it has
        not), then XLEN both streams; None when there is nothing to add."""
        taken = bool(self.trades or self.books) and (everything or now >= self._held_until)
        if taken:
            trades, books = self.trades, self.books
            self.trades, self.books = deque(), deque()
            self._admit(trades, books)
        elif not commands:
            return None  # only XLENs: not worth a round trip
        else:
            trades, books = deque(), deque()
        part = SpoolPart(len(commands), trades, books, taken)
        commands.extend(trades)
        commands.extend(books)
        commands.append(("XLEN", self.streams.trades))
        commands.append(("XLEN", self.streams.books))
        part.end = len(commands)
        return part

    def _admit(self, trades: deque[Command], books: deque[Command]) -> None:
        n_trades, n_books = self.capacity.admit(len(trades), len(books))
        for stream, queue, keep in (("trades", trades, n_trades), ("books", books, n_books)):
            if queue:
                self._note_room(stream, len(queue) - keep)
            if len(queue) > keep:
                self._dropped.labels(stream).inc(len(queue) - keep)
                for _ in range(len(queue) - keep):
                    queue.pop()  # the newest: what came after the spool filled up

    def give_back(self, part: SpoolPart) -> None:
        """A batch with no known outcome: its appends are pending again, its room unused."""
        self.capacity.length -= len(part.trades) + len(part.books)
        self._put_back(part.trades, part.books)

    def settle(
        self, part: SpoolPart, replies: list[Any], refused: frozenset[int] | set[int], now: float
    ) -> None:
        trades, books = part.trades, part.books
        back_trades = refused_items(trades, part.start, refused) if refused else []
        back_books = refused_items(books, part.start + len(trades), refused) if refused else []
        if back_trades or back_books:
            self._held_until = now + RETRY_DELAY_S
            self.capacity.length -= len(back_trades) + len(back_books)
            self._put_back(back_trades, back_books)
        elif self._restored is not None and part.taken:  # the restored ones went first
            done, self._restored = self._restored, None
            done()
        lengths = replies[part.end - 2 : part.end]
        if type(lengths[0]) is int and type(lengths[1]) is int:
            self.capacity.length = lengths[0] + lengths[1]
        self._appended.labels("trades").inc(len(trades) - len(back_trades))
        self._appended.labels("books").inc(len(books) - len(back_books))

    def _put_back(
        self, trades: list[Command] | deque[Command], books: list[Command] | deque[Command]
    ) -> None:
        limit, dropped = self._max_pending, self._dropped
        self.trades = put_back(trades, self.trades, limit, dropped.labels("trades"))
        self.books = put_back(books, self.books, limit, dropped.labels("books"))

    def _note_room(self, stream: str, refused: int) -> None:
        """Log when the spool starts refusing a stream's entries, and when it stops."""
        if refused and stream not in self._refusing:
            self._refusing.add(stream)
            log.warning("spool full (%d of %d entries): refusing %s entries (counted in "
                        "spool_dropped_total) until the persist process catches up",
                        self.capacity.length, self.capacity.max_entries, stream)  # fmt: skip
        elif not refused and stream in self._refusing:
            self._refusing.discard(stream)
            log.warning("spool has room again: appending %s entries", stream)


def xadd(stream: str, fields: dict[str, str] | dict[str, str | bytes]) -> Command:
    return ("XADD", stream, "*", *(x for pair in fields.items() for x in pair))
