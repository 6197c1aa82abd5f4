"""A cancellation that a library turns into its own error must still end a retry loop."""

from __future__ import annotations

import asyncio

import pytest

from marketdata.cancelling import raise_if_cancelling


async def _call_that_converts_cancellation() -> None:
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        raise OSError("connection reset") from None  # what the library let out


async def _retry_forever(guarded: bool, give_up: asyncio.Event | None = None) -> None:
    while give_up is None or not give_up.is_set():
        try:
            await _call_that_converts_cancellation()
        except OSError:
            if guarded:
                raise_if_cancelling()
        await asyncio.sleep(0.01)


async def test_guarded_retry_loop_ends_when_cancelled() -> None:
    task = asyncio.create_task(_retry_forever(guarded=True))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)


async def test_unguarded_retry_loop_swallows_the_cancellation() -> None:
    """The failure the guard exists for: without it the loop outlives its cancel."""
    give_up = asyncio.Event()
    task = asyncio.create_task(_retry_forever(guarded=False, give_up=give_up))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.3)
    assert not done
    assert task.cancelling()
    give_up.set()
    await asyncio.wait_for(task, 3.0)  # ends on its own, its cancel lost


async def test_outside_a_cancelled_task_nothing_is_raised() -> None:
    raise_if_cancelling()
