"""Wiring: one publisher, one SymbolFeed per configured symbol, supervised until stopped."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from marketdata import __version__
from marketdata.config import Config, mask_url
from marketdata.exchanges import ADAPTERS, ExchangeAdapter
from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed

log = logging.getLogger(__name__)

SHUTDOWN_FLUSH_TIMEOUT_S = 3.0


class Service:
    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.redis = aioredis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.publisher = Publisher(
            self.redis,
            book_depth=config.book_depth,
            interval_s=config.publish_interval_ms / 1000,
            market_data_ttl_s=config.market_data_ttl_s,
            metrics=self.metrics,
        )
        self.feeds: list[SymbolFeed] = []
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until stop() is called or a task fails; then shut down cleanly."""
        log.info("marketdata %s starting; redis %s", __version__, mask_url(self.config.redis_url))
        self._session = aiohttp.ClientSession()
        self.feeds = self._build_feeds(self._session)
        tasks = [asyncio.create_task(self.publisher.run(), name="publisher")]
        for feed in self.feeds:
            tasks += [asyncio.create_task(c, name=feed.state.symbol) for c in feed.tasks()]
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self._shutdown([stopper, *tasks])

    def _build_feeds(self, session: aiohttp.ClientSession) -> list[SymbolFeed]:
        feeds = []
        for name, exchange in self.config.exchanges.items():
            adapter: ExchangeAdapter = ADAPTERS[name](
                exchange.ws_url, exchange.rest_url, exchange.snapshot_limit
            )
            for symbol in exchange.symbols:
                state = SymbolState(name, symbol, adapter.continuity)
                feeds.append(
                    SymbolFeed(
                        adapter,
                        state,
                        self.publisher,
                        session,
                        self.config.reconnect,
                        self.metrics,
                    )  # fmt: skip
                )
        return feeds

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        log.info("shutting down: closing feeds, flushing pending messages")
        for task in tasks:
            task.cancel()
        for feed in self.feeds:
            await feed.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.publisher.flush(everything=True), SHUTDOWN_FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.error("shutdown: redis flush timed out; %d trades unpublished",
                      self.publisher.pending_trades)  # fmt: skip
        if self._session is not None:
            await self._session.close()
        await self.redis.aclose()
        log.info("stopped")
