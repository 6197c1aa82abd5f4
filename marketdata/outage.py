"""A failure that lasts, told truthfully and never as a storm: one line with its cause when
it starts, optionally a reminder every REMINDER_INTERVAL_S while it lasts, and one line when
it ends, with how long it lasted and how many attempts failed. The cause is one line,
never a traceback, and stays readable for /ready and /health while the failure lasts.

Retry loops call `fail(cause)` on every failed attempt and `ok()` on success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from marketdata.logs import describe

REMINDER_INTERVAL_S = 60.0  # module level: tests shorten it


class Outage:
    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        level: int = logging.WARNING,
        remind: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.cause: str | None = None  # None: no outage
        self.attempts = 0  # failed attempts since it started
        self._log = logger
        self._level = level
        self._remind = remind
        self._clock = clock
        self._since = 0.0
        self._reminded = 0.0

    @property
    def active(self) -> bool:
        return self.cause is not None

    def fail(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else describe(error)
        now = self._clock()
        self.attempts += 1
        if self.cause is None:
            self._since = self._reminded = now
            self._log.log(self._level, "%s failing, retrying: %s", self.what, text)
        elif self._remind and now - self._reminded >= REMINDER_INTERVAL_S:
            self._reminded = now
            self._log.log(
                self._level, "%s still failing after %.0f s (%d attempts): %s",
                self.what, now - self._since, self.attempts, text,
            )  # fmt: skip
        self.cause = text

    def ok(self) -> None:
        if self.cause is None:
            return
        self._log.info(
            "%s recovered after %.1f s (%d failed attempts; last cause: %s)",
            self.what, self._clock() - self._since, self.attempts, self.cause,
        )  # fmt: skip
        self.cause = None
        self.attempts = 0

    def status(self) -> dict[str, object]:
        """For a health body: {"ok": true} or {"ok": false, "error", "attempts", "since_s"}."""
        if self.cause is None:
            return {"ok": True}
        return {
            "ok": False, "error": self.cause, "attempts": self.attempts,
            "since_s": round(self._clock() - self._since, 3),
        }  # fmt: skip
