"""Waiting for an event with a timeout, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` returns normally when the event is set
in the same loop turn as the waiting task is cancelled: the cancellation is lost, and a
loop that waits that way may never end at shutdown. `asyncio.timeout` has no such race.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """True when `event` is set within `timeout_s`, False when the time ran out."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
