"""The feeds of the symbols an instance holds leases for, started and stopped at runtime.

The symbols acquired in one lease round are built through their venue's own Venue.build,
on its config section restricted to them: one batch, grouped per connection as the venue
groups any configured symbols. A symbol lost or released is fenced at once (the
publisher forgets it); its feed closes once none of its symbols is held any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from marketdata.exchange_config import ExchangeConfig
from marketdata.leases_fence import Pair
from marketdata.state import AnyState
from marketdata.venue import Feed, FeedContext, Venue

log = logging.getLogger(__name__)


class FeedHost(Protocol):
    """The service, as far as runtime feeds go."""

    def add_feed(self, feed: Feed) -> None:
        """Its symbols are served (registered with the publisher, in /ready and /books)."""

    def remove_state(self, state: AnyState) -> None:
        """The symbol is no longer served: nothing more of it is published."""

    def remove_feed(self, feed: Feed) -> None: ...


@dataclasses.dataclass(eq=False)
class Running:
    feed: Feed
    tasks: list[asyncio.Task[None]]
    held: set[Pair]


class LeasedFeeds:
    def __init__(
        self,
        host: FeedHost,
        venues: Mapping[str, Venue],
        exchanges: Mapping[str, ExchangeConfig],
        context: FeedContext,
    ) -> None:
        self._host = host
        self._venues = venues
        self._exchanges = exchanges
        self._context = context
        self._by_pair: dict[Pair, tuple[Running, AnyState]] = {}
        self._running: list[Running] = []
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, pairs: Sequence[Pair]) -> None:
        by_exchange: dict[str, list[str]] = {}
        for exchange, symbol in pairs:
            by_exchange.setdefault(exchange, []).append(symbol)
        for exchange, symbols in by_exchange.items():
            section = dataclasses.replace(self._exchanges[exchange], symbols=tuple(symbols))
            for feed in self._venues[exchange].build(section, self._context):
                self._start(feed)

    async def stop(self, pairs: Sequence[Pair]) -> None:
        closing: list[Running] = []
        for pair in pairs:
            found = self._by_pair.pop(pair, None)
            if found is None:
                continue
            running, state = found
            self._host.remove_state(state)
            running.held.discard(pair)
            if not running.held:
                closing.append(running)
        for running in closing:
            await self._close(running)

    async def ended(self) -> None:
        """Returns (or raises) when a feed task ends by itself."""
        await self.failed

    async def aclose(self) -> None:
        """At shutdown: cancel every connection (the service closes the feeds)."""
        tasks = [t for r in self._running for t in r.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, feed: Feed) -> None:
        running = Running(feed, [], set())
        for state in feed.states:
            pair = (state.exchange, state.symbol)
            running.held.add(pair)
            self._by_pair[pair] = (running, state)
        self._host.add_feed(feed)
        for coroutine in feed.tasks():
            task = asyncio.create_task(coroutine, name=feed.key)
            task.add_done_callback(self._ended)
            running.tasks.append(task)
        self._running.append(running)

    async def _close(self, running: Running) -> None:
        self._running.remove(running)
        for task in running.tasks:
            task.remove_done_callback(self._ended)
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)
        await running.feed.close()
        self._host.remove_feed(running.feed)
        for state in running.feed.states:
            if (state.exchange, state.symbol) not in self._by_pair:
                self._forget_gauges(state.exchange, state.symbol)
        log.info("feed %s closed: none of its symbols is held here any more", running.feed.key)

    def _forget_gauges(self, exchange: str, symbol: str) -> None:
        """A symbol no longer served here: its gauges go, rather than keep their last value
        (book_synced 1 for a book nobody keeps)."""
        metrics = self._context.metrics
        for gauge in (metrics.book_synced, metrics.book_levels, metrics.ws_connected):
            for family in gauge.collect():
                for sample in family.samples:
                    labels = sample.labels
                    if labels.get("exchange") == exchange and labels.get("symbol") == symbol:
                        with contextlib.suppress(KeyError):
                            gauge.remove(*labels.values())

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """A feed task that ends by itself ends the service, as a configured feed's does."""
        if self.failed.done() or task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.failed.set_exception(error)
        else:
            self.failed.set_result(None)
