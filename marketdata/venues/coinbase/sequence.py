"""The connection's `sequence_num`: one counter over every frame of a Coinbase connection.

It counts all channels and all products together (+1 per frame; the recording has 1,030
frames numbered 0..1029), so a gap cannot say which product lost a message: every book on
the connection is suspect. A new connection starts its own count. A resubscribe does not:
it goes on with the same counter, its new snapshot simply being the next frame. So after a
gap the check carries on from the frame that showed it; the books are made right by their
snapshots, not by the numbers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Gap:
    expected: int
    got: int

    def __str__(self) -> str:
        lost = self.got - self.expected
        if lost > 0:
            return f"sequence_num {self.got} where {self.expected} was due ({lost} lost)"
        return f"sequence_num {self.got} where {self.expected} was due (out of order)"


class SequenceCheck:
    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next: int | None = None  # None: the connection's first frame is still to come

    def reset(self) -> None:
        """A new connection: its first frame starts the count."""
        self.next = None

    def check(self, sequence: int) -> Gap | None:
        """None when `sequence` is the one due (or the first); the gap otherwise."""
        expected = self.next
        self.next = sequence + 1
        if expected is None or sequence == expected:
            return None
        return Gap(expected, sequence)
