"""The operations endpoint's admission gate and /metrics cache."""

from __future__ import annotations

import asyncio
import logging

import pytest

from marketdata.http_limits import HandlerGate, MetricsCache


async def test_gate_refuses_at_once_what_could_not_start_within_the_wait() -> None:
    gate = HandlerGate(limit=100, rate=10, max_wait_s=0.25)  # starts at 0, .1, .2 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = [asyncio.create_task(gate.acquire()) for _ in range(5)]
    await asyncio.sleep(0)
    refused_at = loop.time()
    assert [t.done() and not t.result() for t in tasks] == [False, False, False, True, True]
    assert refused_at - started < 0.05
    assert await asyncio.gather(*tasks) == [True, True, True, False, False]


async def test_gate_holds_at_most_limit_at_once() -> None:
    gate = HandlerGate(limit=2, rate=1000, max_wait_s=0.05)
    assert await gate.acquire()
    assert await gate.acquire()
    assert not await gate.acquire()  # waited its 50 ms for a holder to leave
    gate.release()
    assert await gate.acquire()


async def test_a_busy_spell_is_logged_once_at_start_and_once_at_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "marketdata.http")
    gate = HandlerGate(limit=100, rate=20, max_wait_s=0.0)
    results = [await gate.acquire() for _ in range(5)]  # one start per 50 ms: four refused
    assert results == [True, False, False, False, False]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await gate.acquire():  # admitted once its turn has come
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING"
    assert "busy" in lines[0][1]
    assert lines[1][0] == "INFO"
    assert "refused as busy" in lines[1][1]


def test_metrics_are_rendered_at_most_once_per_max_age() -> None:
    now = [100.0]
    renders: list[float] = []

    def render() -> bytes:
        renders.append(now[0])
        return f"rendered at {now[0]}".encode()

    cache = MetricsCache(render, max_age_s=1.0, clock=lambda: now[0])
    assert cache.body() == b"rendered at 100.0"
    now[0] = 100.9
    assert cache.body() == b"rendered at 100.0"
    now[0] = 101.0
    assert cache.body() == b"rendered at 101.0"
    assert renders == [100.0, 101.0]
