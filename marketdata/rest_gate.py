"""REST discipline (snapshots, trade backfills), shared by every symbol of one exchange.

The venue brings its budget (RestBudget: weight per minute, the header reporting used
weight, the status that means banned); the rules are the same for all:
- Requests are spaced by `min_spacing_s`, so many symbols resyncing at once are staggered.
- Used weight is tracked from the venue's header (Binance: X-MBX-USED-WEIGHT-1M) and our
  own count; a request that would pass `budget_fraction` of the per-minute limit waits
  for the next minute.
- 429: no request until Retry-After has passed. The ban status (Binance: 418): the same,
  with a long floor.
- Shared (rest_budget.shared, marketdata/rest_budget.py): the budget is the IP's, counted in
  Redis by every process behind it; each request is also counted here, and a process whose
  Redis does not answer goes on with this count alone. The used-weight header and every
  stop are told to the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"  # Binance's, the default
BAN_STATUS = 418  # Binance's "IP banned", the default
DEFAULT_RETRY_AFTER_S = 10.0
BAN_FLOOR_S = 120.0
MAX_WAIT_S = 3 * 86400.0
BUDGET_FRACTION = 0.8  # of the venue's limit; the rest is margin for what we do not see


class Shared(Protocol):
    """The budget of every process behind one IP (rest_budget.SharedBudget)."""

    async def take(self, weight: int, budget: int) -> float | None:
        """0.0: counted; else seconds to wait; None: not reachable, the local count decides."""

    def report(self, used: int | None, pause_s: float) -> None:
        """In the background: the venue's used-weight header; a stop of `pause_s`."""


class RestGate:
    def __init__(
        self,
        weight_limit_per_min: int = 2400,
        budget_fraction: float = BUDGET_FRACTION,
        min_spacing_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        weight_header: str | None = WEIGHT_HEADER,
        ban_status: int | None = BAN_STATUS,
        shared: Shared | None = None,
    ) -> None:
        self.budget = int(weight_limit_per_min * budget_fraction)
        self._weight_header = weight_header
        self._stops = {429: "rate limited (429)"}
        if ban_status is not None:
            self._stops[ban_status] = f"banned ({ban_status})"
        self._ban_status = ban_status
        self._shared = shared
        self.min_spacing_s = min_spacing_s
        self._clock = clock
        self._wall = wall
        self._lock = asyncio.Lock()
        self._next_request_at = 0.0
        self.blocked_until = 0.0  # monotonic; no request before it
        self.used_weight = 0
        self._minute = -1

    def wait_s(self, weight: int) -> float:
        """How long a request of `weight` must wait now (0: it may go)."""
        now = self._clock()
        self._roll_minute()
        wait = max(0.0, self.blocked_until - now, self._next_request_at - now)
        if self.used_weight + weight > self.budget:
            wait = max(wait, 60.0 - self._wall() % 60.0)
        return wait

    async def acquire(self, weight: int) -> None:
        """Wait until a request of `weight` may go, then count it."""
        weight = min(weight, self.budget)  # heavier than the whole budget: it would never go
        async with self._lock:
            while True:
                # Re-check after each sleep: a 429 recorded meanwhile can extend the wait.
                while (wait := self.wait_s(weight)) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(wait)
                # The shared budget: counted (0.0), unreachable (None), or a wait.
                if self._shared is None or not (
                    shared := await self._shared.take(weight, self.budget)
                ):
                    break
                await asyncio.sleep(shared)
            self.used_weight += weight
            self._next_request_at = self._clock() + self.min_spacing_s

    def record(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: used weight, and any order to stop."""
        text = headers.get(self._weight_header) if self._weight_header else None
        used = int(text) if text is not None and text.isdigit() else None
        if used is not None:
            self._roll_minute()
            self.used_weight = max(self.used_weight, used)
        why = self._stops.get(status)
        wait = 0.0
        if why is not None:
            wait = _seconds(headers.get("Retry-After"), DEFAULT_RETRY_AFTER_S)
            if status == self._ban_status:
                wait = max(wait, BAN_FLOOR_S)
            wait = min(wait, MAX_WAIT_S)
            self.blocked_until = max(self.blocked_until, self._clock() + wait)
            log.warning("REST requests %s: none for %.0fs", why, wait)
        if self._shared is not None and (used is not None or wait > 0):
            self._shared.report(used, wait)

    def _roll_minute(self) -> None:
        minute = int(self._wall() // 60)
        if minute != self._minute:
            self._minute = minute
            self.used_weight = 0


def _seconds(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default
