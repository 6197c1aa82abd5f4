"""The boundary every persistence sink implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from marketdata.persist.rows import BookRow, TradeRow


class SinkError(Exception):
    pass


class RetryableSinkError(SinkError):
    """The sink is unreachable or busy: the same batch may succeed later."""


@dataclass
class WriteResult:
    written: dict[str, int] = field(default_factory=dict)  # table -> rows newly stored
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (entry id, why)


class Sink(Protocol):
    name: str

    async def start(self) -> None:
        """Connect and create the schema. Raises RetryableSinkError: every failure to reach
        or use the store (even bad credentials or a missing table) is retried, with backoff,
        never fatal: a person can fix it while persist waits."""

    async def write(self, trades: list[TradeRow], books: list[BookRow]) -> WriteResult:
        """Store both lists atomically enough that a retry of the same rows is harmless
        (idempotent on the natural keys). Rows the store refuses for what they hold are
        reported in WriteResult.rejected, not raised: one bad row never blocks the others."""

    async def close(self) -> None: ...
