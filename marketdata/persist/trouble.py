"""One condition that can fail and recover (a sink, Redis, housekeeping), told truthfully:
at ERROR with its cause when it starts, a reminder every REMINDER_INTERVAL_S while it lasts,
and once when it ends, with how long it lasted and how many attempts failed. Never a storm,
never a traceback: the cause is one line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from marketdata.persist.sink import cause

REMINDER_INTERVAL_S = 60.0  # module level: tests shorten it


class Trouble:
    def __init__(
        self, what: str, logger: logging.Logger, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.cause: str | None = None  # None: no trouble
        self.attempts = 0  # failed attempts since it started
        self._log = logger
        self._clock = clock
        self._since = 0.0
        self._reminded = 0.0

    @property
    def active(self) -> bool:
        return self.cause is not None

    def fail(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else cause(error)
        now = self._clock()
        self.attempts += 1
        if self.cause is None:
            self._since = self._reminded = now
            self._log.error("%s failing, retrying: %s", self.what, text)
        elif now - self._reminded >= REMINDER_INTERVAL_S:
            self._reminded = now
            self._log.error(
                "%s still failing after %.0f s (%d attempts): %s",
                self.what, now - self._since, self.attempts, text,
            )  # fmt: skip
        self.cause = text

    def ok(self) -> None:
        if self.cause is None:
            return
        self._log.info(
            "%s recovered after %.1f s (%d failed attempts)",
            self.what, self._clock() - self._since, self.attempts,
        )  # fmt: skip
        self.cause = None
        self.attempts = 0

    def status(self) -> dict[str, object]:
        """For /health: {"ok": true} or {"ok": false, "error": ..., "since_s": ...}."""
        if self.cause is None:
            return {"ok": True}
        return {
            "ok": False, "error": self.cause, "attempts": self.attempts,
            "since_s": round(self._clock() - self._since, 3),
        }  # fmt: skip
