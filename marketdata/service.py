"""Wiring: one publisher, each configured venue's feeds, the HTTP endpoint; supervised until
stopped, then shut down in order: stop reading, flush, close sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from marketdata import __version__, spill
from marketdata.config import Config, ConfigError
from marketdata.exchange_config import mask_url
from marketdata.http import create_app
from marketdata.leases import Leases
from marketdata.leases_feeds import LeasedFeeds
from marketdata.leases_fence import FencedSender
from marketdata.logs import describe
from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.redis_batch import CommandSender, RespConnection
from marketdata.redis_cluster import ClusterSender
from marketdata.rest_budget import RestBudgets
from marketdata.shard import pairs
from marketdata.spool import SpoolCapacity, spool_partitions
from marketdata.spool_checks import check_spool
from marketdata.state import AnyState
from marketdata.venue import Feed, FeedContext
from marketdata.venues.registry import VENUES

log = logging.getLogger(__name__)

SHUTDOWN_FLUSH_TIMEOUT_S = 3.0
LEASES_TASK = "leases"


class StartupError(Exception):
    """The service cannot start (e.g. its HTTP port is taken)."""


class Service:
    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        if config.leases.enabled and not config.rest_budget.shared:
            # Each lease round's batch of feeds has a REST gate of its own: one budget in
            # Redis keeps them (and the instances behind this IP) within the venue's limit.
            budget = dataclasses.replace(config.rest_budget, shared=True)
            config = dataclasses.replace(config, rest_budget=budget)
        self.config = config
        self.metrics = metrics or Metrics()
        self.leases: Leases | None = None  # leases.enabled: the symbols held come and go
        self.spool_streams = spool_partitions(config.redis_cluster, config.spool.partitions)
        try:
            connection: CommandSender = (
                ClusterSender(config.redis_url)
                if config.redis_cluster
                else RespConnection(config.redis_url)
            )
            # Connects on first use: the venues' first REST request.
            self.rest_budgets = (
                RestBudgets.connect(
                    config.redis_url, config.rest_budget.ip_label, config.redis_cluster
                )
                if config.rest_budget.shared
                else None
            )
            if config.leases.enabled:
                self.leases = Leases.connect(
                    config.redis_url, config.redis_cluster, config.leases, pairs(config),
                    self.metrics,
                )  # fmt: skip
                # On a Redis Cluster only the local deadline is checked: see leases_fence.
                counter = self.metrics.lease_fenced_commands
                connection = FencedSender(connection, self.leases.fence, counter,
                                          server_side=not config.redis_cluster)  # fmt: skip
        except ValueError as e:  # e.g. an ssl_ca_certs file that cannot be read
            raise StartupError(str(e)) from e
        self.publisher = Publisher(
            connection,
            book_depth=config.book_depth,
            interval_s=config.publish_interval_ms / 1000,
            market_data_ttl_s=config.market_data_ttl_s,
            metrics=self.metrics,
            spool=SpoolCapacity(config.spool.max_entries, config.spool.books_refuse_fraction)
            if config.spool.enabled
            else None,
            snapshot_interval_s=config.spool.snapshot_interval_ms / 1000,
            spool_partitions=self.spool_streams,
            sharded_pubsub=config.sharded_pubsub,
        )
        self.feeds: list[Feed] = []
        self._by_key: dict[tuple[str, str], tuple[Feed, AnyState]] = {}
        self.http_port: int | None = None
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._http: web.AppRunner | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self._leased: LeasedFeeds | None = None

    def stop(self) -> None:
        self._stop.set()

    def feed_for(self, exchange: str, symbol: str) -> Feed | None:
        found = self._by_key.get((exchange, symbol))
        return None if found is None else found[0]

    def state_for(self, exchange: str, symbol: str) -> AnyState | None:
        found = self._by_key.get((exchange, symbol))
        return None if found is None else found[1]

    @property
    def symbol_count(self) -> int:
        return len(self._by_key)

    def add_feed(self, feed: Feed) -> None:
        self.feeds.append(feed)
        for state in feed.states:
            self._by_key[(state.exchange, state.symbol)] = (feed, state)
            self.publisher.register(state)

    def remove_state(self, state: AnyState) -> None:
        self._by_key.pop((state.exchange, state.symbol), None)
        self.publisher.unregister(state)

    def remove_feed(self, feed: Feed) -> None:
        self.feeds.remove(feed)

    def feed_problems(self, now: float) -> dict[str, list[str]]:
        """`exchange:symbol` -> why it is not ready, for each symbol served here."""
        problems: dict[str, list[str]] = {}
        for feed in self.feeds:
            problems.update(feed.readiness(now, self.config.stale_after_s))
        if self.leases is None:
            return problems
        # A feed keeps running for the symbols it still holds: only those count.
        served = {f"{e}:{s}" for e, s in self._by_key}
        found = {k: v for k, v in problems.items() if k in served}
        lease_problems = self.leases.problems()
        return {"leases": lease_problems, **found} if lease_problems else found

    def update_gauges(self) -> None:
        for feed in self.feeds:
            feed.update_gauges()

    async def run(self) -> None:
        """Run until stop() is called or a task fails; then shut down cleanly."""
        log.info("marketdata %s starting; redis %s", __version__, mask_url(self.config.redis_url))
        if self.config.spool.enabled:
            config = self.config
            await check_spool(config.redis_url, config.spool.max_entries, log,
                              config.redis_cluster, self.spool_streams[0])  # fmt: skip
        # Every WebSocket holds a pooled connection: the default limit of 100 would leave
        # snapshot requests waiting (and timing out) once there are 50+ symbols.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            await self._check_symbols(self._session)
        except BaseException:  # a config error, or a stop (cancel) while checking
            await self._session.close()
            await self._close_rest_budgets()
            await self.publisher.close()
            raise
        tasks: list[asyncio.Task[Any]] = []
        try:
            self._restore_spill()
            self.feeds = self._build_feeds(self._session) if self.leases is None else []
            await self._start_http()
            self._publisher_task = asyncio.create_task(self.publisher.run(), name="publisher")
            tasks.append(self._publisher_task)
            if self.leases is not None:
                tasks += self._run_leases(self._session)
            for feed in self.feeds:
                tasks += [asyncio.create_task(c, name=feed.key) for c in feed.tasks()]
            stopper = asyncio.create_task(self._stop.wait(), name="stop")
            tasks.append(stopper)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and (error := task.exception()):
                    raise error
        finally:
            await self._shutdown(tasks)

    async def _check_symbols(self, session: aiohttp.ClientSession) -> None:
        """Raise ConfigError naming every configured symbol its venue does not list."""
        problems: list[str] = []
        for name, exchange in self.config.exchanges.items():
            problems += await VENUES[name].symbol_problems(session, exchange)
        if problems:
            raise ConfigError(problems)

    def _context(self, session: aiohttp.ClientSession) -> FeedContext:
        config = self.config
        return FeedContext(
            self.publisher, session, config.reconnect, self.metrics, config.stale_after_s,
            self.rest_budgets,
        )  # fmt: skip

    def _run_leases(self, session: aiohttp.ClientSession) -> list[asyncio.Task[Any]]:
        """The lease rounds, and a task that ends when a leased feed's task does."""
        assert self.leases is not None
        leased = self._leased = LeasedFeeds(
            self, VENUES, self.config.exchanges, self._context(session)
        )
        log.info("leases on: instance %s, ttl %gs; REST budget shared in Redis under ip_label "
                 "%s", self.leases.instance_id, self.config.leases.ttl_s,
                 self.config.rest_budget.ip_label)  # fmt: skip
        return [
            asyncio.create_task(self.leases.run(leased), name=LEASES_TASK),
            asyncio.create_task(leased.ended(), name="leased-feeds"),
        ]

    def _build_feeds(self, session: aiohttp.ClientSession) -> list[Feed]:
        config = self.config
        context = self._context(session)
        feeds: list[Feed] = []
        for name, exchange in config.exchanges.items():
            for feed in VENUES[name].build(exchange, context):
                feeds.append(feed)
                for state in feed.states:
                    self._by_key[(state.exchange, state.symbol)] = (feed, state)
                    self.publisher.register(state)
        return feeds

    async def _start_http(self) -> None:
        host, port = self.config.health_host, self.config.health_port
        self._http = web.AppRunner(create_app(self), access_log=None)
        await self._http.setup()
        try:
            await web.TCPSite(self._http, host, port).start()
        except OSError as e:
            raise StartupError(f"cannot listen on {host}:{port} (health_port): {e.strerror}") from e
        address = self._http.addresses[0]
        self.http_port = int(address[1])
        log.info(
            "operations endpoint on http://%s:%d (/health /ready /metrics)", host, self.http_port
        )

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Stop reading, let the flush in flight finish, flush the rest, close sockets."""
        log.info("shutting down: closing feeds, flushing pending messages")
        # The lease rounds go on renewing through the drain: a lease that lapsed meanwhile
        # would fence away what is pending for its symbol.
        renewing = [t for t in tasks if t.get_name() == LEASES_TASK]
        if self.leases is not None:
            self.leases.hold()
        readers = [t for t in tasks if t is not self._publisher_task and t not in renewing]
        for task in readers:
            task.cancel()
        if self._leased is not None:
            await self._leased.aclose()
        for feed in self.feeds:
            await feed.close()
        await asyncio.gather(*readers, return_exceptions=True)
        if await self._drain_publisher():
            log.info("shutdown: all pending messages published (%d trades in all)",
                     self.publisher.trades_published)  # fmt: skip
        else:
            log.error("shutdown: %d trades could not be published", self.publisher.pending_trades)
            self._spill()
        for task in renewing:
            task.cancel()
        await asyncio.gather(*renewing, return_exceptions=True)
        if self.leases is not None:  # after the last flush: free them for the others
            await self.leases.release_all()
        if self._http is not None:
            await self._http.cleanup()
        if self._session is not None:
            await self._session.close()
        await self._close_rest_budgets()
        await self.publisher.close()
        log.info("stopped")

    async def _close_rest_budgets(self) -> None:
        if self.rest_budgets is not None:
            await self.rest_budgets.aclose()
        if self.leases is not None:
            await self.leases.aclose()

    def _spill(self) -> None:
        """Keep on disk what the spool has not received, for the next start to append."""
        entries = self.publisher.pending_spool()
        if not entries or not self.config.spool.enabled:
            return
        path = Path(self.config.spool.spill_path)
        try:
            spill.write(path, entries)
        except OSError as e:
            log.error("shutdown: cannot write %d spool entries to %s: %s", len(entries), path, e)
            return
        log.warning("shutdown: %d spool entries Redis did not take are in %s; the next start "
                    "appends them to the spool", len(entries), path)  # fmt: skip

    def _restore_spill(self) -> None:
        """Queue the entries a previous run spilled; the file goes once they are in Redis."""
        path = Path(self.config.spool.spill_path)
        if not path.exists():
            return
        if not self.config.spool.enabled:
            log.warning("spool disabled: leaving the spill file %s as it is", path)
            return
        try:
            entries = spill.read(path)
        except spill.SpillError as e:
            raise StartupError(f"spill file: {e}") from e

        def restored() -> None:
            path.unlink(missing_ok=True)
            log.info("%d spilled spool entries appended; removed %s", len(entries), path)

        log.info("appending %d spool entries from %s", len(entries), path)
        self.publisher.restore(entries, restored)

    async def _drain_publisher(self) -> bool:
        """Finish the flush in flight, then publish everything pending; False on timeout."""
        self.publisher.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_FLUSH_TIMEOUT_S
        task = self._publisher_task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_FLUSH_TIMEOUT_S)
            if not done:  # the flush in flight hangs: give up on it
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return False
            if not task.cancelled() and (error := task.exception()) is not None:
                # run() re-raises it once shutdown is over; what is pending still goes out.
                log.error("shutdown: the publisher had stopped on %s; publishing what is "
                          "pending", describe(error))  # fmt: skip
        try:
            while loop.time() < deadline:
                remaining = deadline - loop.time()
                if await asyncio.wait_for(self.publisher.flush(everything=True), remaining):
                    return True
                await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
        except TimeoutError:
            pass
        return False
