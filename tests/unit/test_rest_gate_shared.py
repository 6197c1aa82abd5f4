"""RestGate with a shared budget (a stand-in here; tests/integration/test_rest_budget.py has
the real one): asked after the local checks, waited for, reported to."""

from __future__ import annotations

from marketdata.rest_gate import BAN_FLOOR_S, RestGate


class FakeShared:
    def __init__(self, answers: list[float | None]) -> None:
        self.answers = answers
        self.asked: list[tuple[int, int]] = []
        self.reports: list[tuple[int | None, float]] = []

    async def take(self, weight: int, budget: int) -> float | None:
        self.asked.append((weight, budget))
        return self.answers.pop(0) if self.answers else 0.0

    def report(self, used: int | None, pause_s: float) -> None:
        self.reports.append((used, pause_s))


async def test_acquire_waits_as_long_as_the_shared_budget_says_then_counts() -> None:
    shared = FakeShared([0.01, 0.01, 0.0])
    gate = RestGate(100, 1.0, min_spacing_s=0, shared=shared)
    await gate.acquire(10)
    assert shared.asked == [(10, 100)] * 3
    assert gate.used_weight == 10  # counted here too, once


async def test_an_unreachable_shared_budget_leaves_the_local_count_to_decide() -> None:
    shared = FakeShared([None] * 10)
    gate = RestGate(100, 1.0, min_spacing_s=0, shared=shared)
    for _ in range(10):
        await gate.acquire(10)
    assert gate.used_weight == 100
    assert gate.wait_s(10) > 0  # the local budget is spent: the next one waits


async def test_a_request_heavier_than_the_budget_is_asked_as_the_whole_budget() -> None:
    shared = FakeShared([])
    gate = RestGate(20, 0.5, min_spacing_s=0, shared=shared)
    await gate.acquire(50)
    assert shared.asked == [(10, 10)]


def test_record_tells_the_used_weight_and_stops() -> None:
    shared = FakeShared([])
    gate = RestGate(shared=shared)
    gate.record(200, {})  # nothing to tell
    gate.record(200, {"X-MBX-USED-WEIGHT-1M": "120"})
    gate.record(429, {"Retry-After": "7"})
    gate.record(418, {"Retry-After": "1", "X-MBX-USED-WEIGHT-1M": "2400"})
    gate.record(500, {"Retry-After": "7"})  # not a stop
    assert shared.reports == [(120, 0.0), (None, 7.0), (2400, BAN_FLOOR_S)]
