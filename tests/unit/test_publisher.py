"""Publisher scheduling, on fakeredis (pure unit: no server needed for timing logic)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import fakeredis
import orjson

from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, Trade
from marketdata.metrics import Metrics
from marketdata.publish import BOOKS_PER_BATCH, MAX_IN_FLIGHT, Publisher
from marketdata.redis_batch import Command, PipelineSender, ReplyError
from marketdata.spool import TRADES_STREAM, SpoolCapacity
from marketdata.state import SymbolState
from marketdata.sync import BookSync

TRADE_FIELDS = ("binance_futures", "BTCUSDT", 1.5, 2.0, "1.5", "2", "buy", 1, 0.0)


def synced_state(symbol: str = "BTCUSDT") -> SymbolState:
    state = SymbolState("binance_futures", symbol, BookSync(FuturesChain()))
    bids = [(1.0, 1.0, "1.0", "1")]
    asks = [(2.0, 1.0, "2.0", "1")]
    state.sync.on_snapshot(BookSnapshot("binance_futures", symbol, 10, bids, asks, 0, 0.0))
    return state


def publisher_on(redis: fakeredis.FakeAsyncRedis, interval_s: float, metrics: Metrics) -> Publisher:
    return Publisher(
        PipelineSender(redis), book_depth=5, interval_s=interval_s, market_data_ttl_s=60,
        metrics=metrics,
    )  # fmt: skip


async def test_a_change_inside_the_interval_is_published_when_it_ends() -> None:
    redis = fakeredis.FakeAsyncRedis()
    pubsub = redis.pubsub()
    await pubsub.subscribe("orderbook:BTCUSDT")
    await pubsub.get_message(timeout=0.1)  # the subscribe confirmation
    publisher = publisher_on(redis, 0.2, Metrics())
    state = synced_state()
    task = asyncio.create_task(publisher.run())
    try:
        publisher.book_changed(state)  # leading edge: out at once
        first = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert first is not None
        await asyncio.sleep(0.05)  # the loop is now idle, nothing dirty
        state.sync.book.apply([(1.5, 3.0, "1.5", "3")], [])
        publisher.book_changed(state)  # inside the interval: trailing edge, no later event
        second = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert second is not None
        assert orjson.loads(second["data"])["bids"][0] == ["1.5", "3"]
    finally:
        publisher.stop()
        await task
        await pubsub.aclose()
        await redis.aclose()


async def test_trades_are_kept_and_retried_when_redis_fails() -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    publisher = publisher_on(redis, 0.1, Metrics())
    state = synced_state()
    trade = Trade("binance_futures", "BTCUSDT", 7, 1.5, 2.0, "1.5", "2", "buy", 1, 0.0)
    publisher.trade(state, trade)
    server.connected = False
    assert not await publisher.flush()
    assert publisher.pending_trades == 1
    server.connected = True
    assert await publisher.flush()
    assert publisher.pending_trades == 0
    assert publisher.trades_published == 1
    await redis.aclose()


async def test_book_latency_counts_from_the_interval_end_and_age_includes_the_hold() -> None:
    redis = fakeredis.FakeAsyncRedis()
    metrics = Metrics()
    publisher = publisher_on(redis, 0.2, metrics)
    state = synced_state()

    def changed() -> None:  # what SymbolFeed does for an applied diff
        state.last_recv_ts = time.time()
        state.book_unpublished = True
        publisher.book_changed(state)

    task = asyncio.create_task(publisher.run())
    try:
        changed()  # leading edge: out at once
        await asyncio.sleep(0.05)
        changed()  # held until the interval ends, about 0.15 s later
        await asyncio.sleep(0.4)
    finally:
        publisher.stop()
        await task
        await redis.aclose()
    sample = metrics.registry.get_sample_value
    assert sample("publish_latency_seconds_count", {"kind": "orderbook"}) == 2
    assert sample("publish_latency_seconds_sum", {"kind": "orderbook"}) < 0.1
    assert sample("book_age_at_publish_seconds_count") == 2
    assert sample("book_age_at_publish_seconds_sum") >= 0.14


async def test_a_diff_applied_while_the_publish_is_in_flight_is_not_counted() -> None:
    redis = fakeredis.FakeAsyncRedis()
    metrics = Metrics()
    publisher = publisher_on(redis, 0.2, metrics)
    state = synced_state()
    state.last_recv_ts, state.book_unpublished = time.time(), True
    publisher.book_changed(state)
    flush = asyncio.create_task(publisher.flush())
    await asyncio.sleep(0)  # the flush has rendered the book and awaits Redis
    state.last_recv_ts = time.time() + 60  # a later diff: not in the published book
    assert await flush
    assert metrics.registry.get_sample_value("book_age_at_publish_seconds_sum") >= 0
    await redis.aclose()


async def test_readiness_follows_the_publishers_own_connection_when_idle() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    redis = fakeredis.FakeAsyncRedis(server=server)
    publisher = publisher_on(redis, 0.1, Metrics())
    assert publisher.redis_problems() == ["no reply from Redis yet"]
    task = asyncio.create_task(publisher.run())  # nothing to publish: it PINGs on its own
    try:
        assert await soon(lambda: publisher.redis_problems()[0].startswith("publishing fails"))
        server.connected = True
        assert await soon(lambda: not publisher.redis_problems())
    finally:
        publisher.stop()
        await task
        await redis.aclose()


async def soon(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    for _ in iter(lambda: time.monotonic() < deadline, False):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def test_a_full_spool_is_logged_when_it_starts_and_stops_refusing(caplog) -> None:
    redis = fakeredis.FakeAsyncRedis()
    publisher = Publisher(
        PipelineSender(redis), book_depth=5, interval_s=0.1, market_data_ttl_s=60,
        metrics=Metrics(), spool=SpoolCapacity(max_entries=10),
    )  # fmt: skip
    state = synced_state()
    trade_id = 0

    async def trades(n: int) -> None:
        nonlocal trade_id
        for _ in range(n):
            trade_id += 1
            publisher.trade(state, Trade(*TRADE_FIELDS[:2], str(trade_id), *TRADE_FIELDS[2:]))
        assert await publisher.flush()

    for _ in range(5):  # 8 fit; then every batch is refused
        await trades(4)
    await redis.delete(TRADES_STREAM)  # the persist process caught up and trimmed
    await trades(4)
    await trades(4)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("spool full (10 of 10 entries): refusing trades")
    assert warnings[1] == "spool has room again: appending trades entries"
    await redis.aclose()


class RefusingXadd:
    """A Redis whose user may not XADD: every other command is accepted."""

    def __init__(self) -> None:
        self.batches: list[list[Command]] = []

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        self.batches.append(list(commands))
        return [ReplyError("NOPERM no XADD for you") if c[0] == "XADD" else 0 for c in commands]

    async def close(self) -> None:
        pass


async def test_a_refused_xadd_is_retried_alone_within_the_pending_limit() -> None:
    redis, metrics = RefusingXadd(), Metrics()
    publisher = Publisher(
        redis, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=metrics,
        max_pending_trades=5, spool=SpoolCapacity(max_entries=1000),
    )  # fmt: skip
    state = synced_state()

    def trades(ids: range) -> None:
        for trade_id in ids:
            publisher.trade(state, Trade(*TRADE_FIELDS[:2], str(trade_id), *TRADE_FIELDS[2:]))

    trades(range(1, 6))
    assert not await publisher.flush()  # 5 PUBLISH accepted, 5 XADD refused
    trades(range(6, 9))
    assert await publisher.flush()  # the XADDs wait for the retry delay; 3 PUBLISH go
    assert publisher.trades_published == 8
    assert not await publisher.flush(everything=True)  # the retry: 8 XADDs, no trade again
    assert len(xadds(redis.batches[-1])) == 8
    assert not await publisher.flush(everything=True)  # the 5 newest kept
    assert [c[c.index("trade_id") + 1] for c in xadds(redis.batches[-1])] == [
        "4", "5", "6", "7", "8",
    ]  # fmt: skip
    published = [c for b in redis.batches for c in b if str(c[1]).startswith("trades:")]
    assert len(published) == 8  # each trade once
    sample = metrics.registry.get_sample_value
    assert sample("spool_dropped_total", {"stream": "trades"}) == 3  # over the limit
    assert sample("redis_command_refusals_total", {"command": "XADD", "reason": "NOPERM"}) == 18
    assert sample("redis_publishes_total", {"kind": "trade"}) == 8
    assert publisher.redis_problems() == ["XADD refused: NOPERM no XADD for you"]


def xadds(batch: list[Command]) -> list[Command]:
    return [c for c in batch if c[0] == "XADD"]


class Recording:
    """Accepts every command; keeps each batch and what `on_send` saw when it was sent."""

    def __init__(self, on_send: Callable[[list[Command]], Any] = lambda batch: None) -> None:
        self.batches: list[list[Command]] = []
        self.seen: list[Any] = []
        self._on_send = on_send

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        self.batches.append(list(commands))
        self.seen.append(self._on_send(self.batches[-1]))
        await asyncio.sleep(0)  # in flight: the loop runs other callbacks meanwhile
        return [0 for _ in commands]

    async def close(self) -> None:
        pass


def books_in(batch: list[Command]) -> list[str]:
    return [str(c[1]) for c in batch if c[0] == "PUBLISH" and str(c[1]).startswith("orderbook:")]


def changed_states(n: int) -> list[SymbolState]:
    states = [synced_state(f"S{i:03d}USDT") for i in range(n)]
    for state in states:
        state.last_recv_ts, state.book_unpublished = time.time(), True
    return states


async def test_the_first_books_are_on_the_wire_before_the_last_are_rendered() -> None:
    states = changed_states(100)
    sender = Recording(lambda batch: sum(s.book_unpublished for s in states))
    publisher = Publisher(
        sender, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=Metrics()
    )
    for state in states:
        publisher.book_changed(state)
    assert await publisher.flush()
    assert [len(books_in(b)) for b in sender.batches] == [BOOKS_PER_BATCH] * 10
    assert sender.seen[0] == 100 - BOOKS_PER_BATCH  # not rendered yet when the first went
    published = [book for batch in sender.batches for book in books_in(batch)]
    assert published == [f"orderbook:S{i:03d}USDT" for i in range(100)]  # each once


async def test_a_book_changed_while_its_batch_is_in_flight_waits_for_its_interval() -> None:
    states = changed_states(2 * BOOKS_PER_BATCH)
    publisher: Publisher

    def change_the_first(batch: list[Command]) -> None:
        publisher.book_changed(states[0])  # a diff while the first batch is in flight

    sender = Recording(change_the_first)
    publisher = Publisher(
        sender, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=Metrics()
    )
    for state in states:
        publisher.book_changed(state)
    assert await publisher.flush()
    published = [book for batch in sender.batches for book in books_in(batch)]
    assert published.count("orderbook:S000USDT") == 1
    assert len(published) == 2 * BOOKS_PER_BATCH
    assert await publisher.flush()  # dirty again, but its interval counts from its batch
    assert len(sender.batches) == 2


async def test_a_drain_sends_every_book_once_even_when_redis_refuses_them() -> None:
    states = changed_states(25)

    class RefusingBooks(Recording):
        async def send(self, commands: Sequence[Command]) -> list[Any]:
            await super().send(commands)
            return [ReplyError("OOM no") if c[0] == "PUBLISH" else 0 for c in commands]

    sender = RefusingBooks()
    publisher = Publisher(
        sender, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=Metrics()
    )
    for state in states:
        publisher.book_changed(state)
    assert not await publisher.flush(everything=True)  # returns: refused ones wait
    assert [len(books_in(b)) for b in sender.batches] == [10, 10, 5]
    assert not await publisher.flush(everything=True)  # all of them again, once each
    assert sum(len(books_in(b)) for b in sender.batches) == 50


async def test_a_due_book_is_sent_at_once_while_the_loop_sleeps_on_a_later_timer() -> None:
    sender = Recording()
    publisher = Publisher(
        sender, book_depth=5, interval_s=5.0, market_data_ttl_s=60, metrics=Metrics()
    )
    first, second = changed_states(2)
    task = asyncio.create_task(publisher.run())
    try:
        publisher.book_changed(first)  # leading edge
        assert await soon(lambda: len(sender.batches) == 1)
        publisher.book_changed(first)  # not due for 5 s: the loop sleeps until then
        await asyncio.sleep(0.05)
        assert len(sender.batches) == 1
        publisher.book_changed(second)  # due now: it must not wait for the 5 s timer
        assert await soon(lambda: len(sender.batches) == 2, timeout_s=0.5)  # idle PING: 1 s
        assert books_in(sender.batches[1]) == ["orderbook:S001USDT"]
    finally:
        publisher.stop()
        await task


class Gated:
    """Accepts every command, but replies to a batch only when the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[Command]] = []
        self.gates: list[asyncio.Future[None]] = []

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        self.batches.append(list(commands))
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        return [0 if c[0] != "XADD" else b"1-1" for c in commands]

    async def close(self) -> None:
        pass


def trades_in(batch: list[Command]) -> list[Command]:
    return [c for c in batch if str(c[1]).startswith("trades:") or c[0] in ("XADD", "XLEN")]


async def test_batches_in_flight_together_hold_other_symbols_and_one_holds_the_trades() -> None:
    sender = Gated()
    publisher = Publisher(
        sender, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=Metrics(),
        spool=SpoolCapacity(max_entries=1000),
    )  # fmt: skip
    states = changed_states(3 * BOOKS_PER_BATCH)
    for state in states:
        publisher.book_changed(state)
    publisher.trade(states[0], Trade(*TRADE_FIELDS[:2], "1", *TRADE_FIELDS[2:]))
    flush = asyncio.create_task(publisher.flush())
    assert await soon(lambda: len(sender.batches) == MAX_IN_FLIGHT == 2)
    first, second = sender.batches
    assert len(trades_in(first)) == 4  # PUBLISH, XADD, XLEN, XLEN
    publisher.trade(states[0], Trade(*TRADE_FIELDS[:2], "2", *TRADE_FIELDS[2:]))
    assert trades_in(second) == []  # books only: the trades' batch is still in flight
    assert not set(books_in(first)) & set(books_in(second))
    await asyncio.sleep(0.01)
    assert len(sender.batches) == 2  # no more in flight
    sender.gates[0].set_result(None)
    assert await soon(lambda: len(sender.batches) == 3)
    assert len(trades_in(sender.batches[2])) == 4  # trade 2 goes once the first is settled
    for gate in sender.gates[1:]:
        gate.set_result(None)
    assert await flush
    published = [book for batch in sender.batches for book in books_in(batch)]
    assert sorted(published) == sorted(f"orderbook:{s.symbol}" for s in states)
    assert publisher.trades_published == 2


async def test_a_flush_cancelled_in_flight_settles_what_was_answered_and_keeps_the_rest() -> None:
    sender, metrics = Gated(), Metrics()
    publisher = Publisher(
        sender, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=metrics
    )
    states = changed_states(2 * BOOKS_PER_BATCH + 1)
    for state in states:
        publisher.book_changed(state)
    publisher.trade(states[0], Trade(*TRADE_FIELDS[:2], "1", *TRADE_FIELDS[2:]))
    flush = asyncio.create_task(publisher.flush())
    assert await soon(lambda: len(sender.batches) == 2)
    sender.gates[1].set_result(None)  # the second is answered, the first (the trade's) not
    await asyncio.sleep(0)
    flush.cancel()
    await asyncio.gather(flush, return_exceptions=True)
    sample = metrics.registry.get_sample_value
    assert sample("redis_publishes_total", {"kind": "orderbook"}) == BOOKS_PER_BATCH
    assert publisher.pending_trades == 1  # not answered: pending again, sent once more
    sender.gates.clear()
    sender.batches.clear()
    retry = asyncio.create_task(publisher.flush(everything=True))
    while not retry.done():
        await asyncio.sleep(0)
        for gate in sender.gates:
            if not gate.done():
                gate.set_result(None)
    assert await retry
    again = [book for batch in sender.batches for book in books_in(batch)]
    assert len(again) == BOOKS_PER_BATCH + 1  # the first batch's books and the last one
    assert publisher.trades_published == 1
