"""A failure that lasts: logged once when it starts and once when it ends, never per attempt.

Retry loops call `failed(cause)` on every failed attempt and `succeeded()` on the first
success; the operator sees one WARNING with the first cause and one INFO with how long it
lasted and how many attempts it took. The latest cause stays readable for /ready.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def describe(error: BaseException) -> str:
    """`TypeName: text`, or the type name alone when the exception has no text (a timeout
    would otherwise read as an empty cause)."""
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class Outage:
    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._log = logger
        self._clock = clock
        self.since: float | None = None  # clock time of the first failure; None: no outage
        self.attempts = 0  # failed attempts in this outage
        self.cause = ""  # the latest failure's cause

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, cause: str) -> None:
        self.cause = cause
        self.attempts += 1
        if self.since is None:
            self.since = self._clock()
            self._log.warning("%s: %s (retrying; logged again when it recovers)", self.what, cause)

    def succeeded(self) -> None:
        if self.since is None:
            return
        lasted = self._clock() - self.since
        self._log.info(
            "%s: recovered after %d failed attempt(s) over %.1fs (last cause: %s)",
            self.what, self.attempts, lasted, self.cause,
        )  # fmt: skip
        self.since = None
        self.attempts = 0
        self.cause = ""
