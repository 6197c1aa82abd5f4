"""Limits that keep the operations endpoint from taking over the feed's event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("marketdata.http")


class HandlerGate:
    """Admits at most `rate` requests a second, and `limit` at once.

    A request gets the next free start time; if that is more than `max_wait_s` away it is
    refused at once (so at most rate * max_wait_s wait), else it waits for it. A busy spell is
    logged when the first refusal comes and, with its count, when a request finds no queue.
    """

    def __init__(self, limit: int, rate: float, max_wait_s: float) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self.interval_s = 1.0 / rate
        self.max_wait_s = max_wait_s
        self._next_start = 0.0
        self.refused = 0  # in the current busy spell

    async def acquire(self) -> bool:
        """True once admitted (release() afterwards); False when busy."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_start)
        if start - now > self.max_wait_s:
            return self._refuse()
        self._next_start = start + self.interval_s
        try:
            async with asyncio.timeout_at(start + self.max_wait_s):
                if start > now:
                    await asyncio.sleep(start - now)
                await self._semaphore.acquire()
        except TimeoutError:
            return self._refuse()
        if self.refused and start == now:  # no queue left: the busy spell is over
            log.info("operations endpoint admitting requests again (%d refused as busy)",
                     self.refused)  # fmt: skip
            self.refused = 0
        return True

    def release(self) -> None:
        self._semaphore.release()

    def _refuse(self) -> bool:
        if not self.refused:
            log.warning("operations endpoint busy: refusing requests beyond %g/s",
                        1 / self.interval_s)  # fmt: skip
        self.refused += 1
        return False


class MetricsCache:
    """The exposition bytes, rendered again only when older than `max_age_s`."""

    def __init__(
        self,
        render: Callable[[], bytes],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render = render
        self.max_age_s = max_age_s
        self._clock = clock
        self._body = b""
        self._rendered_at: float | None = None

    def body(self) -> bytes:
        now = self._clock()
        if self._rendered_at is None or now - self._rendered_at >= self.max_age_s:
            self._body = self._render()
            self._rendered_at = now
        return self._body
