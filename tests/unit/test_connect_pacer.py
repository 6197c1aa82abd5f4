"""ConnectPacer never lets a window hold more attempts than the venue's limit."""

from __future__ import annotations

import bisect

import pytest

from marketdata.connect_pacer import ConnectPacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("pattern", ["burst", "steady", "two_bursts"])
def test_no_window_holds_more_than_the_limit(pattern: str) -> None:
    clock = Clock()
    pacer = ConnectPacer(300, 300.0, clock)
    attempts: list[float] = []
    asks = {
        "burst": [0.0] * 900,
        "steady": [i * 0.2 for i in range(3000)],  # 5 a second asked, 0.5 allowed
        "two_bursts": [0.0] * 200 + [400.0] * 400,
    }[pattern]
    for at in asks:
        clock.now = max(clock.now, at)
        attempts.append(clock.now + pacer.reserve())
    attempts.sort()
    most = max(bisect.bisect_left(attempts, start + 300.0) - i for i, start in enumerate(attempts))
    assert most <= 300
    assert len(attempts) == len(asks)  # every attempt gets a slot; none is refused


def test_the_limit_goes_at_once_then_each_waits_for_a_slot_to_leave_the_window() -> None:
    clock = Clock()
    pacer = ConnectPacer(300, 300.0, clock)
    delays = [pacer.reserve() for _ in range(302)]
    assert delays[:300] == [0.0] * 300
    assert delays[300:] == [300.0, 300.0]
    clock.now = 100.0
    assert pacer.reserve() == 200.0  # the third of the first burst frees at 300 s


def test_an_impossible_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be paced"):
        ConnectPacer(0, 300.0)
