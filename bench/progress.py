"""A flushed line as each bench case starts and ends, so a long run shows it is alive."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Lines like `[  12.3 s] core binance_spot: 164,000 msgs/s (5.1 s)`, each flushed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._began = time.perf_counter()

    def start(self, case: str) -> float:
        """Announce `case`; the returned start time goes back to `end`."""
        self.line(f"{case} ...")
        return time.perf_counter()

    def end(self, case: str, started: float, figure: str) -> None:
        self.line(f"{case}: {figure} ({time.perf_counter() - started:.1f} s)")

    def line(self, text: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {text}", file=self._stream, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self._began
