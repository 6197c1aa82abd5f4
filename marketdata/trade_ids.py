"""Where one symbol's trade-id sequence stands: the id expected next, repeats, gaps.

Binance futures aggTrade ids are contiguous per symbol, so each id is one of:
- the expected one: the sequence goes on (the hot path, one comparison);
- a little below it (within `repeat_window`): a repeat, as a connection handover or a
  resend produces: recent ids, never a wild one;
- above it: a gap, the ids in between were never seen (a reconnect loses some);
- far below it: a new sequence.
One wild id must not become the high-water mark (a single id of 2**62 once made every later
trade a "repeat"), so the trade after any jump decides: nearer the old sequence than the
new one, and the jump was an outlier (RETRACT: the old sequence goes on).
"""

from __future__ import annotations

from enum import Enum

# Repeats come from the last second or so of a stream (a handover overlap), a few thousand
# ids at most; an id further below is not taken for one.
REPEAT_WINDOW = 100_000


class Verdict(Enum):
    NEXT = "next"  # the expected id (or the very first one)
    REPEAT = "repeat"  # seen already: drop it
    GAP = "gap"  # ids `missing` were skipped; this trade goes on from there
    RESTART = "restart"  # far below the expected id: a new sequence starts here
    RETRACT = "retract"  # the previous trade (`retracted`) was an outlier: ask again


class TradeIds:
    __slots__ = ("_jump", "_window", "missing", "next_id", "retracted")

    def __init__(self, repeat_window: int = REPEAT_WINDOW) -> None:
        self.next_id: int | None = None
        self.missing = (0, -1)  # after GAP: the first and last id skipped
        self.retracted = 0  # after RETRACT: the outlier's id
        self._window = repeat_window
        self._jump: tuple[int, int] | None = None  # (id expected before, id jumped to)

    def classify(self, trade_id: int) -> Verdict:
        expected = self.next_id
        if trade_id == expected:
            self.next_id = trade_id + 1
            self._jump = None
            return Verdict.NEXT
        if expected is None:
            self.next_id = trade_id + 1
            return Verdict.NEXT
        return self._off_sequence(trade_id, expected)

    def rewind(self, next_id: int) -> None:
        """The last jump was an outlier after all: expect `next_id` next."""
        self.next_id = next_id
        self._jump = None

    def _off_sequence(self, trade_id: int, expected: int) -> Verdict:
        jump, self._jump = self._jump, None
        if jump is not None:
            before, jumped_to = jump
            if abs(trade_id - before) < abs(trade_id - (jumped_to + 1)):
                self.next_id, self.retracted = before, jumped_to
                return Verdict.RETRACT
        if expected - self._window <= trade_id < expected:
            return Verdict.REPEAT
        self._jump = (expected, trade_id)
        self.next_id = trade_id + 1
        if trade_id > expected:
            self.missing = (expected, trade_id - 1)
            return Verdict.GAP
        return Verdict.RESTART
