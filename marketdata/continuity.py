"""Sequence rules that decide whether a diff may be applied to a book.

Each exchange states its own rule; getting it wrong either rejects every diff or, worse,
accepts a gap silently. See the exchanges' "manage a local order book" procedures.
"""

from __future__ import annotations

from typing import Protocol

from marketdata.events import DepthDiff


class ContinuityRule(Protocol):
    def is_stale(self, diff: DepthDiff, snapshot_id: int) -> bool:
        """The snapshot already contains everything in this diff: drop it."""

    def bridges(self, diff: DepthDiff, snapshot_id: int) -> bool:
        """This diff may be the first one applied on top of the snapshot."""

    def follows(self, diff: DepthDiff, last_id: int) -> bool:
        """This diff continues a book whose last applied update id is `last_id`."""


class FuturesChain:
    """Binance USD-M futures: drop u < L, first applied U <= L <= u, then pu == previous u.

    Futures ids have gaps between events, so U == previous u + 1 must not be required.
    """

    def is_stale(self, diff: DepthDiff, snapshot_id: int) -> bool:
        return diff.last_id < snapshot_id

    def bridges(self, diff: DepthDiff, snapshot_id: int) -> bool:
        # pu == L: the snapshot ends exactly where this diff's predecessor ended.
        return diff.first_id <= snapshot_id <= diff.last_id or diff.prev_last_id == snapshot_id

    def follows(self, diff: DepthDiff, last_id: int) -> bool:
        return diff.prev_last_id == last_id


class ConsecutiveIds:
    """Binance spot: drop u <= L, first applied U <= L + 1 <= u, then U == previous u + 1."""

    def is_stale(self, diff: DepthDiff, snapshot_id: int) -> bool:
        return diff.last_id <= snapshot_id

    def bridges(self, diff: DepthDiff, snapshot_id: int) -> bool:
        return diff.first_id <= snapshot_id + 1 <= diff.last_id

    def follows(self, diff: DepthDiff, last_id: int) -> bool:
        return diff.first_id == last_id + 1
