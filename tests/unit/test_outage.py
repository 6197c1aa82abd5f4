"""Outage: a failure logged once when it starts, reminded on a cadence, its end logged."""

from __future__ import annotations

import logging

import pytest

from marketdata import outage
from marketdata.outage import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_minute_not_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    t = Outage(
        "timescale sink", logging.getLogger("t"), level=logging.ERROR, remind=True, clock=clock
    )
    for _ in range(150):  # 150 failed attempts, one a second
        t.fail(ConnectionRefusedError(111, "Connect call failed"))
        clock.now += 1.0
    assert t.status()["ok"] is False
    t.ok()
    t.ok()  # already fine: says nothing
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # start, two reminders (60 s, 120 s), end
    assert lines[0] == (
        "timescale sink failing, retrying: ConnectionRefusedError: [Errno 111] Connect call failed"
    )
    assert lines[1].startswith("timescale sink still failing after 60 s (61 attempts)")
    assert lines[2].startswith("timescale sink still failing after 120 s (121 attempts)")
    assert lines[3] == (
        "timescale sink recovered after 150.0 s (150 failed attempts; last cause: "
        "ConnectionRefusedError: [Errno 111] Connect call failed)"
    )
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3 + [logging.INFO]
    assert t.status() == {"ok": True}


def test_the_interval_is_a_module_constant(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage, "REMINDER_INTERVAL_S", 5.0)
    clock = Clock()
    t = Outage("redis", logging.getLogger("t"), remind=True, clock=clock)
    for _ in range(11):
        t.fail("down")
        clock.now += 1.0
    assert len(caplog.records) == 3  # at 0, 5 and 10 s


def test_a_cause_is_one_line() -> None:
    t = Outage("x", logging.getLogger("t"), clock=Clock())
    t.fail(ValueError("first line\n  DETAIL: second"))
    assert t.cause == "ValueError: first line DETAIL: second"


def test_without_reminders_a_long_outage_is_two_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    t = Outage("BTCUSDT:book", logging.getLogger("t"), clock=clock)
    for _ in range(600):
        t.fail(TimeoutError())
        clock.now += 1.0
    t.ok()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert caplog.records[0].getMessage() == "BTCUSDT:book failing, retrying: TimeoutError"
