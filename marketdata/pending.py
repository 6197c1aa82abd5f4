"""Queues of what Redis has not accepted yet: a flush takes a whole queue (O(1)); what
Redis refused, or a batch with no outcome, is put back in front, within the limit."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol, TypeVar

Item = TypeVar("Item")
RETRY_DELAY_S = 0.5  # what Redis refused (or a failed batch) is sent again after this


class Drops(Protocol):
    def inc(self, amount: float = 1) -> None: ...


def put_back(items: Iterable[Item], queue: deque[Item], limit: int, drops: Drops) -> deque[Item]:
    """`items` in front of `queue`; past `limit` the oldest go, counted in `drops`."""
    merged = deque(items)
    if not merged:
        return queue
    merged.extend(queue)
    excess = len(merged) - limit
    if excess > 0:
        drops.inc(excess)
        for _ in range(excess):
            merged.popleft()
    return merged


def refused_items(
    sent: Iterable[Item], first: int, refused: frozenset[int] | set[int]
) -> list[Item]:
    """The items Redis refused, in order; the first item's command has index `first`."""
    return [item for i, item in enumerate(sent, first) if i in refused]
