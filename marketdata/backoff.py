"""Capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """delay = uniform(0, min(cap, initial * 2**attempt)); reset() after a success."""

    def __init__(
        self, initial_s: float, cap_s: float, rand: Callable[[], float] = random.random
    ) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rand = rand

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return ceiling * self._rand()

    def reset(self) -> None:
        self.attempt = 0
