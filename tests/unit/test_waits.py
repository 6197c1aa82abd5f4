"""wait_event: a timeout on an event wait that never swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from marketdata.waits import wait_event


async def test_it_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def _loop_until_cancelled(event: asyncio.Event) -> None:
    while True:  # the shape of every upkeep loop: clear, work, wait for a wake or a timeout
        event.clear()
        await wait_event(event, 10.0)


async def test_a_cancel_in_the_same_turn_as_the_event_ends_the_loop() -> None:
    """asyncio.wait_for(event.wait(), t) on Python 3.11 returns normally here, the cancel
    is lost, and the loop above never ends."""
    event = asyncio.Event()
    task = asyncio.create_task(_loop_until_cancelled(event))
    await asyncio.sleep(0)  # the task is waiting now
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert done, "the cancellation was lost"
    with pytest.raises(asyncio.CancelledError):
        task.result()
