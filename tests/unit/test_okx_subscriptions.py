"""One connection's subscriptions: requests of at most 20 channels, replies matched to what
was sent, and the hourly budget counted exactly."""

from __future__ import annotations

from marketdata.backoff import Backoff
from marketdata.venues.okx.subscriptions import (
    SubscribeBudget,
    Subscription,
    Subscriptions,
    SubState,
)
from marketdata.venues.okx.wire import ErrorReply, Reply


def make(count: int, failed: list[tuple[str, str]]) -> Subscriptions:
    subs = [
        Subscription("books", f"I{i}-USDT", "okx:test", Backoff(1.0, 2.0)) for i in range(count)
    ]
    return Subscriptions(
        subs, 10.0, lambda sub, reason, cause: failed.append((sub.inst_id, reason)),
        clock=lambda: 0.0,
    )  # fmt: skip


def test_channels_go_20_to_a_request() -> None:
    subs = make(45, [])
    requests, _ = subs.due(0.0)
    assert [len(r.subs) for r in requests] == [20, 20, 5]
    assert requests[2].frame() == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": f"I{i}-USDT"} for i in range(40, 45)],
    }
    assert subs.budget.left(0.0) == 477
    assert subs.due(1.0)[0] == []  # sent: waiting for the replies


def test_an_unnamed_error_fails_the_oldest_request_still_waiting() -> None:
    failed: list[tuple[str, str]] = []
    subs = make(25, failed)
    first, second = subs.due(0.0)[0]
    for sub in first.subs:
        subs.on_reply(Reply("subscribe", "books", sub.inst_id, None))
    subs.on_error(ErrorReply("60012", "Invalid request", None))
    assert failed == [(f"I{i}-USDT", "rejected") for i in range(20, 25)]
    assert all(s.state is SubState.CONFIRMED for s in first.subs)


def test_the_budget_is_a_sliding_hour() -> None:
    budget = SubscribeBudget(limit=3, window_s=3600.0)
    for at in (0.0, 10.0, 20.0):
        budget.take(at)
    assert budget.left(30.0) == 0
    assert budget.free_at(30.0) == 3600.0
    assert budget.free_at(30.0, 2) == 3610.0
    assert budget.left(3600.0) == 1


def test_an_error_naming_an_instrument_fails_it_alone_and_not_a_longer_name() -> None:
    failed: list[tuple[str, str]] = []
    subs = make(0, failed)
    for inst in ("BTC-USD", "BTC-USDT"):
        subs.subs[("books", inst)] = Subscription("books", inst, "okx:test", Backoff(1.0, 2.0))
    subs.due(0.0)
    subs.on_error(
        ErrorReply("60018", "Wrong URL or channel:books,instId:BTC-USDT doesn't exist", None)
    )
    assert failed == [("BTC-USDT", "rejected")]
    assert subs.subs[("books", "BTC-USD")].state is SubState.SENT
