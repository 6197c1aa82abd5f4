from __future__ import annotations

from marketdata.rest_gate import BAN_FLOOR_S, RestGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock, **kwargs) -> RestGate:
    return RestGate(clock=clock, wall=lambda: 30.0 + clock.now - 1000.0, **kwargs)


def test_429_blocks_for_retry_after() -> None:
    clock = Clock()
    g = gate(clock, min_spacing_s=0)
    g.record(429, {"Retry-After": "2"})
    assert g.wait_s(20) == 2.0
    clock.now += 1.999
    assert g.wait_s(20) > 0
    clock.now += 0.002
    assert g.wait_s(20) == 0


def test_418_blocks_for_at_least_the_ban_floor() -> None:
    clock = Clock()
    g = gate(clock, min_spacing_s=0)
    g.record(418, {"Retry-After": "1"})
    assert g.wait_s(20) == BAN_FLOOR_S


def test_weight_budget_waits_for_the_next_minute() -> None:
    clock = Clock()  # wall clock at :30 of a minute
    g = gate(clock, weight_limit_per_min=2400, budget_fraction=0.5, min_spacing_s=0)
    g.record(200, {"X-MBX-USED-WEIGHT-1M": "1190"})
    assert g.wait_s(10) == 0
    assert g.wait_s(20) == 30.0  # 1190 + 20 > 1200: wait for the minute to roll
    clock.now += 30.0
    assert g.wait_s(20) == 0  # new minute, weight reset


def test_requests_are_spaced() -> None:
    clock = Clock()
    g = gate(clock, min_spacing_s=0.1)
    g._next_request_at = clock.now + 0.1
    assert abs(g.wait_s(2) - 0.1) < 1e-9


def test_a_venue_brings_its_own_weight_header_and_ban_status() -> None:
    clock = Clock()
    g = gate(clock, weight_limit_per_min=100, budget_fraction=1.0, min_spacing_s=0,
             weight_header="X-Used", ban_status=None)  # fmt: skip
    g.record(200, {"X-MBX-USED-WEIGHT-1M": "99"})  # another venue's header: not read
    assert g.wait_s(10) == 0
    g.record(200, {"X-Used": "95"})
    assert g.wait_s(10) == 30.0
    g.record(418, {"Retry-After": "1"})  # no ban status on this venue: not a stop
    assert g.blocked_until == 0.0
