"""`marketdata persist`: one SinkWorker per enabled sink, spool housekeeping, HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from marketdata import __version__
from marketdata.cancelling import raise_if_cancelling
from marketdata.config import Config
from marketdata.exchange_config import mask_url
from marketdata.metrics import PersistMetrics
from marketdata.outage import Outage
from marketdata.persist.housekeeping import group_positions, lag_s, trim
from marketdata.persist.sink import Sink
from marketdata.persist.stranded import warn_stranded
from marketdata.persist.worker import SinkState, SinkWorker
from marketdata.redis_cluster_client import RedisFailure, aclose_client, redis_client
from marketdata.spool import spool_partitions

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 1.0
STOP_TIMEOUT_S = 10.0


def sinks_from_config(config: Config) -> list[Sink]:
    sinks: list[Sink] = []
    if config.persist.timescale.enabled:
        from marketdata.persist.timescale import TimescaleSink

        sinks.append(TimescaleSink(config.persist.timescale.dsn))
    if config.persist.mongo.enabled:
        from marketdata.persist.mongo import MongoSink

        sinks.append(MongoSink(config.persist.mongo.url, config.persist.mongo.database))
    return sinks


class PersistService:
    def __init__(
        self, config: Config, sinks: list[Sink], metrics: PersistMetrics | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics or PersistMetrics()
        self.redis = redis_client(
            config.redis_url, config.redis_cluster, socket_timeout=30, socket_connect_timeout=2
        )
        self.partitions = spool_partitions(config.redis_cluster, config.spool.partitions)
        self.streams = [stream for pair in self.partitions for stream in pair.both]
        p = config.persist
        self.housekeeping_outage = Outage(
            "spool housekeeping", log, level=logging.ERROR, remind=True
        )
        self.workers = [
            SinkWorker(
                self.redis,
                sink,
                p.consumer,
                p.batch,
                p.claim_idle_ms,
                self.metrics,
                partitions=self.partitions,
            )  # fmt: skip
            for sink in sinks
        ]
        self.http_port: int | None = None
        self._stop = asyncio.Event()
        self._started = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        log.info("marketdata persist %s: redis %s, sinks %s", __version__,
                 mask_url(self.config.redis_url), [w.group for w in self.workers])  # fmt: skip
        runner = await self._start_http()
        tasks = [asyncio.create_task(w.run(), name=w.group) for w in self.workers]
        keeper = asyncio.create_task(self._housekeeping(), name="housekeeping")
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and (error := task.exception()):
                    raise error
        finally:
            await self._shutdown(tasks, keeper, stopper, runner)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]], *others: Any) -> None:
        log.info("persist: stopping after the batches in hand")
        for worker in self.workers:
            worker.stop()
        _, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S) if tasks else (set(), set())
        for task in late:
            task.cancel()  # their entries stay pending and are redelivered
        keeper, stopper, runner = others
        keeper.cancel()
        stopper.cancel()
        await asyncio.gather(*tasks, keeper, stopper, return_exceptions=True)
        for worker in self.workers:
            await worker.sink.close()
        await runner.cleanup()
        await aclose_client(self.redis)
        log.info("persist: stopped")

    async def _housekeeping(self) -> None:
        # Ends on stop, not only on cancel: a cancel that lands inside a redis-py call can
        # be lost (seen in `make bench`: this task stayed "cancelling" and kept looping).
        if self.config.redis_cluster:  # once: streams an earlier layout left unread
            await warn_stranded(self.redis, self.config.spool.partitions, log)
        while not self._stop.is_set():
            try:
                await self.housekeep_once()
            except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as e:
                raise_if_cancelling()  # Redis unreachable: nothing is trimmed either
                self._housekeeping_failed(e)
            except RedisError as e:  # refused: no permission for XTRIM, say
                raise_if_cancelling()
                self._housekeeping_failed(e)
                self.metrics.housekeeping_errors.inc()
            else:
                self.housekeeping_outage.ok()
                self.metrics.housekeeping_ok.set(1)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    def _housekeeping_failed(self, e: RedisFailure) -> None:
        self.housekeeping_outage.fail(e)
        self.metrics.housekeeping_ok.set(0)

    async def housekeep_once(self) -> None:
        """Refresh pending/lag figures and states, then trim what all groups acknowledged,
        once every sink's group exists (the figures are refreshed even when trimming is
        refused)."""
        worst: dict[str, float] = {}
        now_ms = time.time() * 1000
        positions = {stream: await group_positions(self.redis, stream) for stream in self.streams}
        for stream, stream_positions in positions.items():
            name = stream.split(":", 1)[1]
            for position in stream_positions:
                group, lag = position.name, lag_s(position, now_ms)
                self.metrics.spool_pending.labels(group, name).set(position.pending)
                self.metrics.spool_lag.labels(group, name).set(lag)
                worst[group] = max(worst.get(group, 0.0), lag)
        for worker in self.workers:
            worker.update_lag(worst.get(worker.group, 0.0))
        groups = {worker.group for worker in self.workers}
        for stream, stream_positions in positions.items():
            # A group not there yet (its worker could not create it) has read nothing:
            # trimming by the others alone would drop what it has yet to store.
            if groups <= {position.name for position in stream_positions}:
                await trim(self.redis, stream, stream_positions)

    async def _start_http(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        p = self.config.persist
        await web.TCPSite(runner, p.health_host, p.health_port).start()
        self.http_port = int(runner.addresses[0][1])
        return runner

    async def _health(self, request: web.Request) -> web.Response:
        sinks = {w.group: {"state": w.state.name, "lag_s": round(w.lag_s, 3)} for w in self.workers}
        redis = self._redis_status()
        available = bool(redis["ok"]) and all(
            w.state is not SinkState.UNAVAILABLE for w in self.workers
        )
        # Housekeeping refused (the spool is not trimmed): degraded, yet still persisting.
        healthy = available and not self.housekeeping_outage.active
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "sinks": sinks,
            "redis": redis,
            "housekeeping": self.housekeeping_outage.status(),
        }
        return web.Response(
            body=orjson.dumps(body), status=200 if available else 503,
            content_type="application/json",
        )  # fmt: skip

    def _redis_status(self) -> dict[str, object]:
        """Each worker tells its own Redis trouble; any is the service's: the first worker
        cut off, and which sinks are."""
        failing = [w for w in self.workers if w.redis_outage.active]
        if not failing:
            return {"ok": True}
        return {**failing[0].redis_outage.status(), "sinks": [w.group for w in failing]}

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
