"""A stalled consumer and an overfilled spool: books refused first, every refusal counted,
and nothing a group has not acknowledged is ever trimmed."""

from __future__ import annotations

from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, Trade
from marketdata.metrics import Metrics
from marketdata.persist.housekeeping import trim_all
from marketdata.publish import Publisher
from marketdata.redis_batch import RespConnection
from marketdata.spool import BOOKS_STREAM, TRADES_STREAM, SpoolCapacity
from marketdata.state import SymbolState
from marketdata.sync import BookSync


def synced_state(symbol: str) -> SymbolState:
    state = SymbolState("binance_futures", symbol, BookSync(FuturesChain()))
    levels = ([(1.0, 1.0, "1.0", "1")], [(2.0, 1.0, "2.0", "1")])
    state.sync.on_snapshot(BookSnapshot("binance_futures", symbol, 10, *levels, 0, 0.0))
    return state


async def test_overfilled_spool_refuses_books_first_and_never_trims_pending(
    redis_client, redis_server
):
    for stream in (TRADES_STREAM, BOOKS_STREAM):
        await redis_client.xgroup_create(stream, "timescale", id="0", mkstream=True)
    metrics = Metrics()
    capacity = SpoolCapacity(max_entries=1000, books_refuse_fraction=0.8)
    publisher = Publisher(
        RespConnection(redis_server.url), book_depth=5, interval_s=0.1, market_data_ttl_s=60,
        metrics=metrics, spool=capacity, snapshot_interval_s=0.0,
    )  # fmt: skip
    states = [synced_state(f"SYM{i}USDT") for i in range(10)]
    for state in states:
        publisher.register(state)
    trade_id = 0
    for _ in range(60):  # 60 rounds of 20 trades and 10 book snapshots, nobody consuming
        for _ in range(20):
            trade_id += 1
            publisher.trade(states[0], _trade(trade_id))
        publisher.sample_books()
        assert await publisher.flush()
        # the stalled consumer: takes deliveries, never acknowledges
        await redis_client.xreadgroup("timescale", "c", {TRADES_STREAM: ">", BOOKS_STREAM: ">"})
    await publisher.close()
    trades = await redis_client.xlen(TRADES_STREAM)
    books = await redis_client.xlen(BOOKS_STREAM)
    assert trades + books == 1000  # full to the cap, not beyond
    assert books < 800  # books stopped at 80 %; trades went on to the cap
    assert trades == 1000 - books
    dropped_books = metrics.registry.get_sample_value("spool_dropped_total", {"stream": "books"})
    dropped_trades = metrics.registry.get_sample_value("spool_dropped_total", {"stream": "trades"})
    assert dropped_books == 600 - books  # every refusal counted
    assert dropped_trades == 1200 - trades
    assert await trim_all(redis_client) == 0  # all pending: nothing may go
    assert await redis_client.xlen(TRADES_STREAM) == trades
    # Acknowledge the first 100 trades only: exactly those may be trimmed.
    first = await redis_client.xrange(TRADES_STREAM, count=100)
    await redis_client.xack(TRADES_STREAM, "timescale", *[entry_id for entry_id, _ in first])
    assert await trim_all(redis_client) == 100
    assert await redis_client.xlen(TRADES_STREAM) == trades - 100
    pending = await redis_client.xpending(TRADES_STREAM, "timescale")
    assert pending["pending"] == trades - 100
    assert pending["min"] == (await redis_client.xrange(TRADES_STREAM, count=1))[0][0]


def _trade(trade_id: int) -> Trade:
    return Trade("binance_futures", "SYM0USDT", str(trade_id), 1.5, 1.0, "1.5", "1", "buy", 1, 0.0)
