"""At most one line a second about skipped messages, saying how many went unlogged."""

from __future__ import annotations

import logging
import time


class SkipLog:
    __slots__ = ("_last", "_unlogged")

    def __init__(self) -> None:
        self._last = 0.0
        self._unlogged = 0

    def allow(self) -> str | None:
        """None: only count this one. Else log it, with the returned text appended (what it
        adds about the ones that were not logged; "" when there were none)."""
        now = time.monotonic()
        if now - self._last < 1.0:
            self._unlogged += 1
            return None
        unlogged, self._last, self._unlogged = self._unlogged, now, 0
        return f" (+{unlogged} more not logged)" if unlogged else ""

    def warn(self, logger: logging.Logger, key: str, error: str, frame: bytes) -> None:
        """`key: skipped message (error): frame` on `logger`, when allow() lets it."""
        more = self.allow()
        if more is not None:
            logger.warning("%s: skipped message (%s)%s: %.200r", key, error, more, frame)
