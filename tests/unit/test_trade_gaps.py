"""TradeGaps with a stand-in for the REST history: gaps filled in order, failures bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.trade_gaps import GapLimits, TradeGaps
from marketdata.trade_ids import TradeIds

EXCHANGE, SYMBOL = "binance_futures", "BTCUSDT"


def trade(trade_id: int, backfilled: bool = False) -> Trade:
    return Trade(
        EXCHANGE, SYMBOL, str(trade_id), 1.0, 1.0, "1.0", "1", "buy", 1, 0.0, backfilled, trade_id
    )


class History:
    """The exchange's past trades; `fail` requests fail first, `stall` ones never answer."""

    def __init__(
        self, last_id: int, fail: int = 0, stall: bool = False, holes: range = range(0)
    ) -> None:
        self.last_id = last_id
        self.fail = fail
        self.stall = stall
        self.holes = holes  # ids the exchange does not return
        self.requests: list[tuple[int, int]] = []

    async def page(self, from_id: int, limit: int) -> list[Trade] | None:
        self.requests.append((from_id, limit))
        await asyncio.sleep(0)
        if self.stall:
            await asyncio.Event().wait()
        if self.fail:
            self.fail -= 1
            return None
        ids = (i for i in range(from_id, self.last_id + 1) if i not in self.holes)
        return [trade(i, True) for i, _ in zip(ids, range(limit), strict=False)]


class Run:
    def __init__(self, history: History, limits: GapLimits | None = None) -> None:
        self.metrics = Metrics()
        self.published: list[Trade] = []
        self.history = history
        self.gaps = TradeGaps(
            EXCHANGE, SYMBOL, TradeIds(), self.published.append, history.page, self.metrics,
            limits or GapLimits(retry_delay_s=0),
        )  # fmt: skip

    def feed(self, *trade_ids: int) -> None:
        for i in trade_ids:
            self.gaps.on_trade(trade(i))

    async def settled(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.gaps.holding:
            assert time.monotonic() < deadline, "the gap still holds the live trades"
            await asyncio.sleep(0.01)

    def ids(self) -> list[int]:
        return [int(t.trade_id) for t in self.published]

    def count(self, name: str) -> float:
        labels = {"exchange": EXCHANGE, "symbol": SYMBOL}
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_gap_is_filled_before_the_live_trades_that_follow_it() -> None:
    run = Run(History(last_id=2_600))
    run.feed(1, 2, 3, 10, 11, 11, 12)  # 4..9 lost at a reconnect; 11 repeated
    assert run.ids() == [1, 2, 3]  # 10 on are held while 4..9 are fetched
    await run.settled()
    run.feed(13)
    assert run.ids() == list(range(1, 14))
    assert [t.sequence for t in run.published if t.backfilled] == list(range(4, 10))
    assert run.history.requests == [(4, 6)]  # just the missing ids
    assert (run.count("trade_gaps_total"), run.count("trades_backfilled_total")) == (1, 6)
    assert run.count("trades_lost_total") == 0


async def test_a_large_gap_is_fetched_page_by_page() -> None:
    run = Run(History(last_id=5_000))
    run.feed(1, 2_502)
    await run.settled()
    assert run.ids() == list(range(1, 2_503))
    assert run.history.requests == [(2, 1000), (1002, 1000), (2002, 500)]


async def test_failed_requests_give_up_the_gap_and_release_the_live_trades() -> None:
    run = Run(History(last_id=100, fail=99))
    run.feed(1, 2, 8, 9)
    await run.settled()
    assert run.ids() == [1, 2, 8, 9]
    assert len(run.history.requests) == GapLimits().attempts
    assert run.count("trades_lost_total") == 5


async def test_a_retried_request_fills_the_gap() -> None:
    run = Run(History(last_id=100, fail=2))
    run.feed(1, 5)
    await run.settled()
    assert run.ids() == [1, 2, 3, 4, 5]


async def test_a_stalled_fetch_holds_live_trades_no_longer_than_max_hold() -> None:
    run = Run(History(last_id=100, stall=True), GapLimits(max_hold_s=0.2))
    run.feed(1, 5, 6)
    started = time.monotonic()
    await run.settled()
    assert time.monotonic() - started < 2.0
    assert run.ids() == [1, 5, 6]
    assert run.count("trades_lost_total") == 3


async def test_too_many_held_trades_release_them() -> None:
    run = Run(History(last_id=100, stall=True), GapLimits(max_held=3))
    run.feed(1, 5, 6, 7)
    assert run.gaps.holding
    run.feed(8)
    assert not run.gaps.holding
    assert run.ids() == [1, 5, 6, 7, 8]


async def test_a_gap_too_large_is_not_fetched_and_counted_lost_once_confirmed() -> None:
    run = Run(History(last_id=100_000), GapLimits(max_gap=1000))
    run.feed(1, 5_000)
    assert run.ids() == [1, 5_000]
    assert not run.gaps.holding
    assert run.count("trades_lost_total") == 0  # an outlier, or a real jump? the next says
    run.feed(5_001)
    assert run.count("trades_lost_total") == 4_998
    assert run.history.requests == []


async def test_a_wild_outlier_is_not_counted_lost_and_the_sequence_goes_on() -> None:
    run = Run(History(last_id=100))
    run.feed(1, 2, 2**52, 3, 4, 3)
    assert run.ids() == [1, 2, 2**52, 3, 4]  # published before anything told it apart
    assert run.count("trades_lost_total") == 0
    assert run.count("trades_out_of_sequence_total") == 1


async def test_a_small_outlier_is_dropped_unpublished_and_its_fetch_cancelled() -> None:
    run = Run(History(last_id=100, stall=True))
    run.feed(1, 2, 7, 3, 4)
    assert not run.gaps.holding
    assert run.ids() == [1, 2, 3, 4]
    assert run.count("trades_lost_total") == 0


@pytest.mark.parametrize("pending", [True, False])
async def test_close_publishes_what_is_held(pending: bool) -> None:
    run = Run(History(last_id=100, stall=pending))
    run.feed(1, 4, 5)
    if not pending:
        await run.settled()
    await run.gaps.close()
    assert run.ids() == ([1, 4, 5] if pending else [1, 2, 3, 4, 5])
    assert run.count("trades_lost_total") == (2 if pending else 0)


async def test_an_outlier_the_exchange_never_had_is_dropped_even_on_a_quiet_stream() -> None:
    run = Run(History(last_id=3))
    run.feed(1, 2, 9)  # nothing comes after 9 to tell; the exchange's history does
    await run.settled()
    assert run.ids() == [1, 2, 3]
    assert run.history.requests == [(3, 6), (9, 1)]
    run.feed(4, 5)
    assert run.ids() == [1, 2, 3, 4, 5]
    assert run.count("trades_lost_total") == 0
    assert run.count("trades_out_of_sequence_total") == 1


async def test_ids_the_exchange_cannot_return_are_lost_and_the_sequence_goes_on() -> None:
    run = Run(History(last_id=9, holes=range(4, 9)))
    run.feed(1, 2, 9)
    await run.settled()
    run.feed(10)
    assert run.ids() == [1, 2, 3, 9, 10]
    assert run.count("trades_lost_total") == 5
    assert run.count("trades_out_of_sequence_total") == 0
