"""Connection attempts paced within a venue's connection-rate limit (per IP).

At most `limit` attempts in any `window_s`, kept exactly: the times of the last `limit`
attempts are held, and an attempt waits until the oldest of them leaves the window. A
start opens up to `limit` connections at once; a reconnect storm past that waits its turn
instead of getting the IP banned. Attempts are served in the order they ask.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class ConnectPacer:
    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"a connection limit of {limit} per {window_s}s cannot be paced")
        self.limit = limit
        self.window_s = window_s
        self._slots: deque[float] = deque(maxlen=limit)  # times of the last `limit` attempts
        self._clock = clock

    def reserve(self) -> float:
        """Take the next slot: how long to wait before the attempt (0: now)."""
        now = self._clock()
        at = now
        if len(self._slots) == self.limit:
            at = max(now, self._slots[0] + self.window_s)
        self._slots.append(at)
        return at - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
