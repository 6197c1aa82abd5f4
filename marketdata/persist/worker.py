"""One sink's consumer: its own group on both spool streams (on each partition's pair, on
a Redis Cluster), batches, XACK after commit.

OK -> UNAVAILABLE when writes fail (retried with capped backoff, nothing acknowledged);
-> DEGRADED once they succeed again while the group is still far behind; -> OK.
stop() ends run() after the batch in hand, or at once while the sink is failing: its
entries stay pending in the group and are redelivered.

Redis lost (down, restarted, refusing our password) or refusing a command (OOM, NOPERM):
retried with capped backoff, reported through this worker's own `<sink>: redis` Outage (one
worker's trouble is not cleared by another's success); on its return the worker starts over
from its groups and its pending entries. A group that vanished (FLUSHALL, XGROUP DESTROY) is
re-created.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError
from redis.typing import EncodableT, FieldT

from marketdata.backoff import Backoff
from marketdata.cancelling import raise_if_cancelling
from marketdata.config import BatchConfig
from marketdata.logs import describe
from marketdata.metrics import PersistMetrics
from marketdata.outage import Outage
from marketdata.persist.replies import claimed_entries, read_entries
from marketdata.persist.rows import BadEntry, BookRow, Entry, TradeRow, book_row, trade_row
from marketdata.persist.sink import RetryableSinkError, Sink, WriteResult
from marketdata.redis_cluster_client import REDIS_FAILURES, AnyRedis, RedisFailure
from marketdata.spool import BOOKS_STREAM, PLAIN, SpoolStreams
from marketdata.waits import wait_event

log = logging.getLogger(__name__)

DEAD_STREAM = "spool:dead"
IDLE_BLOCK_MS = 1000
DEGRADED_LAG_S = 5.0
# What Redis answers when our group or stream went away (FLUSHALL, XGROUP DESTROY, a
# restart without persistence): no group, or a blocked XREADGROUP whose key was deleted.
VANISHED = ("NOGROUP", "UNBLOCKED")

Batch = dict[str, list[Entry]]  # stream -> entries
T = TypeVar("T")
R = TypeVar("R")


class Stopping(Exception):
    """stop() was called while the sink was failing: give up the batch in hand."""


class SinkState(enum.IntEnum):
    OK = 0
    DEGRADED = 1
    UNAVAILABLE = 2


class SinkWorker:
    def __init__(
        self,
        redis: AnyRedis,
        sink: Sink,
        consumer: str,
        batch: BatchConfig,
        claim_idle_ms: int,
        metrics: PersistMetrics,
        clock: Callable[[], float] = time.monotonic,
        partitions: list[SpoolStreams] | None = None,  # None: spool:trades, spool:books
    ) -> None:
        self.redis = redis
        self.partitions = partitions or [PLAIN]
        self.streams = [stream for p in self.partitions for stream in p.both]
        self._trade_streams = frozenset(p.trades for p in self.partitions)
        self.sink = sink
        self.group = sink.name
        self.consumer = consumer
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.metrics = metrics
        self.state = SinkState.UNAVAILABLE
        self.lag_s = 0.0
        self._clock = clock
        self._stop = asyncio.Event()
        self.sink_outage = Outage(f"{self.group} sink", log, level=logging.ERROR, remind=True)
        self.redis_outage = Outage(f"{self.group}: redis", log, level=logging.ERROR, remind=True)
        self._redis_backoff = Backoff(0.1, 5.0)
        self._redis_refused = False  # the last failure: a command refused, not a lost link
        self._sink_started = False
        self._carry: list[tuple[str, Entry]] = []  # delivered, not yet in a batch
        self._set_state(SinkState.UNAVAILABLE)

    def stop(self) -> None:
        """Finish the batch in hand (unless the sink is failing), then return from run()."""
        self._stop.set()

    async def run(self) -> None:
        while True:
            try:
                await self._serve()
                return
            except Stopping:
                log.info("%s: stopped while failing; its entries stay pending", self.group)
                return
            except REDIS_FAILURES as e:
                raise_if_cancelling()
                if await self._redis_failed(e):
                    return

    async def _redis_failed(self, e: RedisFailure) -> bool:
        """Note the failure and wait before starting over; True if stopped meanwhile."""
        if isinstance(e, ResponseError) and str(e).startswith(VANISHED):
            log.warning("%s: consumer group vanished (%s); re-creating it", self.group, e)
            return False  # at once
        self._redis_refused = isinstance(e, ResponseError)
        if isinstance(e, MovedError | AskError | ClusterDownError):  # a plain client's view
            self.redis_outage.fail(
                f"redis_url names a Redis Cluster: set redis_cluster: true ({describe(e)})"
            )
        else:
            self.redis_outage.fail(e)
        try:
            await self._pause(self._redis_backoff.next_delay())
        except Stopping:
            return True
        return False

    def _redis_ok(self, settled: bool = True) -> None:
        """Redis answered. A lost link is over at once; a refused command (OOM on XADD
        spool:dead, say) only once a whole round went through (settled): other commands
        succeeding say nothing of it."""
        if self._redis_refused and not settled:
            return
        if self.redis_outage.active or self._redis_backoff.attempt:
            self.redis_outage.ok()
            self._redis_backoff.reset()
            self._redis_refused = False

    async def _serve(self) -> None:
        """Groups, sink, pending entries, then batches until stopped. Raises RedisError or
        OSError when Redis fails: run() starts over."""
        # Entries read but not yet batched are pending for this consumer: _recover() reads
        # them again, so keeping them too would write (or dead-letter) them twice.
        self._carry = []
        await self._ensure_groups()
        if not self._sink_started:
            await self._retrying(self.sink.start, "start")
            self._sink_started = True
        recovered = await self._recover()
        self._redis_ok(settled=not recovered)
        if recovered:
            log.info("%s: recovering %d pending entries", self.group, _count(recovered))
            await self._commit(recovered)
        while not self._stop.is_set() or self._carry:
            batch = await self._read_batch()
            self._redis_ok(settled=not batch)
            if batch:
                await self._commit(batch)
                self._redis_ok()

    def update_lag(self, lag_s: float) -> None:
        """Called by housekeeping: DEGRADED while far behind after writes resumed."""
        self.lag_s = lag_s
        if self.state is not SinkState.UNAVAILABLE:
            self._set_state(self._writing_state())

    async def _ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
                log.info("created consumer group %s on %s", self.group, stream)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def _recover(self) -> Batch:
        """Entries this consumer had before a restart, then any left idle by others."""
        batch: Batch = {}
        for stream in self.streams:
            entries: list[Entry] = []
            start: bytes | str = "0"
            while True:
                reply = read_entries(
                    await self.redis.xreadgroup(
                        self.group, self.consumer, {stream: start}, count=self.batch.max_rows
                    )
                )
                page = reply[0][1] if reply else []
                if not page:
                    break
                entries += page
                start = page[-1][0]
            cursor: bytes | str = "0-0"
            while True:
                cursor, claimed = claimed_entries(
                    await self.redis.xautoclaim(
                        stream, self.group, self.consumer, self.claim_idle_ms, cursor,
                        count=self.batch.max_rows,
                    )
                )  # fmt: skip
                entries += claimed
                if cursor in (b"0-0", "0-0"):
                    break
            if entries:
                batch[stream] = entries
        return batch

    async def _read_batch(self) -> Batch:
        """What the spool has for us: up to max_rows entries, waiting at most max_ms for the
        first. No lingering for more: entries that arrive during a write form the next
        batch, so batches are small (low latency) under light load and grow to max_rows
        when the consumer is behind."""
        if not self._carry:
            block = min(self.batch.max_ms, IDLE_BLOCK_MS)
            if len(self.partitions) > 1:  # what is there now, without waiting
                self._carry = await self._read_partitions(None)
            if not self._carry:
                self._carry = await self._read_partitions(block)
        taken, self._carry = self._carry[: self.batch.max_rows], self._carry[self.batch.max_rows :]
        batch: Batch = {}
        for stream, entry in taken:  # COUNT is per stream: the rest waits for the next batch
            batch.setdefault(stream, []).append(entry)
        return batch

    async def _read_partitions(self, block: int | None) -> list[tuple[str, Entry]]:
        """One XREADGROUP per partition (a pair of streams in one slot). Blocking reads of
        several partitions wait together: an idle one holds the others' entries until its
        `block` ms are over, which is why _read_batch first reads without blocking."""
        replies = await asyncio.gather(*(
            self.redis.xreadgroup(
                self.group, self.consumer, dict.fromkeys(p.both, ">"),
                count=self.batch.max_rows, block=block,
            )
            for p in self.partitions
        ))  # fmt: skip
        return [(s.decode(), e) for reply in replies for s, es in read_entries(reply) for e in es]

    async def _commit(self, batch: Batch) -> None:
        started = self._clock()
        trades, books, dead = _decode(batch, self._trade_streams)
        for stream, entry, why in dead:
            await self._bury(stream, entry[0], why, entry[1])
            self.metrics.entries_dead.labels(stream).inc()
        result = await self._retrying(lambda: self.sink.write(trades, books), "write")
        assert isinstance(result, WriteResult)
        if result.rejected:
            await self._bury_rejected(batch, result.rejected)
        for stream, entries in batch.items():
            ids = [entry_id for entry_id, _ in entries]
            await self.redis.xack(stream, self.group, *ids)
        self._observe(result, trades, started)

    async def _bury_rejected(self, batch: Batch, rejected: list[tuple[bytes, str]]) -> None:
        where = {entry[0]: (stream, entry[1]) for stream, es in batch.items() for entry in es}
        for entry_id, why in rejected:
            stream, fields = where.get(entry_id, (BOOKS_STREAM, {}))
            await self._bury(stream, entry_id, why, fields)
            self.metrics.rows_rejected.labels(self.group).inc()
            log.error("%s refused %s %r: %s", self.group, stream, entry_id, why)

    def _observe(self, result: WriteResult, trades: list[TradeRow], started: float) -> None:
        for table, rows in result.written.items():
            self.metrics.rows_written.labels(self.group, table).inc(rows)
        now_ms = time.time() * 1000
        commit_latency = self.metrics.commit_latency.labels(self.group)
        for trade in trades:
            commit_latency.observe(max(0.0, (now_ms - trade.recv_ts_ms) / 1000))
        self.metrics.batch_latency.labels(self.group).observe(self._clock() - started)

    async def _bury(
        self, stream: str, entry_id: bytes, why: str, fields: dict[bytes, bytes]
    ) -> None:
        """Keep what cannot be stored, with the reason, for a person to look at."""
        entry: dict[FieldT, EncodableT] = {b"stream": stream, b"id": entry_id, b"error": why[:500]}
        entry.update({b"f:" + k: v for k, v in fields.items()})
        await self.redis.xadd(DEAD_STREAM, entry)

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                result = await self._attempt(call)
            except RetryableSinkError as e:
                raise_if_cancelling()
                self.metrics.sink_errors.labels(self.group).inc()
                self.sink_outage.fail(f"{what}: {e}")
                self._set_state(SinkState.UNAVAILABLE)
                await self._pause(backoff.next_delay())
                continue
            self.sink_outage.ok()
            if self.state is SinkState.UNAVAILABLE:
                self._set_state(self._writing_state())
            return result

    async def _attempt(self, call: Callable[[], Awaitable[T]]) -> T:
        """The call; while the sink is failing, given up as soon as stop() is called."""
        if self.state is not SinkState.UNAVAILABLE:
            return await call()  # the batch in hand is finished, even when stopping
        if self._stop.is_set():
            raise Stopping
        attempt = asyncio.ensure_future(call())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([attempt, stopped], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            stopped.cancel()
        if not attempt.done():
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            raise Stopping
        return attempt.result()

    async def _pause(self, delay_s: float) -> None:
        """Sleep before a retry; raises Stopping as soon as stop() is called."""
        if await wait_event(self._stop, delay_s):
            raise Stopping

    def _writing_state(self) -> SinkState:
        """The state of a sink that writes: DEGRADED while it is far behind, else OK."""
        return SinkState.DEGRADED if self.lag_s > DEGRADED_LAG_S else SinkState.OK

    def _set_state(self, state: SinkState) -> None:
        self.state = state
        self.metrics.sink_state.labels(self.group).set(int(state))


def _decode(
    batch: Batch, trade_streams: frozenset[str]
) -> tuple[list[TradeRow], list[BookRow], list[tuple[str, Entry, str]]]:
    trades: list[TradeRow] = []
    books: list[BookRow] = []
    dead: list[tuple[str, Entry, str]] = []
    for stream, entries in batch.items():
        if stream in trade_streams:
            _decode_into(trades, trade_row, stream, entries, dead)
        else:
            _decode_into(books, book_row, stream, entries, dead)
    return trades, books, dead


def _decode_into(
    out: list[R],
    decode: Callable[[Entry], R],
    stream: str,
    entries: list[Entry],
    dead: list[tuple[str, Entry, str]],
) -> None:
    for entry in entries:
        try:
            out.append(decode(entry))
        except BadEntry as e:
            dead.append((stream, entry, str(e)))


def _count(batch: Batch) -> int:
    return sum(len(entries) for entries in batch.values())
